"""benchmarks/book.py: the real model's pages are held to their own budgets (6 h together, 90 min a page)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("book_benchmark", ROOT / "benchmarks" / "book.py")
book = importlib.util.module_from_spec(spec)
spec.loader.exec_module(book)


def page(name, seconds, real):
    return {"output": f"book/{name}.ipynb", "chapter": "c", "part": "p", "seconds": seconds, "real_model": real}


def test_real_pages_are_budgeted_apart_from_the_organism():
    pages = [page("glance", 3.0, False), page("smollm2-perplexity", 1500.0, True), page("smollm2-needles", 2000.0, True)]
    result = book.report(pages, [], None)
    assert result["total_seconds"] == 3.0 and result["within_budget"]  # the organism's 15 minutes
    real = result["real_model"]
    assert real["total_seconds"] == 3500.0 and real["within_budget"]
    assert real["longest"] == {"output": "book/smollm2-needles.ipynb", "seconds": 2000.0}


def test_one_real_page_over_90_minutes_or_a_missing_or_queued_one_is_not_within_budget():
    over = book.report([page("smollm2-needles", 5500.0, True)], [], None)["real_model"]
    assert over["total_seconds"] < book.REAL_BUDGET_SECONDS and not over["within_budget"]
    missing = book.report([page("smollm2-needles", 100.0, True)], [], None, ["book/smollm2-x.ipynb"])["real_model"]
    assert not missing["within_budget"] and missing["missing"] == ["book/smollm2-x.ipynb"]
    queued = book.report([page("smollm2-needles", 100.0, True)], [], None, [], ["book/smollm2-y.ipynb"])["real_model"]
    assert not queued["within_budget"] and queued["queued"] == ["book/smollm2-y.ipynb"]
