"""Execute chapter templates with papermill into book pages, with a cache.

For each run (template + parameters -> output notebook):

1. The cache key is sha256 of (template bytes, canonical JSON of the full parameters,
   ``ropelib.__version__``, the data files the page reads: every checkpoint manifest,
   which holds its weights' sha256, plus the run's ``reads`` globs; a real-model page, whose
   model parameters name only a real model (``ropelib.models.real``, e.g. ``smollm2``), has its
   weights' identity (the pinned sha256 of the GGUF file) instead of the organism's manifests, so retraining the organism leaves it current). It is stored in the
   output's ``metadata.ropebook``; when the existing output carries the same key, the
   run is skipped (``force`` re-runs). Retraining a checkpoint, or a results table that
   a summary page reads changing, therefore re-executes the pages that depend on it.
2. papermill executes the template into ``.<output>.tmp.ipynb`` next to the output
   (kernel ``python3``, cwd = the book root, talking over Unix sockets: see
   :func:`_socket_kernel_manager`). On success the notebook is post-processed
   and renamed over the output; on failure the temp file is deleted, so a book never
   holds a half-written page and the next run retries.
3. Post-processing: the ``parameters`` and papermill's ``injected-parameters`` cells get
   the ``remove-cell`` tag (hidden in the HTML); a markdown cell with a parameters table
   and links to the template goes at the top; the ``# Title`` becomes the run's title.
4. The wall time of every executed run-plan page is recorded in ``book/timings.json``
   with when it ran, its cache key and the ropelib version (one-off runs only print theirs).
   A real-model page that read kept trials back (``ropelib.tasks.trials``) also records them
   (``trials``: computed and read back, with their seconds) and ``seconds_from_empty_cache``,
   its wall time plus the kept seconds of the trials it read back: its cost, not its re-run.
5. Where the page writes its tables: ``$ROPEBOOK_RESULTS`` is set for the kernel to the
   job's ``results`` folder: ``data/results/`` for run-plan pages, ``<output>.results/``
   beside a one-off page (``ropelib.results``). Nothing else chooses it.

Ctrl-C stops between or inside pages: the page in flight leaves no file (its temp file
is deleted), and :class:`Interrupted` says how many pages were done and how many are left.

Parameter validation happens before this module is called (``plan.check`` /
``params.validate``); this module does not parse the plan or build HTML.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

import ropelib
from ropelib import machine, paths
from ropelib.models import real, sources
from ropelib.publish import params as _params
from ropelib.publish.plan import Layout

KERNEL = "python3"
RESULTS_ENV, LEDGER_ENV = paths.RESULTS_ENV, paths.LEDGER_ENV  # the kernel inherits both
MODEL_MANIFESTS = "data/models/*/manifest.json"  # read (through models.load) by every page
REPOSITORY = "https://github.com/ropebook/ropebook"
BRANCH = "main"


# ---- the kernel


def _socket_kernel_manager(folder: str):
    """A kernel manager on Unix sockets in ``folder`` (the page's own), for pages started side by side.

    Over TCP, jupyter_client picks five free ports and the kernel binds them moments later;
    two pages starting at once on two Dask workers can pick the same port, and one kernel
    dies before replying ("Address already in use"). A socket path cannot collide: each
    page's kernel talks over ``folder/kernel-1`` .. ``-5``, and ``execute`` removes the folder,
    also after a kernel that died without cleaning up.
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class _SocketKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self):
            return "ipc"

        @default("ip")
        def _ip_default(self):
            return os.path.join(folder, "kernel")

    return _SocketKernelManager


# ---- running a page


class RunFailed(RuntimeError):
    """A chapter raised while executing; the message says which cell and why (one line)."""


class Interrupted(RuntimeError):
    """Ctrl-C: ``done`` pages finished, ``left`` not (they run next time: the cache keeps the rest)."""

    def __init__(self, done: int, left: int):
        super().__init__(f"interrupted: {done} page(s) done, {left} left for next time; nothing half-written")
        self.done, self.left = done, left


@dataclass(frozen=True)
class Job:
    """One execution: a template, its full (validated) parameters, where it goes, its title."""

    chapter: str
    parameters: dict
    output: Path
    title: str | None = None
    orphan: bool = False  # a one-off page, outside the TOC
    reads: tuple[str, ...] = ()  # globs of data files in the cache key (plan.Run.reads)
    results: Path | None = None  # where the page writes its tables; None: beside the output

    @property
    def results_dir(self) -> Path:
        return Path(self.results) if self.results else self.output.with_suffix(".results")


def cache_key(template: Path, parameters: dict, version: str | None = None,
              inputs: tuple[Path, ...] = (), root: Path | None = None, models: tuple[str, ...] = ()) -> str:
    """sha256 of the template's bytes, the canonical parameters, the ropelib version, the
    (root-relative name, bytes) of each input file and the identity of each model file
    that is not in the repository (``models``, e.g. the real model's pinned GGUF sha256)."""
    version = ropelib.__version__ if version is None else version
    digest = hashlib.sha256()
    parts = [Path(template).read_bytes(), canonical(parameters).encode(), version.encode(),
             *(model.encode() for model in models)]
    for path in sorted(inputs):
        name = path.relative_to(root) if root is not None and path.is_relative_to(root) else path
        parts += [str(name).encode(), path.read_bytes()]
    for part in parts:
        digest.update(hashlib.sha256(part).digest())  # hash of hashes: no ambiguous concatenation
    return digest.hexdigest()


def is_real_model_page(parameters: dict) -> bool:
    """Its model parameters name a real model and nothing else (no organism checkpoint)."""
    return sources.measures_only_real(parameters)


def input_files(job: "Job", layout: Layout) -> tuple[Path, ...]:
    """The data files in ``job``'s cache key: checkpoint manifests (not for a real-model page)
    and the job's ``reads``."""
    files = set()
    patterns = job.reads if is_real_model_page(job.parameters) else (MODEL_MANIFESTS, *job.reads)
    for pattern in patterns:
        files.update(p for p in layout.root.glob(pattern) if p.is_file())
    return tuple(sorted(files))


def model_files(job: "Job") -> tuple[str, ...]:
    """Identities of the model files outside the repository that ``job`` reads (a real model's, e.g. a GGUF's
    sha256): the model it measures (``sources.measured_model``)."""
    model = real.get(sources.measured_model(job.parameters))
    return (model.identity(),) if model is not None else ()


def job_key(job: "Job", layout: Layout) -> str:
    return cache_key(layout.template(job.chapter), job.parameters, inputs=input_files(job, layout), root=layout.root,
                     models=model_files(job))


def canonical(parameters: dict) -> str:
    return json.dumps(parameters, sort_keys=True, separators=(",", ":"), allow_nan=False)


def stored_key(output: Path) -> str | None:
    """The cache key recorded in an executed notebook, or None."""
    try:
        nb = nbformat.read(output, as_version=4)
    except (OSError, ValueError):
        return None
    return nb.metadata.get("ropebook", {}).get("cache_key")


def is_current(job: Job, layout: Layout, key: str | None = None) -> bool:
    """True when ``job.output`` exists and carries ``key`` (default: the job's key now)."""
    return job.output.exists() and stored_key(job.output) == (key or job_key(job, layout))


def execute(job: Job, layout: Layout, force: bool = False, progress: bool | None = None) -> float | None:
    """Run ``job`` unless cached. Returns the wall time in seconds, or None when cached."""
    template = layout.template(job.chapter)
    key = job_key(job, layout)
    if not force and is_current(job, layout, key):
        return None

    import papermill
    from papermill.exceptions import PapermillExecutionError

    declarations = _params.declared(template)
    job.output.parent.mkdir(parents=True, exist_ok=True)
    temp = job.output.with_name(f".{job.output.stem}.tmp.ipynb")
    start = time.perf_counter()
    saved_env = os.environ.get(RESULTS_ENV)
    os.environ[RESULTS_ENV] = str(job.results_dir)  # the kernel inherits it (ropelib.results)
    scratch = tempfile.TemporaryDirectory(prefix="ropebook-kernel-", dir="/tmp")  # short: a socket path < 108 bytes
    ledger = Path(scratch.name) / "trials.jsonl"
    os.environ[LEDGER_ENV] = str(ledger)  # the kernel's trial store appends to it
    try:
        try:
            nb = papermill.execute_notebook(
                str(template),
                str(temp),
                parameters=job.parameters,
                kernel_name=KERNEL,
                kernel_manager_class=_socket_kernel_manager(scratch.name),
                cwd=str(layout.root),
                log_output=False,
                progress_bar=sys.stderr.isatty() if progress is None else progress,
            )
        except PapermillExecutionError as error:
            raise RunFailed(_describe_failure(error, template)) from None
        except Exception as error:  # dead kernel, missing kernelspec, timeout: still one line
            first_line = (str(error).strip().splitlines() or [""])[0]
            raise RunFailed(f"{type(error).__name__}: {first_line}") from None
        seconds = time.perf_counter() - start
        _postprocess(nb, job, declarations, key)
        from ropelib.tasks.trials import summarize_ledger  # torch: only once a page has run

        if (trials := summarize_ledger(ledger)) is not None:
            nb.metadata["ropebook"]["trials"] = trials
        nbformat.write(nb, temp)
        os.replace(temp, job.output)
    finally:
        temp.unlink(missing_ok=True)
        scratch.cleanup()
        os.environ.pop(LEDGER_ENV, None)
        if saved_env is None:
            os.environ.pop(RESULTS_ENV, None)
        else:
            os.environ[RESULTS_ENV] = saved_env
    if not job.orphan:  # the performance record is of the book's own pages, not experiments
        _record_timing(layout, job.output, seconds, key)
    return seconds


def _describe_failure(error, template: Path) -> str:
    """``cell 4 (`plot(...)`): ValueError: ...`` with the template's own cell index."""
    source = error.source or ""
    template_cells = nbformat.read(template, as_version=4).cells
    index = next((i for i, c in enumerate(template_cells) if c.source == source), None)
    where = f"cell {index}" if index is not None else f"In [{error.exec_count}]"
    first_line = next((line for line in source.splitlines() if line.strip()), "").strip()
    evalue = (str(error.evalue).strip().splitlines() or [""])[0]
    return f"{where} (`{first_line[:80]}`): {error.ename}: {evalue}"


def _postprocess(nb, job: Job, declarations: dict, key: str) -> None:
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
    first = nb.cells[0] if nb.cells else None
    has_title = first is not None and first.cell_type == "markdown" and first.source.startswith("# ")
    if has_title and job.title:
        lines = first.source.split("\n")
        first.source = "\n".join([f"# {job.title}"] + lines[1:])
    table = nbformat.v4.new_markdown_cell(_parameters_markdown(job, declarations))
    table.metadata["ropebook"] = "parameters-table"
    nb.cells.insert(1 if has_title else 0, table)
    nb.metadata["ropebook"] = {
        "cache_key": key,
        "template": f"chapters/{job.chapter}.ipynb",
        "parameters": job.parameters,
        "ropelib_version": ropelib.__version__,
    }
    if job.orphan:
        nb.metadata["orphan"] = True  # built by jupyter-book without a TOC entry, no warning


def _parameters_markdown(job: Job, declarations: dict) -> str:
    rows = ["| parameter | value | meaning |", "|---|---|---|"]
    for name, value in job.parameters.items():
        meaning = declarations[name].description if name in declarations else ""
        rows.append(f"| `{name}` | `{json.dumps(value)}` | {meaning.replace('|', '/')} |")
    path = f"chapters/{job.chapter}.ipynb"
    links = (
        f"Template [`{path}`]({REPOSITORY}/blob/{BRANCH}/{path}): open it in "
        f"[Colab](https://colab.research.google.com/github/{REPOSITORY.split('github.com/')[1]}/blob/{BRANCH}/{path}) or "
        f"[Binder](https://mybinder.org/v2/gh/{REPOSITORY.split('github.com/')[1]}/{BRANCH}?labpath={path}). "
        f"Re-run it with other values: `.venv/bin/ropebook run {job.chapter} -p NAME VALUE ...`"
    )
    return "**Parameters of this page**\n\n" + "\n".join(rows) + "\n\n" + links


def _trial_cost(output: Path, seconds: float) -> dict:
    """The page's kept trials (its metadata) and what it costs from an empty cache, if it used any.

    Read from the written page rather than passed along: with Dask (``cluster``) the page runs on a worker
    and its timing is recorded on the client, which has the page but not the worker's ledger."""
    try:
        trials = nbformat.read(output, as_version=4).metadata.get("ropebook", {}).get("trials")
    except (OSError, ValueError):
        trials = None
    if not trials:
        return {}
    known = trials["read_back_without_time"] == 0
    return {"trials": trials,
            "seconds_from_empty_cache": round(seconds + trials["read_back_seconds"], 1) if known else None}


def _record_timing(layout: Layout, output: Path, seconds: float, key: str = "") -> None:
    """Update ``book/timings.json`` atomically: per output, seconds, when (UTC), cache key, ropelib version and the
    machine's fp32 matmul GFLOP/s on 2 threads (``ropelib.machine``: page times scale with it)."""
    path = layout.timings
    try:
        timings = json.loads(path.read_text())
    except (OSError, ValueError):
        timings = {}
    name = output.resolve()
    name_key = str(name.relative_to(layout.root.resolve())) if name.is_relative_to(layout.root.resolve()) else str(name)
    timings[name_key] = {"seconds": round(seconds, 1), "ran_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "cache_key": key[:16], "ropelib": ropelib.__version__,
                         "fp32_matmul_gflops_2_threads": machine.matmul_gflops(), **_trial_cost(output, seconds)}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".timings.", suffix=".json")
    with os.fdopen(handle, "w") as file:
        json.dump(dict(sorted(timings.items())), file, indent=2)
        file.write("\n")
    os.chmod(temp, 0o644)  # mkstemp creates it private; it is a committed file
    os.replace(temp, path)


def execute_all(jobs: list[Job], layout: Layout, force: bool = False, echo=print) -> int:
    """Execute jobs in order with one progress line each; returns how many really ran.

    Stops at the first failure (raising RunFailed naming the output) so that a broken
    chapter is reported before minutes are spent on the rest.
    """
    executed = 0
    total_start = time.perf_counter()
    for number, job in enumerate(jobs, 1):
        label = f"[{number}/{len(jobs)}] {_shown(job.output, layout)} ({job.chapter})"
        try:
            if not force and is_current(job, layout):
                echo(f"{label} cached", flush=True)
                continue
            echo(f"{label} ...", flush=True)
            seconds = execute(job, layout, force=True)
        except RunFailed as error:
            raise RunFailed(f"{_shown(job.output, layout)}: {error}") from None
        except KeyboardInterrupt:
            raise Interrupted(number - 1, len(jobs) - number + 1) from None
        executed += 1
        echo(f"{label} done in {seconds:.1f} s", flush=True)
    echo(f"{executed} of {len(jobs)} executed, {len(jobs) - executed} cached, "
         f"{time.perf_counter() - total_start:.1f} s in all", flush=True)
    return executed


def _shown(path: Path, layout: Layout) -> str:
    path = Path(path).resolve()
    root = layout.root.resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
