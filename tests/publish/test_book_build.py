"""The book builds with jupyter-book, warnings as errors, and has every page of the plan.

Also the parts generated at build time (``ropelib.publish.sphinx_pages``): the Execution page from
``book/timings.json``, each page's download links to its tables, the stylesheet.

The build itself is the session fixture ``built_book`` (conftest.py): it runs once,
however many tests use it, and test_browser opens what it produced.
"""

import json
import re

import pytest

from ropelib.publish import execution_page, page_tables, plan
from ropelib.paths import ROOT


@pytest.fixture(scope="module")
def html(built_book):
    result, html = built_book
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"jupyter-book build failed:\n{log[-6000:]}"
    warnings = [line for line in log.splitlines() if re.search(r"\bWARNING\b|\bERROR\b", line)]
    assert not warnings, "\n".join(warnings)
    return html


def test_intro_references_and_reproduce_pages_exist(html):
    assert (html / "index.html").exists()
    for page in ("intro", "reproduce", "execution", "references"):
        assert (html / "book" / f"{page}.html").exists(), page


def test_every_run_plan_page_is_built(html):
    for run in plan.load():
        page = html / "book" / f"{run.output.removesuffix('.ipynb')}.html"
        assert page.exists(), f"{run.output} is in book/runs.yml but not in the HTML"
        text = page.read_text()
        assert "Parameters of this page" in text, f"{page.name}: no parameters table"
        assert "injected-parameters" not in text and "# Parameters" not in text, f"{page.name}: parameters cell shown"


def test_references_page_lists_the_paper(html):
    text = (html / "book" / "references.html").read_text()
    assert "Understanding the" in text and "2406.13282" in text


def test_execution_page_lists_every_page_with_its_time_and_the_total(html):
    text = (html / "book" / "execution.html").read_text()
    timings = execution_page.load_timings(ROOT / "book" / "timings.json")
    runs = plan.load()
    assert "% ropebook" not in text, "a placeholder of book/execution.md was not filled"
    for run in runs:
        assert f'href="{run.output.removesuffix(".ipynb")}.html"' in text, f"{run.output} missing from the Execution page"
    recorded = [execution_page.entry(timings.get(f"book/{r.output}"))["seconds"] for r in runs]
    total = sum(s for s in recorded if s is not None)
    assert f"<strong>{total:.1f}</strong>" in text
    for table in (ROOT / "data" / "results").glob("*.csv"):
        assert f"{table.name}</span></code></a>" in text, f"{table.name}: no download link"


def test_chapter_pages_link_their_tables_for_download(html):
    owners = page_tables.tables_by_page(plan.load(), ROOT)
    linked = 0
    for page, names in owners.items():
        text = (html / "book" / f"{page}.html").read_text()
        for name in names:
            assert re.search(rf'href="\.\./_downloads/[0-9a-f]+/{re.escape(name)}"', text), f"{page}: {name} not linked"
            linked += 1
    assert linked, "no page links a table"


def test_static_css_is_shipped(html):
    assert (html / "_static" / "ropebook.css").exists()
    assert "_static/ropebook.css" in (html / "book" / "intro.html").read_text()


# --- the generated parts, without a build ---------------------------------------------------

def test_execution_status_reads_both_timing_formats():
    runs = [plan.Run("a", "a.ipynb", "Page A"), plan.Run("b", "b.ipynb", "Page | B"), plan.Run("c", "c.ipynb", "C")]
    timings = {"book/a.ipynb": {"seconds": 12.25, "ran_at": "2026-11-29T21:00:00Z", "cache_key": "0123456789abcdef",
                                "ropelib": "0.2.0"},
               "book/b.ipynb": 3.0, "book/gone.ipynb": {"seconds": 99}}
    lines = execution_page.status_markdown(runs, timings).splitlines()
    assert lines[2] == "| {doc}`Page A <a>` | 12.2 | 2026-11-29 21:00:00 | `01234567` | 0.2.0 |"
    assert lines[3] == "| {doc}`Page \\| B <b>` | 3.0 | – | – | – |"
    assert lines[4] == "| {doc}`C <c>` | – | – | – | – |"
    assert lines[5] == "| **total** (2 of 3 pages recorded) | **15.2** | | | |"


def test_tables_are_matched_to_the_pages_that_wrote_them(tmp_path):
    (tmp_path / "book").mkdir()
    results_dir = tmp_path / "data" / "results"
    results_dir.mkdir(parents=True)
    for name in ("attention-256-gap", "attention-256-training-free-gap", "needle-trials", "finding3-needles",
                 "orphan-table"):
        (results_dir / f"{name}.csv").write_text("a,b\n1,2\n")
    (results_dir / "glance-finding3.csv").write_text("order,chapter\n3.1,cpt-length\n")
    (results_dir / "glance-finding2.csv").write_text("order,chapter\n2.1,needle-entropy\n")
    (tmp_path / "book" / "needle-entropy.ipynb").write_text(json.dumps({"cells": [
        {"cell_type": "code", "source": ['results.write_csv(trials, "needle-trials")\n']}]}))
    runs = [plan.Run("attention-patterns", "attention-patterns-256.ipynb", "A", {"results_name": "attention-256"}),
            plan.Run("attention-patterns", "attention-patterns-tf.ipynb", "B",
                     {"results_name": "attention-256-training-free"}),
            plan.Run("needle-entropy", "needle-entropy.ipynb", "C"),
            plan.Run("cpt-length", "cpt-length.ipynb", "D"),
            plan.Run("glance", "glance.ipynb", "E", reads=("data/results/glance-*.csv",))]
    owners = page_tables.tables_by_page(runs, tmp_path)
    assert owners == {"attention-patterns-256": ["attention-256-gap.csv"],
                      "attention-patterns-tf": ["attention-256-training-free-gap.csv"],
                      "needle-entropy": ["glance-finding2.csv", "needle-trials.csv"],
                      "cpt-length": ["finding3-needles.csv", "glance-finding3.csv"]}
    assert page_tables.tables_read(runs[-1], tmp_path) == ["glance-finding2.csv", "glance-finding3.csv"]
    table = execution_page.tables_markdown(tmp_path, owners, {"needle-entropy": "C"})
    assert "| {download}`needle-trials.csv </data/results/needle-trials.csv>` | 1 x 2 | 8 B | {doc}`C <needle-entropy>` |" \
        in table
    assert "| {download}`orphan-table.csv </data/results/orphan-table.csv>` | 1 x 2 | 8 B | – |" in table


def test_a_real_model_page_owns_its_own_tables_not_the_organism_pages(tmp_path):
    (tmp_path / "book").mkdir()
    results_dir = tmp_path / "data" / "results"
    results_dir.mkdir(parents=True)
    for name in ("needle-trials", "needle-trials-smollm2"):
        (results_dir / f"{name}.csv").write_text("a,b\n1,2\n")
    (results_dir / "glance-finding2.csv").write_text("order,chapter\n2.1,needle-entropy\n")
    (results_dir / "glance-finding2-smollm2.csv").write_text("order,chapter\n2.1,needle-entropy\n")
    code = {"cells": [{"cell_type": "code", "source": ['results.write_csv(trials, "needle-trials")\n',
                                                        '_ = results.write_glance(rows, "finding2")\n']}]}
    for page in ("needle-entropy", "smollm2-needle-entropy"):
        (tmp_path / "book" / f"{page}.ipynb").write_text(json.dumps(code))
    runs = [plan.Run("needle-entropy", "needle-entropy.ipynb", "C", {"variants": ["rope:cpt-rope"]}),
            plan.Run("needle-entropy", "smollm2-needle-entropy.ipynb", "S", {"variants": ["rope:smollm2"]})]
    assert page_tables.tables_by_page(runs, tmp_path) == {
        "needle-entropy": ["glance-finding2.csv", "needle-trials.csv"],
        "smollm2-needle-entropy": ["glance-finding2-smollm2.csv", "needle-trials-smollm2.csv"]}
