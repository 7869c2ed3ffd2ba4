"""Which result tables (``data/results/*.csv``) each page of the book wrote, for its "Tables" line.

Nothing records which page wrote which table (``results.write_csv`` only writes it), so the
book infers it from what the pages and tables say, most specific first:

1. the page's code names the table: ``"<name>"`` appears as a string literal in a code
   cell of the executed page (``write_csv(trials, "needle-trials")``; a glance table
   ``glance-<finding>.csv`` by its ``"<finding>"``); a page on a real model names it without
   the ``-<model>`` its file gets (``needle-trials-smollm2.csv``, ``results.named``);
2. a glance table's rows name their chapter (``chapter`` column, ``plan.chapter_page``);
3. the table's name starts with one of the page's prefixes, the longest one winning: the
   page's ``results_name`` parameter, its output name, its template name, and the
   ``<finding>`` of each glance table it owns (``finding3-needles.csv`` goes with the page of
   ``glance-finding3.csv``).

A table none of these place is still listed on the Execution page, without a page. Pages
with ``reads`` (the glance page) write nothing: :func:`tables_read` lists what they read.

Not here: the Sphinx side (``ropelib.publish.sphinx_pages``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ropelib import results
from ropelib.models import sources
from ropelib.publish.plan import chapter_page

GLANCE_PREFIX = "glance-"
RESULTS = "data/results"  # relative to the book's root


def _code(notebook: Path) -> str:
    try:
        cells = json.loads(notebook.read_text()).get("cells", [])
    except (OSError, ValueError):
        return ""
    return "\n".join("".join(c.get("source", "")) for c in cells if c.get("cell_type") == "code")


def _glance_chapters(table: Path) -> list[str]:
    try:
        with table.open(newline="") as handle:
            return list(dict.fromkeys(row.get("chapter") or "" for row in csv.DictReader(handle)))
    except (OSError, csv.Error):
        return []


def _named_in(code: str, name: str) -> bool:
    return bool(name) and f'"{name}"' in code or f"'{name}'" in code


def _as_named(name: str, run) -> str:
    """``name`` as the page's code names it: a page on a real model writes only names holding that
    model (``results.named``), which its code names without the ``-<model>``; "" when it cannot be its."""
    model = sources.measured_model(run.parameters)
    if model == results.ORGANISM:
        return name
    return name.removesuffix(f"-{model}") if model in name.split("-") else ""


def tables_by_page(runs, root: Path) -> dict[str, list[str]]:
    """Output stem of each run without ``reads`` -> the tables (``x.csv``) in ``data/results`` it wrote, sorted.

    ``root``: the book's root (runs.yml's ``reads`` globs and the pages in ``book/`` are relative to it).
    """

    root = Path(root)
    tables = sorted((root / RESULTS).glob("*.csv"))
    writers = [r for r in runs if not r.reads]
    code = {r.output: _code(root / "book" / r.output) for r in writers}
    owner: dict[str, object] = {}
    prefixes = {r.output: [p for p in (r.parameters.get("results_name"), Path(r.output).stem, r.chapter) if p]
                for r in writers}
    for table in tables:  # rules 1 and 2
        name = table.stem
        short = name.removeprefix(GLANCE_PREFIX)
        named = [r for r in writers if _named_in(code[r.output], _as_named(name, r)) or
                 (name.startswith(GLANCE_PREFIX) and _named_in(code[r.output], _as_named(short, r)))]
        if len(named) == 1:
            owner[name] = named[0]
        elif name.startswith(GLANCE_PREFIX):
            pages = [chapter_page(label, writers) for label in _glance_chapters(table)]
            pages = list({p.output: p for p in pages if p is not None}.values())
            if len(pages) == 1:
                owner[name] = pages[0]
        if name.startswith(GLANCE_PREFIX) and name in owner:
            prefixes[owner[name].output].append(short)
    for table in tables:  # rule 3
        name = table.stem
        if name in owner:
            continue
        matches = [(len(p), i) for i, r in enumerate(writers) for p in prefixes[r.output]
                   if name == p or name.startswith(p + "-")]
        if matches:
            owner[name] = writers[max(matches, key=lambda m: (m[0], -m[1]))[1]]
    pages = {Path(r.output).stem: [] for r in writers}
    for name, run in owner.items():
        pages[Path(run.output).stem].append(f"{name}.csv")
    return {page: sorted(names) for page, names in pages.items()}


def tables_read(run, root: Path) -> list[str]:
    """The result tables a page with ``reads`` (the glance page) reads: its CSV globs, expanded."""
    return sorted({p.name for pattern in run.reads for p in Path(root).glob(pattern) if p.suffix == ".csv"})


def table_shape(table: Path) -> tuple[int, int]:
    """(rows, columns) of a CSV table, the header not counted."""
    with Path(table).open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        return sum(1 for _ in reader), len(header)
