"""The book's "Execution" page: what executing each page cost, and every result table.

``book/execution.md`` is a static page holding two placeholder lines; when the book is built,
``ropelib.publish.sphinx_pages`` replaces them (Sphinx ``source-read``) with what this module writes
from the files of the moment, so nothing generated is ever committed:

  status_markdown(runs, timings)   one row per page of the run plan, from ``book/timings.json``:
                                   seconds, when it ran (UTC), its cache key (short), the
                                   ropelib version; then the total
  tables_markdown(root, owners)    every ``data/results/*.csv``: a download link, its size,
                                   the page that wrote it (``page_tables``)

Entries of ``book/timings.json`` are ``{"seconds", "ran_at", "cache_key", "ropelib"}`` (see
``runner``); a bare number (the older format) is read as the seconds alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from ropelib.publish import page_tables

STATUS_PLACEHOLDER = "% ropebook: execution status"
TABLES_PLACEHOLDER = "% ropebook: result tables"
KEY_CHARACTERS = 8  # of the cache key shown
MISSING = "–"


def load_timings(path: Path) -> dict:
    """``book/timings.json`` as a mapping (empty when missing or unreadable)."""
    try:
        timings = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return timings if isinstance(timings, dict) else {}


def entry(value) -> dict:
    """One timings entry in the current format (seconds None when unknown)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = {"seconds": value}
    value = value if isinstance(value, dict) else {}
    seconds = value.get("seconds")
    return {"seconds": float(seconds) if isinstance(seconds, (int, float)) else None,
            "ran_at": str(value.get("ran_at") or ""), "cache_key": str(value.get("cache_key") or ""),
            "ropelib": str(value.get("ropelib") or "")}


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def status_markdown(runs, timings: dict) -> str:
    """A MyST table of every run-plan page's last execution, in reading order, and the total."""
    lines = ["| page | seconds | executed (UTC) | cache key | ropelib |", "|---|--:|---|---|---|"]
    total, recorded = 0.0, 0
    for run in runs:
        record = entry(timings.get(f"book/{run.output}"))
        seconds = record["seconds"]
        if seconds is not None:
            total, recorded = total + seconds, recorded + 1
        key = record["cache_key"][:KEY_CHARACTERS]
        lines.append(f"| {{doc}}`{_cell(run.title)} <{Path(run.output).stem}>` "
                     f"| {MISSING if seconds is None else f'{seconds:.1f}'} "
                     f"| {record['ran_at'].replace('T', ' ').removesuffix('Z') or MISSING} "
                     f"| {f'`{key}`' if key else MISSING} | {record['ropelib'] or MISSING} |")
    lines.append(f"| **total** ({recorded} of {len(runs)} pages recorded) | **{total:.1f}** | | | |")
    return "\n".join(lines)


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def tables_markdown(root: Path, owners: dict[str, list[str]], titles: dict[str, str]) -> str:
    """A MyST table of every result table: download link, rows x columns, size, the page that wrote it.

    ``owners``: page (output stem) -> its tables (``page_tables.tables_by_page``); ``titles``: page -> title.
    """
    writer = {name: page for page, names in owners.items() for name in names}
    lines = ["| table | rows x columns | size | written by |", "|---|--:|--:|---|"]
    for table in sorted((Path(root) / page_tables.RESULTS).glob("*.csv")):
        rows, columns = page_tables.table_shape(table)
        page = writer.get(table.name)
        shown = f"{{doc}}`{_cell(titles[page])} <{page}>`" if page in titles else MISSING
        lines.append(f"| {{download}}`{table.name} </{page_tables.RESULTS}/{table.name}>` | {rows} x {columns} "
                     f"| {_size(table.stat().st_size)} | {shown} |")
    return "\n".join(lines)
