"""Benchmark: do the book's pages fit their budgets? The organism's pages: 15 minutes together; the
real model's (SmolLM2-135M, pages whose model parameters name only it): 6 hours together, no page
over 90 minutes, on this 2-core machine; its pages still queued (``book/queued.yml``) are listed as
``queued``: until they have run, the real model's total is a lower bound. Every result records the
machine's fp32 matmul rate on 2 threads (``meter.matmul_gflops``), measured in the same run: page
times scale with it, and machines of this class differ up to 2x.

A real-model page is measured by its cost from an empty trial cache (``seconds_from_empty_cache``
in ``book/timings.json``: its wall time plus the kept seconds of the trials it read back,
``ropelib.tasks.trials``), not by the wall time of a re-run that read them back.

The runner records the wall time of every run-plan page it executes in
``book/timings.json`` (papermill execution: kernel start, imports, model loading and the
chapter's work). This script joins that record with the plan (``book/runs.yml``) and writes
``benchmarks/results/book.json``: seconds per page, their sum, and the sum against the
budget. Pages of the plan with no recorded time are listed as ``missing`` (their time is
unknown, so the total is then a lower bound); recorded pages no longer in the plan are
ignored.

  python benchmarks/book.py            # from book/timings.json (the last execution of each page)
  python benchmarks/book.py --force    # first re-execute the whole plan (ropebook run --force)
  python benchmarks/book.py --force --pages 'smollm2-*'   # re-execute only the real model's pages

``--force`` runs every page again, one after the other, on this machine as it is: run it on
an otherwise idle machine for a number worth quoting (timings taken under load, e.g. while
models train, can be several times the idle ones; the JSON records the load average) (the book's budget is for 2 CPU cores;
``ROPEBOOK_THREADS`` sets the threads each page uses, default 2). Its result also records
the wall time of the whole ``ropebook run``, runner overhead included. The per-page table
printed at the end is the one the README's performance section quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ropelib.publish import plan  # noqa: E402
from ropelib.publish.runner import is_real_model_page  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from meter import matmul_gflops  # noqa: E402

BUDGET_SECONDS = 15 * 60  # the organism's pages, together
REAL_BUDGET_SECONDS = 6 * 3600  # the real model's pages, together
REAL_PAGE_BUDGET_SECONDS = 90 * 60  # any one real-model page
OUTPUT = ROOT / "benchmarks" / "results" / "book.json"


def rerun_plan(pages: str = "") -> float:
    """Execute the plan (or its ``pages`` globs) again (``ropebook run --force``); its wall time in seconds."""
    command = [sys.executable, "-m", "ropelib", "run", "--force", *(["--pages", pages] if pages else [])]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - start


def page_times(layout: plan.Layout) -> tuple[list[dict], list[str], list[str]]:
    """(pages with their recorded seconds, in plan order; the organism's and the real model's outputs with no record)."""
    timings = json.loads(layout.timings.read_text()) if layout.timings.exists() else {}
    pages, missing, real_missing = [], [], []
    for run in plan.load(layout):
        key = f"book/{run.output}"
        if key in timings:
            entry = timings[key]
            seconds = entry["seconds"] if isinstance(entry, dict) else entry
            page = {"output": key, "chapter": run.chapter, "part": run.part, "seconds": seconds,
                    "real_model": is_real_model_page(run.parameters)}
            if isinstance(entry, dict) and "trials" in entry:  # kept trials read back: the wall time is not the cost
                page["trials"] = entry["trials"]
            if isinstance(entry, dict):
                page["fp32_matmul_gflops_2_threads"] = entry.get("fp32_matmul_gflops_2_threads")
            pages.append(page)
        else:
            (real_missing if is_real_model_page(run.parameters) else missing).append(key)
    return pages, missing, real_missing


def queued_pages(layout: plan.Layout) -> list[str]:
    """The real model's pages planned in ``book/queued.yml`` but not yet in the run plan."""
    path = layout.book / "queued.yml"
    entries = yaml.safe_load(path.read_text()) if path.exists() else []
    return [f"book/{entry['output']}" for entry in entries or []]


def plan_costs(real: list[dict]) -> dict[str, float | None]:
    """Each real-model page's cost in a run of the plan from an empty trial cache, in plan order: its wall time
    plus the recorded seconds of the trials it read back that no earlier page computed or read (a pooled page
    after the pages that computed its trials costs only its own wall time); None when such a trial has no
    recorded seconds. A page without kept trials costs its wall time."""
    seen, costs = set(), {}
    for page in real:
        names = (page.get("trials") or {}).get("names")
        if names is None:
            costs[page["output"]] = page["seconds"]
            continue
        new = [seconds for name, seconds in names["read_back"].items() if name not in seen]
        costs[page["output"]] = None if None in new else round(page["seconds"] + sum(new), 1)
        seen |= set(names["computed"]) | set(names["read_back"])
    return costs


def real_model_part(pages: list[dict], missing: list[str], queued: list[str] = ()) -> dict:
    """The real model's pages (``real_model`` True) against their own budgets: the sum, and the longest page;
    ``queued`` pages have not run, so they make the total a lower bound and the budget unproven."""
    real = [p for p in pages if p["real_model"]]
    in_plan = plan_costs(real)
    unknown = [output for output, cost in in_plan.items() if cost is None]
    costs = {p["output"]: in_plan[p["output"]] if in_plan[p["output"]] is not None else p["seconds"] for p in real}
    for page in real:
        page["cost_in_plan_seconds"] = in_plan[page["output"]]
    total = round(sum(costs.values()), 1)
    longest = max(real, key=lambda p: costs[p["output"]], default=None)
    return {"budget_seconds": REAL_BUDGET_SECONDS, "page_budget_seconds": REAL_PAGE_BUDGET_SECONDS,
            "measure": "seconds in a run of the plan from an empty trial cache (wall time + recorded seconds of the "
                       "trials read back that no earlier page of the plan computed)",
            "total_seconds": total, "missing": missing, "queued": list(queued), "cost_unknown": unknown,
            "longest": None if longest is None else {"output": longest["output"], "seconds": costs[longest["output"]]},
            "within_budget": bool(real) and not missing and not queued and not unknown
            and total <= REAL_BUDGET_SECONDS and costs[longest["output"]] <= REAL_PAGE_BUDGET_SECONDS,
            "pages": real}


def report(pages: list[dict], missing: list[str], rerun_seconds: float | None, real_missing: list[str] = (),
           queued: list[str] = (), gflops: float | None = None) -> dict:
    """The organism's pages against the book's budget (top level, as before), the real model's apart."""
    organism = [p for p in pages if not p["real_model"]]
    total = round(sum(p["seconds"] for p in organism), 1)
    return {
        "benchmark": "wall time of every run-plan page (papermill execution), against the book's budgets",
        "source": "ropebook run --force, just now" if rerun_seconds is not None else "book/timings.json as committed",
        "budget_seconds": BUDGET_SECONDS,
        "total_seconds": total,
        "within_budget": total <= BUDGET_SECONDS and not missing,
        "budget_left_seconds": round(BUDGET_SECONDS - total, 1),
        "missing": missing,
        "whole_run_seconds": None if rerun_seconds is None else round(rerun_seconds, 1),
        "pages": organism,
        "real_model": real_model_part(pages, list(real_missing), list(queued)),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "ropebook_threads": os.environ.get("ROPEBOOK_THREADS", "2 (default)"),
                    "fp32_matmul_gflops_2_threads": gflops,
                    # pages timed while other processes ran are slower; a high load here is a hint
                    "load_average_1_5_15_min_now": [round(x, 2) for x in os.getloadavg()]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="re-execute the plan's pages first (slow)")
    parser.add_argument("--pages", default="", help="with --force: only these pages (ropebook run --pages), e.g. 'smollm2-*'")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where to write the JSON (default {OUTPUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    layout = plan.Layout(ROOT)
    rerun_seconds = rerun_plan(args.pages) if args.force else None
    pages, missing, real_missing = page_times(layout)
    result = report(pages, missing, rerun_seconds, real_missing, queued_pages(layout), matmul_gflops(2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    real = result["real_model"]
    print(f"{'page':<48} {'seconds':>8}")
    seconds = {page["output"]: f"{page['seconds']:.1f}" for page in result["pages"]}
    seconds.update({page["output"]: "unknown" if page["cost_in_plan_seconds"] is None
                    else f"{page['cost_in_plan_seconds']:.1f}" for page in real["pages"]})
    for run in plan.load(layout):
        output = f"book/{run.output}"
        print(f"{output:<48} {seconds.get(output, 'missing'):>8}")
    print(f"{'organism pages':<48} {result['total_seconds']:>8.1f}  (budget {BUDGET_SECONDS} s: "
          f"{'within' if result['within_budget'] else 'NOT within'}"
          f"{', some pages have no time' if result['missing'] else ''})")
    longest = real["longest"]
    print(f"{'real-model pages':<48} {real['total_seconds']:>8.1f}  (budget {REAL_BUDGET_SECONDS} s, each page "
          f"<= {REAL_PAGE_BUDGET_SECONDS} s, longest {longest['seconds'] if longest else '-'} s: "
          f"{'within' if real['within_budget'] else 'NOT within'}"
          f"{', some pages have no time' if real['missing'] else ''}"
          f"{', ' + str(len(real['cost_unknown'])) + ' read back trials of unknown cost' if real['cost_unknown'] else ''}"
          f"{', ' + str(len(real['queued'])) + ' queued' if real['queued'] else ''})")
    print(f"fp32 matmul, 2 threads: {result['machine']['fp32_matmul_gflops_2_threads']} GFLOP/s")
    return 0 if result["within_budget"] and real["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
