"""Benchmark: what does probing attention rows cost, against plain SDPA and eager output_attentions?

One forward pass of the same random-init model (seed 0) at each length, three cases:
  sdpa   plain ``attn_implementation="sdpa"``
  probe  SDPA + ``ropelib.core.probe.capture`` of the last 16 queries (rows kept in memory)
  eager  ``attn_implementation="eager"`` with ``output_attentions=True`` (skipped when
         ``ropelib.core.memory`` estimates that the pass adds more than the cap or the free memory)
All passes use ``use_cache=False, logits_to_keep=1`` (the same for every case).

Shapes (``--shape``): ``organism``, today's organism M (``ropelib.models.organism.SIZES["M"]``);
``llama2-7b-2layers``, LLaMA-2-7B's layer (hidden 4096, 32 heads of 128, intermediate 11008,
vocab 32000) with 2 decoder layers: the CPU proxy of the 7B model, whose per-layer costs it
has exactly; ``llama2-7b``, the full model (a GPU; see also ``benchmarks/real_scale.py``).
Each case's record has ``estimate_extra_gb``, ``ropelib.core.memory``'s estimate of what the pass
adds, next to the measured ``extra_memory_gb``.

Time: one subprocess per length runs the cases' passes interleaved (sdpa, probe, eager,
sdpa, ...) after a 16-token warm-up; the minimum over ``--repeats`` passes per case, so
load from other processes (training runs) hits all cases alike and drops out. Wall time
is ``seconds``; ``cpu_seconds`` (process CPU time) is reported too, as it hardly moves
when other processes compete for the cores.
Memory: one fresh subprocess per (case, length), one pass. CPU: the resident-set
high-water mark during the pass (VmHWM in /proc/self/status, reset through
/proc/self/clear_refs just before it) minus the resident set before it, i.e. what the pass
adds (``extra_memory_gb``; ``peak_memory_gb`` is the absolute high-water mark of the
process, model and runtime included). These children run with MALLOC_MMAP_THRESHOLD_=65536
so that glibc hands every freed block over 64 KiB back at once and the resident set tracks
live tensors. CUDA: ``torch.cuda.max_memory_allocated`` minus what was allocated before.
``kept_gb`` is what the case returns (probed rows or attention maps).

  python benchmarks/probe.py                       # CPU, organism M, 1K..16K -> results/probe-cpu.json
  python benchmarks/probe.py --shape llama2-7b-2layers --lengths 2048,4096,8192 --repeats 1 \\
      --memory-cap-gb 14                           # -> results/probe-cpu-7b-layer.json
  python benchmarks/probe.py --device cuda --shape llama2-7b --dtype bfloat16 \\
      --lengths 8192,16384,32768,65536,131072 --memory-cap-gb 100   # -> results/probe-cuda-7b.json
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from meter import Meter  # noqa: E402

_LLAMA2_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=32, head_dim=128, vocab_size=32000, tie_word_embeddings=False)
SHAPES = {  # name -> LlamaConfig keyword arguments (organism: ropelib.models.organism.SIZES["M"].to_llama())
    "organism": None,
    "llama2-7b": _LLAMA2_7B,
    "llama2-7b-2layers": {**_LLAMA2_7B, "num_hidden_layers": 2},
}
OUTPUTS = {"organism": "probe-{device}.json", "llama2-7b-2layers": "probe-{device}-7b-layer.json",
           "llama2-7b": "probe-{device}-7b.json"}
CASES = ("sdpa", "probe", "eager")
GB = 1e9
ESTIMATE_OPTIONS = {"sdpa": {}, "probe": {"probe_queries": 16},
                    "eager": {"attention": "eager", "output_attentions": True}}


def model_config(shape: str, max_length: int = 4096):
    """The LlamaConfig of a shape name (SDPA attention)."""
    from transformers import LlamaConfig

    if shape == "organism":
        from ropelib.models.organism import SIZES

        config = SIZES["M"].to_llama(max_position=max_length)
    else:
        config = LlamaConfig(**SHAPES[shape], max_position_embeddings=max_length,
                             rope_parameters={"rope_type": "default", "rope_theta": 10_000.0})
    config._attn_implementation = "sdpa"
    return config


def shape_record(shape: str) -> dict:
    config = model_config(shape)
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "head_dim", "vocab_size", "tie_word_embeddings")
    return {**{k: getattr(config, k) for k in keys}, "rope_parameters": dict(config.rope_parameters)}


def estimate_extra_bytes(args, case: str, length: int) -> int:
    """ropelib.core.memory's estimate of what one pass of ``case`` adds to the resident model."""
    from ropelib.core import memory

    return memory.estimate(model_config(args.model_shape, length), length, dtype=args.dtype, device=args.device,
                           full_logits=False, use_cache=False, **ESTIMATE_OPTIONS[case]).working


def build_model(args):
    import torch
    from transformers import LlamaForCausalLM

    config = model_config(args.model_shape, max(args.lengths))
    torch.manual_seed(0)
    with torch.device(args.device):
        model = LlamaForCausalLM._from_config(config, dtype=getattr(torch, args.dtype))
    return model.eval()




def _forward_fn(args, model, case: str):
    """One forward pass of ``case``; returns what it keeps (probed rows, attention maps or the output)."""
    from ropelib.core import probe

    kwargs = dict(use_cache=False, logits_to_keep=1, output_attentions=case == "eager")

    def forward(input_ids):
        if case == "probe":
            with probe.capture(model, queries=args.queries) as rec:
                model(input_ids, **kwargs)
            return rec.attention
        output = model(input_ids, **kwargs)
        return output.attentions if case == "eager" else output

    return forward


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def child(args) -> dict:
    """Subprocess body. phase "time": every case in ``args.case`` timed, repeats interleaved
    (sdpa, probe, eager, sdpa, ...) so that load from other processes hits all alike.
    phase "memory": one pass of one case, its extra and peak memory, and the bytes it keeps."""
    import torch

    torch.set_num_threads(args.threads)
    model = build_model(args)
    ids = torch.randint(0, model.config.vocab_size, (1, args.length), generator=torch.Generator().manual_seed(1))
    ids = ids.to(args.device)
    cases = args.case.split(",")
    forwards = {case: _forward_fn(args, model, case) for case in cases}
    with torch.no_grad():
        for case, forward in forwards.items():
            model.set_attn_implementation("eager" if case == "eager" else "sdpa")
            forward(ids[:, :16])  # warm-up
        if args.phase == "memory":
            model.set_attn_implementation("eager" if cases[0] == "eager" else "sdpa")
            with Meter(args.device) as memory:
                kept = forwards[cases[0]](ids)
            kept_bytes = sum(t.numel() * t.element_size() for t in kept) if isinstance(kept, (list, tuple)) else 0
            return {"extra_memory_gb": memory.extra / GB, "peak_memory_gb": memory.peak / GB,
                    "kept_gb": kept_bytes / GB}
        wall, cpu = {case: [] for case in cases}, {case: [] for case in cases}
        for _ in range(args.repeats):
            for case, forward in forwards.items():
                model.set_attn_implementation("eager" if case == "eager" else "sdpa")  # untimed
                _sync(args.device)
                start, start_cpu = time.perf_counter(), time.process_time()
                kept = forward(ids)
                _sync(args.device)
                wall[case].append(time.perf_counter() - start)
                cpu[case].append(time.process_time() - start_cpu)
                del kept
    return {case: {"seconds": min(wall[case]), "seconds_all": wall[case], "cpu_seconds": min(cpu[case])}
            for case in cases}


def _run_child(args, phase: str, cases: list[str], length: int) -> dict:
    command = [sys.executable, __file__, "--_phase", phase, "--_case", ",".join(cases), "--_length", str(length),
               "--device", args.device, "--model-shape", args.model_shape, "--dtype", args.dtype,
               "--threads", str(args.threads), "--queries", str(args.queries), "--repeats", str(args.repeats),
               "--lengths", ",".join(map(str, args.lengths))]
    # memory: a fixed mmap threshold makes glibc return every freed block > 64 KiB to the OS at once,
    # so the resident set tracks live tensors instead of allocator reuse
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"} if phase == "memory" else None
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args, length: int) -> dict:
    """{case: record} at one length: times from one interleaved child, memory from one child per case."""
    from ropelib.core import memory

    estimates = {case: estimate_extra_bytes(args, case, length) for case in CASES}
    cap = min(args.memory_cap_gb * GB, memory.available_bytes(args.device))
    cases = list(CASES) if estimates["eager"] <= cap else ["sdpa", "probe"]
    results = {case: {"estimate_extra_gb": estimates[case] / GB} for case in CASES}
    if "eager" not in cases:
        results["eager"]["skipped"] = (f"does not fit: ropelib.core.memory estimates {estimates['eager'] / GB:.1f} GB "
                                       f"> {cap / GB:.1f} GB (cap or free memory)")
    try:
        for case, record in _run_child(args, "time", cases, length).items():
            results[case].update(record)
        for case in cases:
            results[case].update(_run_child(args, "memory", [case], length))
    except RuntimeError as error:  # e.g. out of memory on a GPU: record it, keep the other lengths
        for case in cases:
            results[case].setdefault("failed", str(error))
    return results


def ratio(numerator: dict, denominator: dict, key: str) -> float | None:
    if key not in numerator or key not in denominator or not denominator[key]:
        return None
    return round(numerator[key] / denominator[key], 3)


TARGETS = {"time": 1.15, "peak_memory": 1.10}  # probe/sdpa, from issue 3


def summarize(rows: list[dict]) -> dict:
    """Worst probe/sdpa ratio over the lengths, per measure, and whether the targets hold."""
    worst = {}
    for measure in ("time", "cpu_time", "peak_memory", "extra_memory", "extra_memory_without_kept"):
        values = [row["probe/sdpa"].get(measure) for row in rows]
        values = [v for v in values if v is not None]
        worst[measure] = max(values) if values else None
    met = {f"probe/sdpa {m} <= {t}": worst[m] is not None and worst[m] <= t for m, t in TARGETS.items()}
    return {"worst_probe/sdpa": worst, "targets_met": met}


def write_report(args, rows: list[dict]) -> Path:
    """Write the report of the lengths measured so far (atomically); returns its path."""
    import torch
    import transformers

    report = {
        "benchmark": "one forward pass: sdpa vs sdpa + probe (last queries) vs eager output_attentions",
        "device": args.device, "model_shape": args.model_shape, "model": shape_record(args.model_shape),
        "dtype": args.dtype, "threads": args.threads, "probe_queries": args.queries, "repeats": args.repeats,
        "memory_cap_gb": args.memory_cap_gb, "lengths": args.lengths, "conditions": args.note,
        "time_method": "min over repeats of one forward pass's wall time (seconds) and of the process's CPU "
                       "time (cpu_seconds, less sensitive to other processes); cases interleaved in one "
                       "process per length, after a 16-token warm-up",
        "memory_method": ("CUDA max_memory_allocated minus allocated before the pass, one subprocess per case"
                          if args.device == "cuda" else
                          "VmHWM after the pass (reset via /proc/self/clear_refs) minus VmRSS before it, one "
                          "subprocess per case, MALLOC_MMAP_THRESHOLD_=65536"),
        "summary": summarize(rows),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "results": rows,
    }
    out = Path(args.out or Path(__file__).parent / "results" / OUTPUTS[args.model_shape].format(device=args.device))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".json.tmp")
    partial.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(partial, out)  # atomic: readers never see a half-written file
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--shape", "--model-shape", dest="model_shape", default="organism", choices=sorted(SHAPES))
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--lengths", default="1024,2048,4096,8192,16384")
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("ROPEBOOK_THREADS", 2)))
    parser.add_argument("--memory-cap-gb", type=float, default=6.0)
    parser.add_argument("--note", default="", help="how the machine was when it ran (kept as 'conditions')")
    parser.add_argument("--out", help="default: benchmarks/results/" + ", ".join(
        f"{OUTPUTS[name]} ({name})" for name in OUTPUTS).replace("{device}", "<device>"))
    parser.add_argument("--_phase", choices=["time", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--_case", help=argparse.SUPPRESS)
    parser.add_argument("--_length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.lengths = [int(x) for x in str(args.lengths).split(",")]
    if args._phase:
        args.phase, args.case, args.length = args._phase, args._case, args._length
        print(json.dumps(child(args)))
        return

    rows = []
    for length in args.lengths:
        results = measure(args, length)
        row = {"length": length, **results}
        for case in ("probe", "eager"):
            row[f"{case}/sdpa"] = {"time": ratio(results[case], results["sdpa"], "seconds"),
                                   "cpu_time": ratio(results[case], results["sdpa"], "cpu_seconds"),
                                   "extra_memory": ratio(results[case], results["sdpa"], "extra_memory_gb"),
                                   "peak_memory": ratio(results[case], results["sdpa"], "peak_memory_gb")}
            if "kept_gb" in results[case] and results["sdpa"].get("extra_memory_gb"):
                working = results[case]["extra_memory_gb"] - results[case]["kept_gb"]  # minus what it returns
                row[f"{case}/sdpa"]["extra_memory_without_kept"] = round(
                    working / results["sdpa"]["extra_memory_gb"], 3)
        print(json.dumps(row), flush=True)
        rows.append(row)
        out = write_report(args, rows)  # after every length: a run stopped early keeps what it measured
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
