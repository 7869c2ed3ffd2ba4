"""A Sphinx extension for the book's pages: what is generated when the book is built.

- **Execution page**: the placeholder lines of ``book/execution.md`` are replaced
  (``source-read``) by ``execution_page``'s tables, from ``book/timings.json`` and
  ``data/results/`` as they are at build time; nothing generated is written to the tree.
- **Tables line**: each page of the run plan gets, under its parameters table, a line of
  download links to the CSV tables it wrote (``page_tables``; the glance page: those it
  reads). Sphinx copies each file into ``_downloads/``.
- **Width**: pages that show a figure (any image) drop the secondary "Contents" sidebar, so
  the figures and tables get its width (``book/_static/ropebook.css`` widens the column).

Enabled in ``_config.yml`` under ``sphinx: extra_extensions``; does nothing on a book
without ``book/runs.yml``.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx import addnodes

from ropelib.publish import execution_page, page_tables
from ropelib.publish import plan as _plan

HIDE_SECONDARY_SIDEBAR = "html_theme.sidebar_secondary.remove"  # pydata-sphinx-theme's page metadata
PARAMETERS_LINKS = "Template chapters/"  # how the runner's links under the parameters table begin


def _book(app) -> dict:
    """Runs, titles and tables of the book, computed once per build (empty when there is no run plan)."""
    if not hasattr(app, "_ropebook_pages"):
        layout = _plan.Layout(Path(app.srcdir))
        try:
            runs = _plan.load(layout)
        except _plan.PlanError:
            runs = []
        written = page_tables.tables_by_page(runs, layout.root) if runs else {}
        read = {Path(r.output).stem: page_tables.tables_read(r, layout.root) for r in runs if r.reads}
        app._ropebook_pages = {"layout": layout, "runs": runs, "written": written, "read": read,
                               "titles": {Path(r.output).stem: r.title for r in runs}}
    return app._ropebook_pages


def _fill_execution_page(app, docname: str, source: list[str]) -> None:
    text = source[0]
    if execution_page.STATUS_PLACEHOLDER not in text and execution_page.TABLES_PLACEHOLDER not in text:
        return
    book = _book(app)
    layout = book["layout"]
    app.env.note_dependency(str(layout.timings))
    app.env.note_dependency(str(layout.plan))
    status = execution_page.status_markdown(book["runs"], execution_page.load_timings(layout.timings))
    tables = execution_page.tables_markdown(layout.root, book["written"], book["titles"])
    source[0] = (text.replace(execution_page.STATUS_PLACEHOLDER, status)
                 .replace(execution_page.TABLES_PLACEHOLDER, tables))


def _download(name: str) -> nodes.Node:
    reference = addnodes.download_reference("", "", reftarget=f"/{page_tables.RESULTS}/{name}", refexplicit=True,
                                            refdomain="", reftype="download")
    reference += nodes.literal(name, name)
    return reference


def _tables_line(label: str, names: list[str]) -> nodes.paragraph:
    line = nodes.paragraph(classes=["ropebook-tables"])
    line += nodes.strong(label, label)
    for i, name in enumerate(names):
        line += nodes.Text(" · " if i else " ")
        line += _download(name)
    return line


def _add_tables_line(app, doctree) -> None:
    """Under the parameters table of a run-plan page (else at its top), its tables as download links."""
    book = _book(app)
    page = app.env.docname.removeprefix("book/")
    if not app.env.docname.startswith("book/") or page not in book["titles"]:
        return
    if page in book["read"]:
        line = _tables_line("Tables read by this page:", book["read"][page])
    else:
        line = _tables_line("Tables written by this page:", book["written"].get(page, []))
    if len(line.children) == 1:
        return
    anchor = next((p for p in doctree.findall(nodes.paragraph) if p.astext().startswith(PARAMETERS_LINKS)), None)
    if anchor is not None:
        anchor.parent.insert(anchor.parent.index(anchor) + 1, line)
        return
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is not None:
        first_subsection = next((i for i, child in enumerate(section.children) if isinstance(child, nodes.section)),
                                len(section.children))
        section.insert(first_subsection, line)


def _wide_pages(app, pagename, templatename, context, doctree) -> None:
    """Pages with a figure drop the secondary sidebar (pydata-sphinx-theme reads it from the page's metadata)."""
    if doctree is not None and next(iter(doctree.findall(nodes.image)), None) is not None:
        context["meta"] = {**(context.get("meta") or {}), HIDE_SECONDARY_SIDEBAR: "true"}


def setup(app) -> dict:
    app.connect("source-read", _fill_execution_page)
    app.connect("doctree-read", _add_tables_line, priority=400)  # before Sphinx collects the download files
    app.connect("html-page-context", _wide_pages, priority=400)  # before the theme lays the page out
    return {"parallel_read_safe": True, "parallel_write_safe": True}
