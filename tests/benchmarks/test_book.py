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


def test_a_real_page_that_read_trials_back_is_held_to_its_cost_not_its_wall_time():
    rerun = {**page("smollm2-perplexity", 21.0, True),
             "trials": {"computed": 0, "read_back": 2, "read_back_without_time": 0,
                        "names": {"computed": {}, "read_back": {"losses/a": 2990.0, "losses/b": 2989.0}}}}
    real = book.report([rerun], [], None)["real_model"]
    assert real["total_seconds"] == 6000.0 and not real["within_budget"]  # over 90 minutes as a page
    unknown = {**page("smollm2-perplexity", 21.0, True),
               "trials": {"computed": 0, "read_back": 1, "read_back_without_time": 1,
                          "names": {"computed": {}, "read_back": {"losses/a": None}}}}
    real = book.report([unknown], [], None)["real_model"]
    assert real["cost_unknown"] == ["book/smollm2-perplexity.ipynb"] and not real["within_budget"]



def test_a_pooled_page_after_the_pages_that_computed_its_trials_costs_only_its_wall_time():
    def part(name, seconds, computed, read_back):
        return {**page(name, seconds, True), "trials": {"names": {"computed": computed, "read_back": read_back}}}

    pages = [part("smollm2-needle-rope", 2400.0, {"cell/r1": 1000.0, "cell/r2": 1300.0}, {}),
             part("smollm2-needle-ntk", 100.0, {}, {"cell/n1": 2000.0}),  # kept by an earlier, interrupted run
             part("smollm2-needle-entropy", 60.0, {}, {"cell/r1": 1000.0, "cell/r2": 1300.0, "cell/n1": 2000.0})]
    costs = book.plan_costs(pages)
    assert costs == {"book/smollm2-needle-rope.ipynb": 2400.0, "book/smollm2-needle-ntk.ipynb": 2100.0,
                     "book/smollm2-needle-entropy.ipynb": 60.0}
    real = book.report(pages, [], None)["real_model"]
    assert real["total_seconds"] == 4560.0 and real["longest"]["seconds"] == 2400.0 and real["within_budget"]
