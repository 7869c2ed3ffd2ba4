"""Estimate a full ``make models`` run on this machine in a few minutes, before spending an hour on it.

    python benchmarks/models_estimate.py [--jobs 2] [--steps 4] [--out benchmarks/results/models-estimate.json]

1. Calibrate: time ``--steps`` optimizer steps (after one untimed step) of a random-init organism
   for every (size, length, batch) the recipes use, and one no-grad forward pass per (size,
   length) for evaluations and gates; ``--jobs`` processes at once, one thread each, so the cores
   are shared as in ``make models``.
2. Cost each checkpoint of ``recipes.SPECS``: its stages' steps x step time, plus its training-curve
   evaluations (16 + 32 rows at the eval length, 32 at the stage length, every ``eval_every``
   steps) and its gate (``GATE_NEEDLES`` rows at each gate length) x forward time per row.
3. Replay ``make_models``' schedule on those costs (``make_models.simulate``: the same order and
   parent rule as ``train_all``) for the predicted wall time and critical path.

Writes one JSON record; where a run record (``benchmarks/results/models*.json``) or a committed
manifest holds the measured training time of a checkpoint's current recipe, it gets its
measured / estimated ratio beside it, which says how far to trust the estimate (a different
machine shows up there; a measurement of an older recipe is not compared). An
estimate, not a measurement: the record of a run is ``models.json`` (``benchmarks/models.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from models import BUDGET_SECONDS, critical_path  # benchmarks/models.py: the same budget and chain rule

RESULTS = Path(__file__).parent / "results"


def _time_config(config: tuple[str, int, int, int]) -> dict:
    """Seconds per optimizer step at (size, length, batch) and per forward row at (size, length)."""
    import torch

    from ropelib.models import organism
    from ropelib.determinism import seed_everything
    from ropelib.training.curriculum import BatchSampler, lm_loss, optimizer_step

    size, length, batch, steps = config
    seed_everything(0, threads=1)
    model = organism.build(organism.SIZES[size])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    sampler = BatchSampler("train", 0, needle_fraction=0.5, repeat_fraction=0.1)
    for step in range(steps + 1):
        if step == 1:  # the first step pays for allocation: not timed
            start = time.perf_counter()
        optimizer_step(model, optimizer, lm_loss(model, sampler.batch(length, batch)))
    step_seconds = (time.perf_counter() - start) / steps
    rows = 16
    with torch.no_grad():
        tokens = sampler.batch(length, rows)
        model(tokens[:, :-1])  # warm-up: the first forward at a shape pays for allocation
        start = time.perf_counter()
        model(tokens[:, :-1])
        forward_row = (time.perf_counter() - start) / rows
    return {"size": size, "length": length, "batch": batch, "step_seconds": round(step_seconds, 4),
            "forward_seconds_per_row": round(forward_row, 5)}


def estimate(step: dict, forward: dict, spec) -> float:
    """Seconds to train ``spec``: its steps and training-curve evaluations (see the module docstring)."""
    recipe, size = spec.recipe, spec.size
    total = sum(s.steps for s in recipe.stages)
    eval_length = recipe.stages[-1].length
    seconds, done = 0.0, 0
    for stage in recipe.stages:
        seconds += stage.steps * step[(size, stage.length, stage.batch_size)]
        evals = sum(1 for k in range(done + 1, done + stage.steps + 1) if k % recipe.eval_every == 0 or k == total)
        seconds += evals * (48 * forward[(size, eval_length)] + 32 * forward[(size, stage.length)])
        done += stage.steps
    return seconds


def gate_seconds(forward: dict, spec, needles: int) -> float:
    """Seconds of ``spec``'s gate: ``needles`` forward rows at each gate length."""
    return sum(needles * forward[(spec.size, length)] for length in spec.gate_lengths)


def _keyed(tokens_by_length: dict[int, int]) -> dict[str, int]:
    return {str(length): tokens for length, tokens in tokens_by_length.items()}  # as JSON records key it


def measured_walls(specs: dict) -> dict[str, dict]:
    """Measured training seconds per checkpoint of the recipes as they are now: from earlier run
    records (``models*.json``), then the committed manifests (the newest wins). A measurement of a
    different recipe (other tokens by length) is skipped, not compared."""
    from ropelib.models.load import MANIFEST, organism_dir

    sources = [(name, json.loads(path.read_text())) for name in ("models.json", "models-partial.json")
               if (path := RESULTS / name).exists()]
    found = {}
    for source, record in sources:
        for checkpoint, row in record["checkpoints"].items():
            found[checkpoint] = {**row, "record": source}
    for checkpoint in specs:
        path = organism_dir(checkpoint) / MANIFEST
        if path.exists():
            found[checkpoint] = {**json.loads(path.read_text()), "record": f"data/models/{checkpoint}/{MANIFEST}"}
    return {name: {"wall_seconds": row["wall_seconds"], "record": row["record"]} for name, row in found.items()
            if name in specs and row.get("tokens_by_length") == _keyed(specs[name].recipe.tokens_by_length)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps per configuration")
    parser.add_argument("--out", default=str(RESULTS / "models-estimate.json"))
    args = parser.parse_args()
    if args.jobs < 1 or args.steps < 1:
        parser.error("--jobs and --steps must be >= 1")
    from ropelib import paths
    from ropelib.text import corpus
    from ropelib.training import make as make_models, recipes

    corpus.build_manifest()
    configs = sorted({(spec.size, s.length, s.batch_size) for spec in recipes.SPECS.values() for s in spec.recipe.stages})
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        calibration = list(pool.map(_time_config, [(*c, args.steps) for c in configs]))
    calibration_seconds = time.perf_counter() - start
    step = {(r["size"], r["length"], r["batch"]): r["step_seconds"] for r in calibration}
    forward = {(r["size"], r["length"]): r["forward_seconds_per_row"] for r in calibration}  # 16 rows each
    for spec in recipes.SPECS.values():  # gate lengths nobody trains at (e.g. L0 for native-4x)
        for length in spec.gate_lengths:
            if (spec.size, length) not in forward:
                forward[(spec.size, length)] = _time_config((spec.size, length, 1, 1))["forward_seconds_per_row"]
    training = {name: estimate(step, forward, spec) for name, spec in recipes.SPECS.items()}
    durations = {name: training[name] + gate_seconds(forward, spec, recipes.GATE_NEEDLES)
                 for name, spec in recipes.SPECS.items()}
    times = make_models.simulate(durations, jobs=args.jobs)
    wall = max(finish for _, finish in times.values())
    chain = critical_path({name: {"finished_at_seconds": finish, "parent": recipes.SPECS[name].parent}
                           for name, (_, finish) in times.items()})
    measured = measured_walls(recipes.SPECS)
    record = {
        "what": "an estimate of one full `make models` run on this machine (calibrated, then the schedule simulated)",
        "jobs": args.jobs, "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "processor": platform.processor(), "python": platform.python_version(),
        "calibration_seconds": round(calibration_seconds, 1),
        "estimated_wall_seconds": round(wall),
        "estimated_cpu_seconds": round(sum(durations.values())),
        "budget_seconds": BUDGET_SECONDS,
        "within_budget": wall <= BUDGET_SECONDS,
        "critical_path": chain,
        "checkpoints": {
            name: {"estimated_seconds": round(durations[name]), "start": round(times[name][0]),
                   "finish": round(times[name][1]), "parent": recipes.SPECS[name].parent,
                   "size": recipes.SPECS[name].size,
                   **({"measured_wall_seconds": measured[name]["wall_seconds"], "measured_in": measured[name]["record"],
                       "measured_over_estimated": round(measured[name]["wall_seconds"] / training[name], 2)}
                      if name in measured else {})}
            for name in sorted(durations, key=lambda n: times[n])
        },
        "calibration": calibration,
        "note": ("measured_over_estimated: the newest recorded training seconds of the same recipe (a run record "
                 "or the committed manifest) over the estimate without the gate (manifests time training only); "
                 "a ratio far from 1 means another machine or a loaded one"),
    }
    paths.write_json_atomic(Path(args.out), record)
    print(json.dumps({k: record[k] for k in ("estimated_wall_seconds", "estimated_cpu_seconds", "within_budget",
                                             "critical_path", "calibration_seconds")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
