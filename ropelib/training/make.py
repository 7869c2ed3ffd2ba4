"""``make models``: train every checkpoint of ``recipes.SPECS`` in parallel processes, then check the gates.

Each checkpoint starts as soon as its parent exists (``jobs`` processes at a time, one thread
each), longest chain of descendants first, so the run's critical path is the longest
parent -> child chain, not the sum. Every checkpoint is seeded and single-threaded, so a run
is deterministic on a given machine. At the end the run fails naming every checkpoint that
missed its gate and is not a ``recipes.KNOWN_MISSES`` (the checkpoints are saved either way).
Not here: what each checkpoint is and how one is trained (``recipes``), timing a run
(``benchmarks/models.py``).
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from ropelib.text import corpus
from ropelib.training.recipes import SPECS, gate_failures, train_one

# relative cost of a training token by size (scheduling only): wall seconds per million tokens at
# L0, 2 processes on 2 cores, measured 2026-12-03: S 83, M 148, L 255; per token, 1024 costs 1.44x
# and 2048 1.99x what 256 does, which the (1 + length / 3000) factor of _cost approximates
SIZE_COST = {"S": 0.56, "M": 1.0, "L": 1.73}


def _cost(name: str) -> float:
    spec = SPECS[name]
    tokens = sum(st.length * st.steps * st.batch_size * (1 + st.length / 3000) for st in spec.recipe.stages)
    return tokens * SIZE_COST[spec.size]


def _chain_length(name: str) -> float:
    """Estimated cost of the longest chain of descendants starting at ``name`` (scheduling priority)."""
    children = [s.name for s in SPECS.values() if s.parent == name]
    return _cost(name) + max((_chain_length(c) for c in children), default=0)


def startable(pending: list[str], names, finished, running: int, jobs: int) -> list[str]:
    """Which of ``pending`` (in priority order) to start now: each whose parent is finished (or is
    not being trained in this run), while fewer than ``jobs`` run. ``train_all`` and
    ``simulate`` both schedule with this, so an estimate replays the real order."""
    chosen = []
    for name in pending:
        parent = SPECS[name].parent
        if running + len(chosen) < jobs and (parent is None or parent not in names or parent in finished):
            chosen.append(name)
    return chosen


def priority_order(names) -> list[str]:
    """Longest estimated chain of descendants first (the critical path starts as early as it can)."""
    return sorted(names, key=_chain_length, reverse=True)


def simulate(durations: dict[str, float], jobs: int = 2) -> dict[str, tuple[float, float]]:
    """(start, finish) of every checkpoint of ``durations`` (seconds each) under ``train_all``'s schedule."""
    names, pending = list(durations), priority_order(durations)
    running: dict[str, float] = {}  # name -> finish time
    times, now = {}, 0.0
    while pending or running:
        for name in startable(pending, names, times.keys() - running.keys(), len(running), jobs):
            pending.remove(name)
            running[name] = now + durations[name]
            times[name] = (now, running[name])
        name = min(running, key=running.get)
        now = running.pop(name)
    return times


def train_all(names: list[str] | None = None, jobs: int = 2, scale: float = 1.0) -> dict[str, dict]:
    """Retrain ``names`` (default: all), ``jobs`` processes at a time, each as soon as its parent
    exists, longest chain first; then fail naming every checkpoint that missed its gate."""
    names = names or list(SPECS)
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise ValueError(f"unknown checkpoint(s) {unknown}; expected some of {', '.join(SPECS)}")
    corpus.build_manifest()
    start = time.perf_counter()
    pending = priority_order(names)
    running, manifests = {}, {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        def submit_ready():
            for name in startable(pending, names, manifests, len(running), jobs):
                running[pool.submit(train_one, name, 0, scale)] = (name, time.perf_counter() - start)
                pending.remove(name)

        submit_ready()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name, started = running.pop(future)
                manifest = future.result()
                manifest["started_at_seconds"] = round(started, 1)
                manifest["finished_at_seconds"] = round(time.perf_counter() - start, 1)
                manifests[name] = manifest
                gates = ", ".join(f"{r['rate']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] at {r['length']}"
                                  for r in manifest["gate"]) or "no gate (smoke)"
                print(f"{name}: gate {gates}; dev loss {manifest['final']['dev_loss_at_L0']:.4f}; "
                      f"{manifest['wall_seconds']} s", flush=True)
            submit_ready()
    print(f"all checkpoints trained in {time.perf_counter() - start:.0f} s", flush=True)
    failures = gate_failures(manifests)
    if failures:
        raise GateMissed("checkpoints missed their retrieval gate (list them in recipes.KNOWN_MISSES "
                         "with the reason, or fix the recipe):\n  " + "\n  ".join(failures), manifests)
    return manifests


class GateMissed(RuntimeError):
    """Some checkpoints missed their gate; ``manifests`` holds every trained one (they are saved)."""

    def __init__(self, message: str, manifests: dict[str, dict]):
        super().__init__(message)
        self.manifests = manifests
