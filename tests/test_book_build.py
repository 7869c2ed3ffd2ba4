"""The book builds with jupyter-book, warnings as errors, and has every page of the plan.

The build itself is the session fixture ``built_book`` (conftest.py): it runs once,
however many tests use it, and test_browser opens what it produced.
"""

import re

import pytest

from ropelib import plan


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
    for page in ("intro", "reproduce", "references"):
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
