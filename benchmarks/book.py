"""Benchmark: does the whole run plan (every executed page of the book) fit in 15 minutes?

The runner records the wall time of every run-plan page it executes in
``book/timings.json`` (papermill execution: kernel start, imports, model loading and the
chapter's work). This script joins that record with the plan (``book/runs.yml``) and writes
``benchmarks/results/book.json``: seconds per page, their sum, and the sum against the
budget. Pages of the plan with no recorded time are listed as ``missing`` (their time is
unknown, so the total is then a lower bound); recorded pages no longer in the plan are
ignored.

  python benchmarks/book.py            # from book/timings.json (the last execution of each page)
  python benchmarks/book.py --force    # first re-execute the whole plan (ropebook run --force)

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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ropelib.publish import plan  # noqa: E402

BUDGET_SECONDS = 15 * 60
OUTPUT = ROOT / "benchmarks" / "results" / "book.json"


def rerun_plan() -> float:
    """Execute the whole plan again (``ropebook run --force``); returns its wall time in seconds."""
    command = [sys.executable, "-m", "ropelib", "run", "--force"]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - start


def page_times(layout: plan.Layout) -> tuple[list[dict], list[str]]:
    """(pages with their recorded seconds, in plan order; outputs of the plan with no record)."""
    timings = json.loads(layout.timings.read_text()) if layout.timings.exists() else {}
    pages, missing = [], []
    for run in plan.load(layout):
        key = f"book/{run.output}"
        if key in timings:
            entry = timings[key]
            seconds = entry["seconds"] if isinstance(entry, dict) else entry
            pages.append({"output": key, "chapter": run.chapter, "part": run.part, "seconds": seconds})
        else:
            missing.append(key)
    return pages, missing


def report(pages: list[dict], missing: list[str], rerun_seconds: float | None) -> dict:
    total = round(sum(p["seconds"] for p in pages), 1)
    return {
        "benchmark": "wall time of every run-plan page (papermill execution), against the book's budget",
        "source": "ropebook run --force, just now" if rerun_seconds is not None else "book/timings.json as committed",
        "budget_seconds": BUDGET_SECONDS,
        "total_seconds": total,
        "within_budget": total <= BUDGET_SECONDS and not missing,
        "budget_left_seconds": round(BUDGET_SECONDS - total, 1),
        "missing": missing,
        "whole_run_seconds": None if rerun_seconds is None else round(rerun_seconds, 1),
        "pages": pages,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "ropebook_threads": os.environ.get("ROPEBOOK_THREADS", "2 (default)"),
                    # pages timed while other processes ran are slower; a high load here is a hint
                    "load_average_1_5_15_min_now": [round(x, 2) for x in os.getloadavg()]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="re-execute the whole plan first (slow)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where to write the JSON (default {OUTPUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    layout = plan.Layout(ROOT)
    rerun_seconds = rerun_plan() if args.force else None
    result = report(*page_times(layout), rerun_seconds)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'page':<48} {'seconds':>8}")
    seconds = {page["output"]: f"{page['seconds']:.1f}" for page in result["pages"]}
    for run in plan.load(layout):
        output = f"book/{run.output}"
        print(f"{output:<48} {seconds.get(output, 'missing'):>8}")
    print(f"{'total':<48} {result['total_seconds']:>8.1f}  (budget {BUDGET_SECONDS} s: "
          f"{'within' if result['within_budget'] else 'NOT within'}"
          f"{', some pages have no time' if result['missing'] else ''})")
    return 0 if result["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
