"""Execute the run plan on a Dask cluster: every page one task, the runner's guarantees kept.

``ropebook run --scheduler SCHEDULER`` calls :func:`execute_distributed` instead of
``runner.execute_all``. SCHEDULER is ``local`` or ``local:N`` (a ``LocalCluster`` of N
worker processes, default 2, one thread each), ``tcp://HOST:PORT`` (an existing Dask
scheduler) or ``slurm`` (a dask-jobqueue ``SLURMCluster`` configured by ``--cluster-config``
YAML: its keys are ``SLURMCluster``'s arguments, plus ``jobs``, how many Slurm jobs to
start, default 1; install the ``cluster`` extra). Client and workers must see the
repository at the same path (one machine, or a shared filesystem).

What stays as in the sequential runner:

- Cache: keys are checked here, on the client; a current page is never sent. A page with
  ``reads`` waits for every page before it in the plan (they may write what it reads), and
  its key is checked only then.
- Atomic outputs: a task is ``runner.execute(job, force=True)`` on a worker (temp file,
  then rename). After Ctrl-C the futures are cancelled and the cluster is closed; the temp
  files of pages in flight are removed when the cluster was ours (``local``, ``slurm``);
  on a ``tcp://`` scheduler running pages finish on their workers, complete or not at all.
- Failures: a failing page does not stop the others; it is reported as it finishes and
  the final ``RunFailed`` names its failing cell. It is not retried (it would fail again).
  A task whose worker died is run again by the scheduler (up to Dask's
  ``distributed.scheduler.allowed-failures``, 3 by default); one that raised anything but
  a page failure is retried twice (``retries=2``).
- ``book/timings.json``: workers record nothing (their ``Layout`` points the timings at a
  scratch file); each task returns its seconds and the client records them in the order
  they arrive, so concurrent pages lose no update. One-off pages are not recorded.

Resources: a page's ``resources`` in ``book/runs.yml`` (e.g. ``{GPU: 1}``) go to
``Client.submit(resources=...)``, so a worker declaring ``GPU=1`` runs one such page at a
time. ``local`` workers declare nothing unless ``--worker-resources GPU=1`` is given, and
without it the pages' needs are ignored. A worker runs one page at a time whatever its
thread count (each page is its own kernel process).

What this module is not: a scheduler or a retry policy of its own (both are Dask's), nor
a place where pages change: a page's notebook is the one the sequential runner writes.
"""

from __future__ import annotations

import re
import signal
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from ropelib.publish import runner
from ropelib.publish.plan import Layout, PlanError, Run

DEFAULT_LOCAL_WORKERS = 2  # the 2-core project machine; on a GPU box use local:<number of GPUs>
TASK_RETRIES = 2  # for errors other than a failing page, which would only fail again
EXTRA = "pip install -e '.[cluster]'"


class ClusterError(PlanError):
    """Bad --scheduler, --cluster-config or --worker-resources (one line, exit status 2)."""


@dataclass(frozen=True)
class Outcome:
    """What a task sends back: its seconds, or the page's one-line failure; where it ran."""

    seconds: float | None
    failure: str | None
    worker: str


@dataclass(frozen=True)
class _WorkerLayout(Layout):
    """The book's layout with ``timings`` in a scratch file: the client records the times."""

    scratch_timings: Path = Path("timings.json")

    @property
    def timings(self) -> Path:
        return self.scratch_timings


_ONE_PAGE_AT_A_TIME = threading.Lock()  # per worker process: runner.execute sets os.environ


def parse_resources(text: str | None) -> dict[str, float]:
    """``"GPU=1,MEM=2"`` -> ``{"GPU": 1.0, "MEM": 2.0}``; None or "" -> {}."""
    resources = {}
    for item in filter(None, (text or "").split(",")):
        name, _, amount = (part.strip() for part in item.partition("="))
        try:
            resources[name] = float(amount)
        except ValueError:
            resources[name] = 0.0  # refused below
        if not name or not 0 < resources[name] < float("inf"):
            raise ClusterError(f"--worker-resources {text!r}: expected NAME=AMOUNT[,...] with positive amounts")
    return resources


def plan_resources(jobs: list[runner.Job], runs: list[Run], layout: Layout) -> dict[Path, dict]:
    """Each job's resources: its plan entry's, or for a one-off page its chapter's first entry's."""
    by_output = {layout.book / r.output: r.resources for r in runs}
    by_chapter = {}
    for run in runs:
        by_chapter.setdefault(run.chapter, run.resources)
    return {job.output: by_output.get(job.output, by_chapter.get(job.chapter, {})) for job in jobs}


def execute_distributed(jobs: list[runner.Job], layout: Layout, scheduler: str | None, force: bool = False,
                        echo=print, cluster_config: str | Path | None = None, worker_resources: str | None = None,
                        resources: dict[Path, dict] | None = None) -> int:
    """Execute ``jobs`` on a Dask cluster; returns how many really ran (see the module doc).

    Raises ClusterError on bad options before anything starts, RunFailed naming every
    failed page once all pages are done, and runner.Interrupted on Ctrl-C.
    """
    workers, address, slurm_options = _parse_scheduler(scheduler, cluster_config, worker_resources)
    offered = parse_resources(worker_resources)
    needs = {job.output: dict((resources or {}).get(job.output) or {}) for job in jobs}
    needs = _placeable(needs, offered, workers, layout, echo)
    labels = {job.output: f"[{n}/{len(jobs)}] {runner._shown(job.output, layout)} ({job.chapter})"
              for n, job in enumerate(jobs, 1)}
    start, finished, executed, failures = time.perf_counter(), 0, 0, []
    in_flight: dict = {}
    try:
        with _connect(workers, address, slurm_options, offered, echo) as client:
            from distributed import as_completed

            try:
                for stage in _stages(jobs):
                    in_flight = {}
                    for job in stage:
                        key = runner.job_key(job, layout)
                        if not force and runner.is_current(job, layout, key):
                            echo(f"{labels[job.output]} cached", flush=True)
                            finished += 1
                            continue
                        future = client.submit(_execute_on_worker, job, layout, pure=False, retries=TASK_RETRIES,
                                               resources=needs[job.output] or None,
                                               key=f"page-{job.output.stem}-{uuid.uuid4().hex[:8]}")
                        in_flight[future] = (job, key)
                    for future in as_completed(list(in_flight)):
                        job, key = in_flight.pop(future)
                        outcome = _outcome(future)
                        finished += 1
                        if outcome.failure is not None:
                            failures.append(f"{runner._shown(job.output, layout)}: {outcome.failure}")
                            echo(f"{labels[job.output]} FAILED: {outcome.failure}", flush=True)
                            continue
                        if not job.orphan:  # as runner.execute does, but from the client only
                            runner._record_timing(layout, job.output, outcome.seconds, key)
                        executed += 1
                        echo(f"{labels[job.output]} done in {outcome.seconds:.1f} s on {outcome.worker}", flush=True)
            except KeyboardInterrupt:
                client.cancel(list(in_flight), force=True)
                raise
    except KeyboardInterrupt:
        if address is None:  # our cluster is closed: no worker writes any more
            for job, _ in in_flight.values():
                job.output.with_name(f".{job.output.stem}.tmp.ipynb").unlink(missing_ok=True)
        raise runner.Interrupted(finished, len(jobs) - finished) from None
    echo(f"{executed} of {len(jobs)} executed, {len(jobs) - executed - len(failures)} cached, "
         f"{len(failures)} failed, {time.perf_counter() - start:.1f} s in all", flush=True)
    if failures:
        raise runner.RunFailed(f"{len(failures)} page(s) failed: " + "; ".join(failures))
    return executed


def _parse_scheduler(scheduler, cluster_config, worker_resources):
    """(local worker count, tcp address, Slurm options): exactly one of them is set."""
    if scheduler is None:
        raise ClusterError("--cluster-config and --worker-resources need --scheduler")
    local = re.fullmatch(r"local(?::([1-9][0-9]*))?", scheduler)
    if cluster_config and scheduler != "slurm":
        raise ClusterError("--cluster-config is for --scheduler slurm")
    if worker_resources and not local:
        raise ClusterError("--worker-resources is for --scheduler local[:N]; other workers declare their own")
    if local:
        return int(local.group(1) or DEFAULT_LOCAL_WORKERS), None, None
    if re.fullmatch(r"tcp://[^\s:/]+:[0-9]+", scheduler):
        return None, scheduler, None
    if scheduler == "slurm":
        return None, None, _slurm_options(cluster_config)
    raise ClusterError(f"--scheduler {scheduler!r}: expected local, local:N, tcp://HOST:PORT or slurm")


def _slurm_options(path) -> dict:
    """The ``--cluster-config`` YAML mapping (none: dask's own ``jobqueue.slurm`` configuration)."""
    if path is None:
        return {}
    try:
        options = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ClusterError(f"--cluster-config {path}: {str(error).splitlines()[0]}") from None
    if not isinstance(options, dict) or not (isinstance(options.get("jobs", 1), int) and options.get("jobs", 1) >= 1):
        raise ClusterError(f"--cluster-config {path}: must be a mapping of SLURMCluster arguments, jobs >= 1")
    return options


def _placeable(needs, offered, workers, layout, echo):
    """A local cluster without --worker-resources ignores needs; with it, each must be met."""
    asked = sorted({name for need in needs.values() for name in need})
    if workers is None or not asked:
        return needs
    if not offered:
        echo(f"local workers declare no resources: ignoring the pages' {', '.join(asked)} "
             f"(--worker-resources {asked[0]}=1 enforces them)", flush=True)
        return {output: {} for output in needs}
    for output, need in needs.items():
        if any(offered.get(name, 0) < amount for name, amount in need.items()):
            raise ClusterError(f"{runner._shown(output, layout)} needs {need}; "
                               f"--worker-resources offers {offered} per worker")
    return needs


@contextmanager
def _connect(workers, address, slurm_options, offered, echo):
    """A Client of a new LocalCluster or SLURMCluster, or of the scheduler at ``address``."""
    from distributed import Client, LocalCluster

    cluster = None
    if workers is not None:
        with _sigint_ignored():  # the worker processes inherit it: Ctrl-C is the client's to handle
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, resources=offered or None)
    elif slurm_options is not None:
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError:
            raise ClusterError(f"--scheduler slurm needs dask-jobqueue, the 'cluster' extra: {EXTRA}") from None
        options = dict(slurm_options)
        jobs = options.pop("jobs", 1)
        try:
            cluster = SLURMCluster(**options)
        except TypeError as error:
            raise ClusterError(f"--cluster-config: {error}") from None
        cluster.scale(jobs=jobs)
    try:
        client = Client(cluster if cluster is not None else address)
    except OSError as error:
        if cluster is not None:
            cluster.close()
        raise runner.RunFailed(f"cannot reach the Dask scheduler at {address}: {error}") from None
    try:
        try:
            link = client.dashboard_link
        except KeyError:  # a remote scheduler without one
            link = None
        echo(f"dask scheduler {client.scheduler.address}; dashboard: {link or 'off (needs bokeh)'}", flush=True)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@contextmanager
def _sigint_ignored():
    """SIGINT ignored meanwhile (main thread only): processes started inside keep ignoring it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stages(jobs: list[runner.Job]) -> list[list[runner.Job]]:
    """Cut the plan before each page with ``reads``: it waits for every page before it."""
    stages: list[list[runner.Job]] = [[]]
    for job in jobs:
        if job.reads and stages[-1]:
            stages.append([])
        stages[-1].append(job)
    return stages


def _execute_on_worker(job: runner.Job, layout: Layout) -> Outcome:
    """The task, run on a worker: ``runner.execute``, its timing left to the client."""
    from distributed import get_worker

    with _ONE_PAGE_AT_A_TIME, tempfile.TemporaryDirectory(prefix="ropebook-") as scratch:
        worker_layout, where = _WorkerLayout(layout.root, Path(scratch) / "timings.json"), get_worker().address
        try:
            return Outcome(runner.execute(job, worker_layout, force=True, progress=False), None, where)
        except runner.RunFailed as error:
            return Outcome(None, str(error), where)


def _outcome(future) -> Outcome:
    """The task's Outcome, or a failure for a task Dask gave up on (e.g. KilledWorker)."""
    try:
        return future.result()
    except Exception as error:  # raised on the worker, re-raised here
        first_line = (str(error).strip().splitlines() or [""])[0]
        return Outcome(None, f"{type(error).__name__}: {first_line}", "?")
