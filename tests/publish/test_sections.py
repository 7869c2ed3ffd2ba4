"""Which section of a page computes its glance rows, as the id Sphinx gives it (``ropelib.publish.sections``).

The ids are checked against docutils' own rule here and against the built HTML by the browser test
(tests/publish/test_browser.py: every glance link's fragment is an element of its page).
"""

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from ropelib import results
from ropelib.paths import ROOT
from ropelib.publish import plan, sections
from ropelib.publish.plan import Layout, Run


def _notebook(path, *cells):
    nbformat.write(new_notebook(cells=list(cells)), str(path))
    return path


def test_a_heading_gets_the_id_docutils_makes_of_its_title(tmp_path):
    page = _notebook(tmp_path / "p.ipynb",
                     new_markdown_cell("# Attention patterns beyond the pretrained length (4 L0 = 1024)\n\ntext"),
                     new_markdown_cell("## The paper's two statements, computed\n\n```python\n# not a heading\n```"),
                     new_markdown_cell("## Fig. 4a-d: *pass rate* and `entropy` per cell"),
                     new_markdown_cell("## Verdict"), new_markdown_cell("### Verdict"))
    assert sections.headings(page) == [
        (1, "Attention patterns beyond the pretrained length (4 L0 = 1024)",
         "attention-patterns-beyond-the-pretrained-length-4-l0-1024"),
        (2, "The paper's two statements, computed", "the-paper-s-two-statements-computed"),
        (2, "Fig. 4a-d: pass rate and entropy per cell", "fig-4a-d-pass-rate-and-entropy-per-cell"),
        (2, "Verdict", "verdict"),
        (3, "Verdict", None)]  # a repeated title: docutils numbers its id by the rest of the page


def test_the_glance_section_is_the_one_holding_the_cell_that_computes_the_rows(tmp_path):
    page = _notebook(tmp_path / "p.ipynb", new_markdown_cell("# Title"), new_markdown_cell("## Measuring"),
                     new_code_cell("x = 1"), new_markdown_cell("## Verdicts\n\nThree claims."),
                     new_code_cell("rows = verdicts.glance_rows(x)"), new_markdown_cell("## Writing"),
                     new_code_cell('results.write_glance(rows, "f")'))
    assert sections.glance_section(page) == "verdicts"  # where the rows are computed, not where they are saved
    target = _notebook(tmp_path / "t.ipynb", new_markdown_cell("## Measuring\n\n(finding1-verdicts)=\nThe rule."),
                       new_code_cell('results.write_glance(rows, "f")'))
    assert sections.glance_section(target) == "finding1-verdicts"  # a MyST target placed by the template wins
    assert sections.glance_section(_notebook(tmp_path / "n.ipynb", new_markdown_cell("## A"),
                                             new_code_cell("x = 1"))) is None  # writes no glance rows
    assert sections.glance_section(_notebook(tmp_path / "d.ipynb", new_markdown_cell("## Verdict"),
                                             new_markdown_cell("## Verdict"),
                                             new_code_cell("results.write_glance(r, 'f')"))) is None


def test_chapter_sections_read_the_executed_page_else_its_template(tmp_path):
    layout = Layout(tmp_path)
    layout.book.mkdir()
    layout.chapters.mkdir()
    _notebook(layout.chapters / "needles.ipynb", new_markdown_cell("## Verdict"), new_code_cell("glance_rows(x)"))
    _notebook(layout.chapters / "ppl.ipynb", new_markdown_cell("## Verdicts"), new_code_cell("glance_rows(x)"))
    _notebook(layout.book / "ppl-cpt.ipynb", new_markdown_cell("## Verdicts, executed"), new_code_cell("glance_rows(x)"))
    runs = [Run("needles", "needles.ipynb", "Needles", {}), Run("ppl", "ppl-cpt.ipynb", "Perplexity", {}),
            Run("other", "other.ipynb", "Other", {})]
    assert sections.chapter_sections(["needles", "Perplexity", "Other", "nowhere"], runs, layout) == {
        "needles": "verdict",  # not executed yet: its template
        "Perplexity": "verdicts-executed"}  # executed: the page itself; no page or no file: no section


def test_every_committed_glance_row_has_a_section_on_its_page():
    rows = results.read_glance()
    runs = plan.load()
    found = sections.chapter_sections(rows["chapter"], runs)
    assert set(found) == set(rows["chapter"].astype(str)), set(rows["chapter"].astype(str)) - set(found)
    for label, anchor in found.items():
        page = ROOT / "book" / plan.chapter_page(label, runs).output
        assert anchor in [a for _, _, a in sections.headings(page)], (label, anchor)
