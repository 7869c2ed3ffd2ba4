"""Time one full ``make models`` run: every checkpoint, its wall time, tokens and gate.

    python benchmarks/models.py [--jobs 2] [--out benchmarks/results/models.json]
    python benchmarks/models.py --only base-S cpt-pi-S   # a partial run (parents must exist)

Runs ``ropelib.training.make.train_all`` exactly as ``make models`` does (2 processes x 1
thread, children as soon as their parent exists), into ``data/models`` of the checkout
it runs from (``ROPEBOOK_MODELS`` to train elsewhere), then writes one JSON record:
per checkpoint its start and finish (seconds since the run began), wall seconds, tokens
and gate rows; the whole run's wall time; and the critical path (the chain of
parent -> child whose finish time is the latest). The budget is 3,600 s on 2 cores.
A run whose gate fails still writes the record (with the failures) before exiting 1.
``--only`` retrains just the named checkpoints (their parents are read from disk) and
writes ``models-partial.json`` by default: it is a record of those checkpoints, never of
the whole ``make models`` budget.
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

BUDGET_SECONDS = 3600


def critical_path(manifests: dict[str, dict]) -> list[str]:
    """The parent -> child chain ending at the checkpoint that finished last."""
    name = max(manifests, key=lambda n: manifests[n]["finished_at_seconds"])
    chain = [name]
    while manifests[chain[-1]].get("parent") in manifests:
        chain.append(manifests[chain[-1]]["parent"])
    return chain[::-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="retrain only these checkpoints")
    parser.add_argument("--out", default=None, help="default: results/models.json, or models-partial.json with --only")
    args = parser.parse_args()
    out = Path(args.out or Path(__file__).parent / "results" / ("models-partial.json" if args.only else "models.json"))
    from ropelib import paths
    from ropelib.training import make as make_models

    start, error = time.perf_counter(), None
    try:
        manifests = make_models.train_all(args.only, jobs=args.jobs)
    except make_models.GateMissed as failed:  # gate misses: the checkpoints exist, record them anyway
        error, manifests = str(failed), failed.manifests
    wall = time.perf_counter() - start
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    record = {
        "what": (f"a partial run: only {', '.join(args.only)} (ropelib.training.make.train_all)" if args.only
                 else "one full `make models` run (ropelib.training.make.train_all)"),
        "commit": commit,
        "jobs": args.jobs,
        "threads_per_job": 1,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "wall_seconds": round(wall, 1),
        "budget_seconds": BUDGET_SECONDS,
        "within_budget": None if args.only else wall <= BUDGET_SECONDS,
        "critical_path": critical_path(manifests) if all("finished_at_seconds" in m for m in manifests.values()) else None,
        "gate_error": error,
        "checkpoints": {
            name: {k: m.get(k) for k in ("parent", "size", "started_at_seconds", "finished_at_seconds",
                                         "wall_seconds", "tokens_seen", "tokens_by_length", "gate", "known_miss")}
            for name, m in manifests.items()
        },
    }
    paths.write_json_atomic(out, record)
    print(json.dumps({k: record[k] for k in ("wall_seconds", "within_budget", "critical_path", "gate_error")}))
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
