"""The run plan: which chapter templates the book executes, with which parameters.

``book/runs.yml`` is a YAML list; each entry is one executed page of the book::

    - chapter: rope-rescaling            # template chapters/rope-rescaling.ipynb
      output: rope-rescaling-llama2.ipynb  # written to book/
      title: "How each extension rescales RoPE: LLaMA-2-7B"
      part: RoPE geometry                # optional: caption of a group in the TOC
      parameters: {head_dim: 128, base: 10000.0, train_length: 4096, factor: 4.0}
      reads: []                          # optional: globs of data files the page reads
                                         # (part of its cache key, see ``runner``)
      resources: {GPU: 1}                # optional: what one execution needs on a Dask
                                         # worker (``ropebook run --scheduler``, ``cluster``)

One chapter may appear several times with different parameters (that is how the book
shows a finding at several lengths). Entries of one ``part`` must be consecutive.

This module reads and checks the plan and writes ``_toc.yml`` from it (the TOC is
derived, never edited by hand). It does not execute anything: see ``runner``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from ropelib.publish import params as _params

_KEYS = {"chapter", "output", "title", "parameters", "part", "reads", "resources"}
_REQUIRED = ("chapter", "output", "title")
TOC_HEADER = "# Generated from book/runs.yml by `ropebook toc`: edit the run plan, not this file.\n"
REFERENCE_CAPTION = "Reference"  # the TOC part of the static pages after the plan's (unique among captions)


class PlanError(ValueError):
    """A one-line message about the run plan."""


@dataclass(frozen=True)
class Layout:
    """Where a book's files are, relative to its root (the repository, or a test's tmp dir)."""

    root: Path

    @property
    def chapters(self) -> Path:
        return self.root / "chapters"

    @property
    def book(self) -> Path:
        return self.root / "book"

    @property
    def plan(self) -> Path:
        return self.book / "runs.yml"

    @property
    def toc(self) -> Path:
        return self.root / "_toc.yml"

    @property
    def timings(self) -> Path:
        return self.book / "timings.json"

    def template(self, chapter: str) -> Path:
        return self.chapters / f"{chapter}.ipynb"

    def templates(self) -> list[str]:
        return sorted(p.stem for p in self.chapters.glob("*.ipynb") if not p.name.endswith(".tmp.ipynb"))


@dataclass(frozen=True)
class Run:
    """One entry of the plan."""

    chapter: str
    output: str
    title: str
    parameters: dict = field(default_factory=dict)
    part: str | None = None
    reads: tuple[str, ...] = ()  # globs, relative to the root, of files the page reads
    resources: dict = field(default_factory=dict)  # e.g. {"GPU": 1}: Dask worker resources per execution


def default_layout() -> Layout:
    from ropelib.paths import ROOT

    return Layout(Path(ROOT))


def load(layout: Layout | None = None) -> list[Run]:
    """The plan's entries, in order, structurally checked (parameters: see :func:`check`)."""
    layout = layout or default_layout()
    where = layout.plan.relative_to(layout.root) if layout.plan.is_relative_to(layout.root) else layout.plan
    try:
        entries = yaml.safe_load(layout.plan.read_text()) or []
    except FileNotFoundError:
        raise PlanError(f"{where}: no run plan") from None
    except yaml.YAMLError as error:
        raise PlanError(f"{where}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(entries, list):
        raise PlanError(f"{where}: must be a YAML list of runs")
    known = set(layout.templates())
    runs: list[Run] = []
    for number, entry in enumerate(entries, 1):
        label = f"{where} entry {number}"
        if not isinstance(entry, dict):
            raise PlanError(f"{label}: must be a mapping with keys {', '.join(_REQUIRED)}")
        missing = [k for k in _REQUIRED if not entry.get(k)]
        extra = sorted(set(entry) - _KEYS)
        if missing or extra:
            problem = f"missing {', '.join(missing)}" if missing else f"unknown key {extra[0]!r}"
            raise PlanError(f"{label}: {problem} (keys: {', '.join(sorted(_KEYS))})")
        run = Run(
            chapter=str(entry["chapter"]),
            output=str(entry["output"]),
            title=str(entry["title"]),
            parameters=entry.get("parameters") or {},
            part=str(entry["part"]) if entry.get("part") else None,
        )
        reads = entry.get("reads") or []
        label = f"{where} entry {number} ({run.output})"
        if run.chapter not in known:
            raise PlanError(f"{label}: unknown chapter {run.chapter!r}; templates in chapters/: {', '.join(sorted(known)) or 'none'}")
        if "/" in run.output or not run.output.endswith(".ipynb") or run.output.endswith(".tmp.ipynb"):
            raise PlanError(f"{label}: output must be a notebook file name in book/, like name.ipynb")
        if not isinstance(reads, list) or not all(isinstance(g, str) and g and not g.startswith("/") for g in reads):
            raise PlanError(f"{label}: reads must be a list of glob patterns relative to the repository root")
        run = replace(run, reads=tuple(reads), resources=_resources(entry.get("resources"), label))
        if not isinstance(run.parameters, dict):
            raise PlanError(f"{label}: parameters must be a mapping name: value")
        if run.output in {r.output for r in runs}:
            raise PlanError(f"{label}: duplicate output {run.output!r}")
        runs.append(run)
    parts = [r.part for r in runs]
    for i, part in enumerate(parts):
        if part is not None and part in parts[:i] and parts[i - 1] != part:
            raise PlanError(f"{where}: entries of part {part!r} must be consecutive")
    return runs


def _resources(value, label: str) -> dict:
    """The ``resources`` of an entry: a mapping of resource name -> positive number (default none)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(name, str) and name and isinstance(amount, (int, float)) and not isinstance(amount, bool)
        and 0 < amount < float("inf") for name, amount in value.items()
    ):
        raise PlanError(f"{label}: resources must be a mapping of name: positive number, like {{GPU: 1}}")
    return dict(value)


def check(runs: list[Run], layout: Layout | None = None) -> dict[str, dict]:
    """Validate every entry's parameters against its template; output -> full parameters.

    Raises ParameterError (one line) on the first bad value, before anything runs.
    """
    layout = layout or default_layout()
    declared: dict[str, dict] = {}
    resolved = {}
    for run in runs:
        if run.chapter not in declared:
            declared[run.chapter] = _params.declared(layout.template(run.chapter))
        resolved[run.output] = _params.validate(declared[run.chapter], run.parameters, f"{run.output} ({run.chapter})")
    return resolved


def _page(name: str) -> str:
    return f"book/{Path(name).stem}"


def toc(runs: list[Run]) -> str:
    """``_toc.yml`` (jb-book format): intro, the plan's pages in order, then reproduce, execution and references."""
    back_matter = [{"file": "book/reproduce"}, {"file": "book/execution"}, {"file": "book/references"}]
    pages = [{"file": _page(r.output), "title": r.title} for r in runs]
    if any(r.part for r in runs):
        parts: list[dict] = []
        for run, page in zip(runs, pages):
            if not parts or parts[-1].get("caption") != run.part:
                parts.append({"caption": run.part, "chapters": []} if run.part else {"chapters": []})
            parts[-1]["chapters"].append(page)
        parts.append({"caption": REFERENCE_CAPTION, "chapters": back_matter})
        body = {"parts": parts}
    else:
        body = {"chapters": pages + back_matter}
    document = {"format": "jb-book", "root": "book/intro", **body}
    return TOC_HEADER + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1000)


def write_toc(runs: list[Run], layout: Layout | None = None) -> bool:
    """Write ``_toc.yml`` if it differs from the plan's; True when it changed."""
    layout = layout or default_layout()
    text = toc(runs)
    if layout.toc.exists() and layout.toc.read_text() == text:
        return False
    layout.toc.write_text(text)
    return True


# ---------------------------------------------------------------------------------------------
# Which page a result row names (the glance rows' ``chapter`` column)

def _parameter_numbers(parameters: dict) -> set[float]:
    numbers = set()
    for value in parameters.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                numbers.add(float(item))
    return numbers


def measures(run, model: str) -> bool:
    """Does ``run`` measure ``model`` (``sources.measured_model`` of its parameters)?"""
    from ropelib.models import sources  # lazy: plan is read by tools that never load a model

    return sources.measured_model(run.parameters) == model


def chapter_page(label: str, runs, model: str | None = None) -> object | None:
    """The run of book/runs.yml that a glance row's ``chapter`` label names, or None.
    ``model`` (a glance row's: "organism" or a real model's name) keeps the pages that measure it.

    A label is a page's output name (``cpt-length``), a template name (``needle-entropy``) or
    the start of a page's title (``Perplexity beyond the pretrained length``), optionally
    followed by numbers in parentheses that pick among pages (``Attention patterns (256
    tokens)``: the page with a parameter equal to 256). Pages with ``glance: false`` write no
    glance rows, so they are chosen only when nothing else fits; ties go to the first page.
    """
    label = str(label).strip()
    base = re.sub(r"\s*\(.*\)\s*$", "", label).strip().lower()
    numbers = {float(n) for n in re.findall(r"\d+(?:\.\d+)?", label[len(base):])}
    every = list(runs)
    runs = [r for r in every if model is None or measures(r, model)]
    candidates = [r for r in runs if Path(r.output).stem == label]
    candidates = candidates or [r for r in runs if r.chapter == label]
    candidates = candidates or [r for r in runs if base and re.match(re.escape(base) + r"(?!\w)", r.title.lower())]
    if not candidates and model is not None:  # a title of another model's page names the template
        named = chapter_page(label, every)
        candidates = [r for r in runs if named is not None and r.chapter == named.chapter]
    candidates = [r for r in candidates if r.parameters.get("glance") is not False] or candidates
    if numbers:
        candidates = [r for r in candidates if numbers <= _parameter_numbers(r.parameters)] or candidates
    return candidates[0] if candidates else None


def chapter_pages(labels, runs, model: str | None = None) -> dict[str, tuple[str, str]]:
    """label -> (page name, the page's title) for labels that name a page (of ``model``'s, when given); its
    href is ``<name>.html`` (relative to a page in book/)."""
    pages = {}
    for label in dict.fromkeys(str(x) for x in labels):
        run = chapter_page(label, runs, model)
        if run is not None:
            pages[label] = (Path(run.output).stem, run.title)
    return pages
