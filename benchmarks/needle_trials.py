"""Benchmark: the cost of one needle trial, before and after issue 35's cheaper trials, same machine, same run.

Three designs of ``tasks.needle.needle_grid`` on the same model, lengths and depths, timed one
after another in this process (seconds per trial, the minimum of ``--repeats`` interleaved runs after a warm-up; ratios against the
first two):

  two_passes     each needle on its own haystack; generation, then a second full pass for the
                 teacher-forced rows (the organism's pages)
  one_prefill    each needle on its own haystack; the teacher-forced rows from the generation's
                 KV cache (``share_prefill``: the real model's pages before issue 35)
  shared_prefix  a cell's needles on one haystack (``shared_haystack``); the text before the value
                 computed once per cell into a KV cache; each needle, one at a time, continues it
                 (the rest of its prompt in chunks of ``needle.PREFILL_CHUNK`` tokens) and generates;
                 the teacher-forced rows from that cache too (the real model's pages now); for a RoPE
                 that depends on the length (``--method dynamic_ntk``) from a second prefix per cell

and one check: ``shared_prefix`` against the same shared-haystack prompts run as full passes
(``shared_full``, also timed; always run): the largest absolute difference of every number of a trial
(entropies, masses) and whether every answer is the same; the test suite asserts <= 1e-5 on a tiny
model (tests/tasks/test_tasks.py). No trial is read from or written to ``ropelib.tasks.trials``' store.
Beside the times: the machine's fp32 matmul rate on the same threads (``meter.matmul_gflops``).

  python benchmarks/needle_trials.py                            # the organism's shape, random weights: seconds
  python benchmarks/needle_trials.py --model smollm2 --length 2048 --needles 4
                                                                # the real model; ~6 min on 2 cores
  python benchmarks/needle_trials.py --model smollm2 --length 8192 --needles 5 --depths 30 70 \
      --designs shared_full shared_prefix                       # the pages' cells; ~11 min on 2 cores
  python benchmarks/needle_trials.py --method dynamic_ntk --factor 2 --length 96 --needles 4
                                                                # dynamic NTK past the organism-shape's L0
Not here: which design a page uses (``models.variants.shares_prefill``, the page's ``shared_haystack``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

NUMBERS = ["entropy", "entropy_first", "entropy_teacher", "needle_mass", "borrowed_mass"]
DESIGNS = {  # name: (shared_haystack, share_prefill, share_prefix)
    "two_passes": (False, False, False),
    "one_prefill": (False, True, False),
    "shared_full": (True, False, False),
    "shared_prefix": (True, True, True),
}


def load(model: str, device: str, method: str = "rope", factor: float = 1.0):
    """(model, tokenizer, needle format, label) for ``model`` under ``method``: "" is a random-weight model of the
    organism's shape."""
    suffix = "" if method == "rope" else f" {method} x{factor:g}"
    if not model:
        from ropelib.core import extensions
        from ropelib.models import organism
        from ropelib.models.organism import OrganismConfig
        from ropelib.text.tokenizer import ByteTokenizer

        config = OrganismConfig()  # the organism's shape, random weights
        built = extensions.apply(organism.build(config, seed=0).eval(), method, factor)
        return built, ByteTokenizer(), "compact", "random organism" + suffix
    from ropelib.models.variants import ModelCache, parse

    variant = parse([f"{method}:{model}"])[0]
    loaded = ModelCache(device).get(variant, factor)
    return loaded.model, loaded.tokenizer, "sentence" if loaded.kind != "organism" else "compact", model + suffix


def run(model_name: str = "", length: int = 512, depths=(10, 50, 90), needles: int = 4, threads: int = 2,
        device: str = "cpu", repeats: int = 1, designs=tuple(DESIGNS), method: str = "rope",
        factor: float = 1.0) -> dict:
    import torch

    from meter import matmul_gflops
    from ropelib.models import variants
    from ropelib.tasks import needle

    torch.set_num_threads(threads)
    model, tokenizer, fmt, label = load(model_name, device, method, factor)
    # the pages' rule (variants.shares_prefill) less its organism clause: this benchmark times one_prefill on the
    # organism's shape too; a RoPE that depends on the length cannot take its teacher rows from the generation's cache
    one_prefill_allowed = variants.shares_forward(variants.Variant(method, model or "organism-shape", label))
    gflops = matmul_gflops(threads)
    designs = [name for name in DESIGNS if name in set(designs) | {"shared_full", "shared_prefix"}]
    tables, seconds = {}, {name: float("inf") for name in designs}
    needle.needle_grid(model, tokenizer, [length], depths[:1], 1, seed=1, fmt=fmt, progress=False)  # warm-up
    for _ in range(repeats):  # interleaved, the minimum kept: a design is not favoured by running later
        for name in designs:
            shared_haystack, share_prefill, share_prefix = DESIGNS[name]
            start = time.perf_counter()
            tables[name] = needle.needle_grid(model, tokenizer, [length], depths, needles, seed=0, method=name,
                                              fmt=fmt, progress=False,
                                              share_prefill=share_prefill and one_prefill_allowed,
                                              shared_haystack=shared_haystack, share_prefix=share_prefix)
            seconds[name] = min(seconds[name], time.perf_counter() - start)
    n = len(tables["shared_prefix"])
    per_trial = {name: round(s / n, 4) for name, s in seconds.items()}
    ratios = {f"ratio_to_{base}": {name: round(s / per_trial[base], 3) for name, s in per_trial.items()}
              for base in ("two_passes", "one_prefill", "shared_full") if base in per_trial}
    full, shared = tables["shared_full"], tables["shared_prefix"]
    difference = float((full[NUMBERS] - shared[NUMBERS]).abs().max().max())
    return {
        "model": label, "method": method, "factor": factor, "length": length, "depths": list(depths), "needles_per_cell": needles, "trials": n,
        "threads": threads, "device": device, "repeats": repeats, "fp32_matmul_gflops": gflops,
        "seconds_per_trial": per_trial,
        **ratios,
        "shared_prefix_vs_full_pass": {"max_abs_difference": difference,
                                       "same_answers": bool((full["answer"] == shared["answer"]).all())},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="a model source (e.g. smollm2, base); empty: the organism's shape, random weights")
    parser.add_argument("--length", type=int, default=512, help="prompt length in tokens")
    parser.add_argument("--needles", type=int, default=4, help="needles per (length, depth) cell")
    parser.add_argument("--depths", type=float, nargs="+", default=[10, 50, 90])
    parser.add_argument("--method", default="rope", help="the RoPE method applied (e.g. dynamic_ntk)")
    parser.add_argument("--factor", type=float, default=1.0, help="its extension factor s")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="runs of every design, interleaved; the minimum is kept")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS),
                        help="designs to time (shared_full and shared_prefix always run: they are the check)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "needle-trials.json"))
    args = parser.parse_args(argv)
    if args.length < 64 or args.needles < 2:
        print(f"needle_trials.py: --length must be >= 64 and --needles >= 2 (a prefix shared by one needle saves "
              f"nothing); got --length {args.length} --needles {args.needles}", file=sys.stderr)
        return 2
    from ropelib.core import methods

    if args.method not in methods.METHODS or args.factor < 1:
        print(f"needle_trials.py: --method must be one of {', '.join(methods.METHODS)} and --factor >= 1; got "
              f"--method {args.method} --factor {args.factor:g}", file=sys.stderr)
        return 2
    report = run(args.model, args.length, tuple(args.depths), args.needles, args.threads, args.device, args.repeats,
                 args.designs, args.method, args.factor)
    out = Path(args.out)
    kept = json.loads(out.read_text()) if out.exists() else {}
    kept[f"{report['model']}@{report['length']}"] = report  # one record per (model, length): the newest
    from ropelib.paths import write_json_atomic

    write_json_atomic(out, kept)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
