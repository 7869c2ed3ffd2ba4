"""Which section of a page computes its glance rows, as the HTML id a link can target.

A chapter computes its glance rows in one code cell (``rows = verdicts.glance_rows(...)``, or the
``results.write_glance(...)`` call where no ``glance_rows`` precedes it); the section that computes
them is the one that cell sits in: the last Markdown heading before it, or a MyST target
(``(name)=`` on its own line) placed after that heading, which a template may add to point the
glance link elsewhere. Sphinx
(docutils, as jupyter-book 1.x runs it: ``myst_heading_anchors`` is not set) gives each section
the id ``docutils.nodes.make_id`` makes of its title ("The paper's two statements, computed" ->
``the-paper-s-two-statements-computed``), and the first section of that id keeps it; a later
section whose title makes the same id gets a numbered one (``id3``) that depends on everything
else on the page, so such a heading has no id here (None).

  headings(notebook)          the (level, title, id) of each Markdown heading, in order (id None where repeated)
  glance_section(notebook)    the id of the section whose cell computes the glance rows, or None
  chapter_sections(labels, runs, layout)  each glance label -> the id of its page's glance section

The page read is the executed one (``book/<output>``), else its template (``chapters/<chapter>.ipynb``:
papermill changes code, never Markdown), so the ids hold before the book is re-executed.

Not here: which page a label names (``plan.chapter_page``); the HTML links (``findings.glance.table``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from docutils.nodes import make_id

from ropelib.publish.plan import chapter_page, default_layout

COMPUTES_GLANCE = re.compile(r"\b(?:glance_rows|write_glance)\(")
TARGET = re.compile(r"^\(([^()\s]+)\)=\s*$")  # a MyST target: its id is make_id(name)
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~|:::)")
# Markdown inline syntax the rendered title drops: emphasis, code ticks, links' targets
INLINE = (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"), (re.compile(r"[*_`]+"), "")


def _title(text: str) -> str:
    for pattern, replacement in INLINE:
        text = pattern.sub(replacement, text)
    return text.strip()


def _cells(notebook: Path) -> list[dict]:
    return json.loads(Path(notebook).read_text())["cells"]


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _anchors(cells) -> list[tuple[int, int, str, str | None]]:
    """(cell index, level, title, id) of every Markdown heading and MyST target (level 0) outside a fence, in
    order; a heading's id is None where an earlier heading made the same one."""
    found, seen = [], set()
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "markdown":
            continue
        fenced = False
        for line in _source(cell).splitlines():
            if FENCE.match(line):
                fenced = not fenced
                continue
            heading, target = (None, None) if fenced else (HEADING.match(line), TARGET.match(line))
            if heading:
                title = _title(heading.group(2))
                anchor = make_id(title)
                found.append((index, len(heading.group(1)), title, anchor if anchor and anchor not in seen else None))
                seen.add(anchor)
            elif target:
                found.append((index, 0, target.group(1), make_id(target.group(1)) or None))
    return found


def headings(notebook: Path) -> list[tuple[int, str, str | None]]:
    """(level, title, id) of each Markdown heading of ``notebook``; id None for a title whose id repeats an
    earlier one (docutils numbers it by what else the page holds)."""
    return [(level, title, anchor) for _, level, title, anchor in _anchors(_cells(notebook)) if level]


def glance_section(notebook: Path) -> str | None:
    """The id of the section holding the first code cell that computes the glance rows (``glance_rows(`` or
    ``write_glance(``): the last heading or MyST target before it. None when no cell computes glance rows, nothing
    precedes it, or the heading's id is not predictable."""
    cells = _cells(notebook)
    writer = next((i for i, c in enumerate(cells)
                   if c.get("cell_type") == "code" and COMPUTES_GLANCE.search(_source(c))), None)
    if writer is None:
        return None
    before = [anchor for index, _, _, anchor in _anchors(cells) if index < writer]
    return before[-1] if before else None


def chapter_sections(labels, runs, layout=None, model: str | None = None) -> dict[str, str]:
    """Glance label -> the id of the section of its page (of ``model``'s, when given) that writes its rows
    (:func:`glance_section`), for labels that name a page with such a section; read from the executed page,
    else from its template."""
    layout = layout or default_layout()
    sections = {}
    for label in dict.fromkeys(str(x) for x in labels):
        run = chapter_page(label, runs, model)
        if run is None:
            continue
        for notebook in (layout.book / run.output, layout.template(run.chapter)):
            if notebook.exists():
                anchor = glance_section(notebook)
                if anchor:
                    sections[label] = anchor
                break
    return sections
