"""Re-gate committed checkpoints on the evaluation's needles (``recipes.gate``), weights untouched.

Usage: ``python -m benchmarks.regate [NAME ...]`` (default: every checkpoint in data/models).
For each checkpoint: load it (sha256 verified), measure ``recipes.gate`` with 1 thread, and
rewrite only the manifest's ``gate`` rows, ``gate_rule`` and ``gate_seconds``; the previous
gate is kept as ``gate_training_format`` (what it measured, for comparison). Prints one line
per gate length and the wall time.
Not here: training (``ropebook models``) or judging a gate (``models.manifest``).
"""

from __future__ import annotations

import sys
import time

from ropelib.determinism import seed_everything
from ropelib.paths import write_json_atomic
from ropelib.models import manifest as manifests
from ropelib.models.load import load_organism, organism_dir
from ropelib.training import recipes


def regate(name: str) -> dict:
    seed_everything(0, threads=1)
    directory = organism_dir(name)
    loaded = load_organism(directory)
    start = time.perf_counter()
    rows = recipes.gate(loaded.model, recipes.SPECS[name], tokenizer=loaded.tokenizer)
    seconds = round(time.perf_counter() - start, 1)
    manifest = manifests.read(directory)
    if "gate_training_format" not in manifest:
        manifest["gate_training_format"] = manifest.get("gate", [])
    manifest.update(gate=rows, gate_rule=recipes.GATE_RULE, gate_seconds=seconds)
    write_json_atomic(manifests.path_of(directory), manifest)
    for r in rows:
        print(f"{name}: {r['hits']}/{r['needles']} = {r['rate']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] at "
              f"{r['length']} {'passed' if r['passed'] else 'MISSED'}", flush=True)
    print(f"{name}: {seconds} s", flush=True)
    return manifest


if __name__ == "__main__":
    total = time.perf_counter()
    for name in sys.argv[1:] or manifests.names():
        regate(name)
    print(f"total {time.perf_counter() - total:.0f} s")
