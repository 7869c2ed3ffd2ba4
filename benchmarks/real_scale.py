"""Real scale on one device: a LLaMA-2-7B-shaped model at 32K-128K tokens, every length checked first.

Sections (each a list of one record per length; every length is first checked with
``ropelib.core.memory.check_fits`` against the device's free memory, the model being resident,
and a length that cannot fit is recorded as ``"refused: <message>"`` instead of run):

  perplexity  one forward with full logits, float32 log-softmax loss (``tasks.perplexity``'s pass)
  probe       one forward, ``logits_to_keep=1``, no cache, three cases interleaved per repeat:
              sdpa (plain), probe (``ropelib.core.probe.capture`` of the last 16 query rows, kept),
              probe_reduced (the same rows reduced as they come to log-distance bins + entropy,
              :func:`reducer`); ratios probe/sdpa of time and peak memory
  needle      greedy ``generate`` of a few tokens after a random-token haystack with a planted
              needle, under ``probe.capture_generation``; answer entropy and needle mass
  eager       ``attn_implementation="eager"`` with ``output_attentions=True``, for contrast,
              only where the estimate fits (at 7B: 4K on an 80-140 GiB GPU; 8K needs 128 GiB of maps)

Time: wall seconds of each pass (CUDA synchronised), minimum over ``--repeats``. Memory:
CUDA ``max_memory_allocated`` (``peak_gib``, weights included) and that minus what was
allocated before the pass (``extra_gib``); CPU the resident-set high-water mark (VmHWM,
reset through /proc/self/clear_refs) and that minus the resident set before, with glibc's
mmap threshold set to 64 KiB so that freed tensors leave the resident set at once.
Robustness: each measurement is wrapped (errors recorded, e.g. out of memory), caches are
emptied between measurements, a measurement whose estimated time (``ropelib.core.memory``, all its
passes, x2) exceeds what is left of ``--budget-seconds`` is skipped, and the JSON is rewritten
(atomically) after each one, so a run killed by ``timeout`` still leaves its results.
On CUDA the probe's full rows go to host memory layer by layer (``store_device="cpu"``).

  python benchmarks/real_scale.py --device cuda                 # 32 layers, bf16 -> results/real-scale.json
                                                                #   and results/probe-cuda.json
  python benchmarks/real_scale.py --device cpu --layers 2 --out /tmp/real-scale-cpu.json
  python benchmarks/real_scale.py --tiny --out /tmp/tiny.json   # tiny shape, 256/512 tokens, < 30 s
  python benchmarks/real_scale.py --device cuda --model /path/to/Llama-2-7b-hf   # real weights
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from ropelib.core import memory, metrics, probe  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from meter import GIB, Meter  # noqa: E402

RESULTS = Path(__file__).parent / "results"
LLAMA2_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, head_dim=128, vocab_size=32000)
TINY = dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, head_dim=16, vocab_size=1000)
LENGTHS = {  # section -> lengths, per setting
    "cuda": dict(perplexity=[32768], probe=[32768, 65536, 131072], needle=[32768, 65536], eager=[4096, 8192, 32768]),
    "cpu": dict(perplexity=[4096], probe=[2048, 4096, 8192], needle=[2048, 4096], eager=[2048, 4096]),
    "tiny": dict(perplexity=[256, 512], probe=[256, 512], needle=[256, 512], eager=[256, 512, 1 << 20]),
}
QUERIES, BINS, NEEDLE = 16, 64, 8  # probed rows per pass, distance bins when reduced, needle value tokens


def reducer(length: int, queries: int = QUERIES, bins: int = BINS):
    """rows (b, h, n, L) -> {"bins": (b, h, n, B) attention mass per log-distance bin, "entropy": (b, h, n)}.

    For the last ``queries`` positions of a single ``length``-token forward (query i at L - n + i,
    key j at j, distance d = i - j; the bins of ``metrics.log_bins(length - 1, bins)``): what
    the paper's Fig. 2 and entropy analyses need, O(n * B) per layer kept instead of O(n * L).
    """
    edges = torch.as_tensor(metrics.log_bins(length - 1, bins))
    distance = torch.arange(length - queries, length)[:, None] - torch.arange(length)[None, :]  # (n, L)
    bin_of = (torch.bucketize(distance.clamp(min=0), edges, right=True) - 1).clamp(max=len(edges) - 2)
    cache = {}

    def reduce(rows: torch.Tensor) -> dict:
        index = cache.setdefault(rows.device, bin_of.to(rows.device)).expand(rows.shape)
        mass = torch.zeros(*rows.shape[:-1], len(edges) - 1, device=rows.device).scatter_add_(-1, index, rows)
        return {"bins": mass, "entropy": metrics.entropy(rows)}  # future keys carry 0 mass: bin 0, harmless

    return reduce


def _free_caches(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


class Bench:
    """The model, the options, the deadline, and the report (rewritten after every measurement)."""

    def __init__(self, args):
        self.args, self.device = args, args.device
        self.deadline = time.monotonic() + args.budget_seconds
        self.dtype = getattr(torch, args.dtype)
        self.report = {"benchmark": __doc__.split("\n")[0], "device": args.device, "dtype": args.dtype,
                       "budget_seconds": args.budget_seconds, "repeats": args.repeats,
                       "versions": {"python": platform.python_version(), "torch": torch.__version__},
                       "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                   "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}}
        self.model = None

    def save(self) -> None:
        _write_json(self.args.out, self.report)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def build(self) -> None:
        import transformers
        from transformers import AutoModelForCausalLM, LlamaConfig

        self.report["versions"]["transformers"] = transformers.__version__
        args = self.args
        if args.model or args.config:
            self.config = memory.load_config(args.model or args.config)
        else:
            shape = dict(TINY if args.tiny else LLAMA2_7B)
            self.config = LlamaConfig(**shape, max_position_embeddings=max(sum(self.lengths.values(), [])),
                                      rope_parameters={"rope_type": "default", "rope_theta": 10_000.0})
        if args.layers:
            self.config.num_hidden_layers = args.layers  # LlamaModel.forward runs layers[:num_hidden_layers]
        record = {"source": args.model or args.config or ("tiny" if args.tiny else "llama2-7b shape, random init"),
                  "config": {k: getattr(self.config, k, None) for k in [*LLAMA2_7B, "tie_word_embeddings"]}}
        self.report["model"] = record
        try:
            estimate = memory.check_fits(self.config, min(sum(self.lengths.values(), [])), device=self.device,
                                         dtype=self.dtype, full_logits=False, use_cache=False)
            record["estimated_weights_gib"] = estimate.weights / GIB
        except memory.DoesNotFit as refusal:
            record["status"] = f"refused: {refusal}"
            return
        start = time.perf_counter()
        if args.model:
            from ropelib.models import load as models

            self.model = models.load(args.model, device=self.device, dtype=self.dtype).model
            self.model.config.num_hidden_layers = self.config.num_hidden_layers
        else:
            torch.manual_seed(0)
            with torch.device(self.device):
                self.model = AutoModelForCausalLM.from_config(self.config, dtype=self.dtype,
                                                              attn_implementation="sdpa")
        self.model.eval().requires_grad_(False)
        if self.device == "cuda":
            torch.cuda.synchronize()
        record.update(status="ok", build_seconds=time.perf_counter() - start,
                      parameters=sum(p.numel() for p in self.model.parameters()),
                      allocated_gib=torch.cuda.memory_allocated() / GIB if self.device == "cuda" else None)
        self.save()

    def attempt(self, section: str, length: int, options: dict, measure) -> dict:
        """Check, run and record one measurement; never raises."""
        record = {"length": length}
        self.report.setdefault(section, []).append(record)
        try:
            estimate = memory.check_fits(self.config, length, device=self.device, dtype=self.dtype,
                                         include_weights=False, **options)
            record["estimate"] = {**estimate.gib(), "seconds": round(estimate.seconds, 2)}
            passes = 3 * self.args.repeats if section == "probe" else 1
            if 2 * estimate.seconds * passes > self.left():  # twice the estimate, for safety
                record["status"] = (f"skipped: estimated {passes} x {estimate.seconds:.0f} s, "
                                    f"{self.left():.0f} s of the budget left")
            else:
                with torch.no_grad():
                    record.update(measure(length))
                record["status"] = "ok"
        except memory.DoesNotFit as refusal:
            record["status"] = f"refused: {refusal}"
        except Exception as error:  # e.g. torch.OutOfMemoryError: record it, go on with the next length
            record["status"] = f"error: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            record["traceback"] = traceback.format_exc(limit=3)
        finally:
            _free_caches(self.device)
            self.save()
        print(json.dumps({section: {k: v for k, v in record.items() if k != "traceback"}}), flush=True)
        return record

    def ids(self, length: int, batch: int = 1) -> torch.Tensor:
        generator = torch.Generator().manual_seed(length)
        return torch.randint(3, self.config.vocab_size, (batch, length), generator=generator).to(self.device)

    # --- measurements: each returns the fields of its record -------------------------------------

    def perplexity(self, length: int) -> dict:
        ids = self.ids(length)
        self.model(ids[:, :16])  # warm-up
        with Meter(self.device) as meter:
            logits = self.model(ids).logits[0, :-1].float()  # (L-1, V)
            loss = torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item()
        del logits
        return {**meter.record(), "loss": loss}

    def probe(self, length: int) -> dict:
        """sdpa / probe / probe_reduced; on CUDA the full rows go to host memory as each layer makes them
        (``store_device="cpu"``: 8 GiB at 128K for 32 layers), the reduced ones stay on the device."""
        ids, kwargs = self.ids(length), dict(use_cache=False, logits_to_keep=1)
        reduce, store = reducer(length), ("cpu" if self.device == "cuda" else None)

        def run(case: str, ids: torch.Tensor, reduce=reduce):
            if case == "sdpa":
                return self.model(ids, **kwargs).logits
            options = dict(reduce=reduce) if case == "probe_reduced" else dict(store_device=store)
            with probe.capture(self.model, queries=QUERIES, **options) as rec:
                self.model(ids, **kwargs)
            return rec.attention

        cases = ("sdpa", "probe", "probe_reduced")
        for case in cases:  # warm-up on 2 * QUERIES tokens (the reducer is built for ``length``: a short one)
            run(case, ids[:, : 2 * QUERIES], reducer(2 * QUERIES))
        records = {case: [] for case in cases}
        for _ in range(self.args.repeats):
            for case in cases:
                with Meter(self.device) as meter:
                    kept = run(case, ids)
                record = meter.record()
                record["kept_gib"] = _nbytes(kept) / GIB
                records[case].append(record)
                del kept
                _free_caches(self.device)
        best = {case: {"seconds": min(r["seconds"] for r in rs), "seconds_all": [r["seconds"] for r in rs],
                       "peak_gib": max(r["peak_gib"] for r in rs), "extra_gib": max(r["extra_gib"] for r in rs),
                       "kept_gib": rs[0]["kept_gib"]} for case, rs in records.items()}
        ratios = {f"{case}/sdpa": {key: round(best[case][key] / best["sdpa"][key], 3)
                                   for key in ("seconds", "peak_gib", "extra_gib") if best["sdpa"][key] > 0}
                  for case in cases[1:]}
        return {**best, **ratios, "seconds": best["probe"]["seconds"], "peak_gib": best["probe"]["peak_gib"]}

    def needle(self, length: int) -> dict:
        new = self.args.new_tokens
        ids = self.ids(length)
        value = length // 2 + NEEDLE  # needle = key (the prompt's last NEEDLE tokens) + value, at depth 50%
        ids[0, value - NEEDLE:value] = ids[0, -NEEDLE:]
        kwargs = dict(do_sample=False, max_new_tokens=new, min_new_tokens=new, pad_token_id=0)
        store = "cpu" if self.device == "cuda" else None
        with probe.capture_generation(self.model, store_device=store):
            self.model.generate(ids[:, :64], attention_mask=torch.ones_like(ids[:, :64]), **kwargs)  # warm-up
        with Meter(self.device) as meter:
            with probe.capture_generation(self.model, prompt_length=length, store_device=store) as rec:
                self.model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
            rows = rec.stacked("prompt")  # (layers, batch, heads, new, length)
            entropy = metrics.entropy(rows).mean().item()  # answer entropy (Appendix C), nats
            mass = rows[..., value:value + NEEDLE].sum(-1).mean().item()  # attention on the value tokens
        return {**meter.record(), "new_tokens": new, "kept_gib": rows.numel() * 4 / GIB,
                "answer_entropy_nats": entropy, "needle_mass": mass, "uniform_entropy_nats": float(torch.log(
                    torch.tensor(float(length))))}

    def eager(self, length: int) -> dict:
        ids = self.ids(length)
        self.model.set_attn_implementation("eager")
        try:
            self.model(ids[:, :16], use_cache=False, logits_to_keep=1, output_attentions=True)
            with Meter(self.device) as meter:
                maps = self.model(ids, use_cache=False, logits_to_keep=1, output_attentions=True).attentions
            kept = _nbytes(maps)
            del maps
        finally:
            self.model.set_attn_implementation("sdpa")
        return {**meter.record(), "kept_gib": kept / GIB}


def _nbytes(kept) -> int:
    if isinstance(kept, torch.Tensor):
        return kept.numel() * kept.element_size()
    if isinstance(kept, dict):
        return sum(_nbytes(v) for v in kept.values())
    if isinstance(kept, (list, tuple)):
        return sum(_nbytes(v) for v in kept)
    return 0


OPTIONS = {  # what each section runs, for memory.estimate
    "perplexity": dict(full_logits=True, use_cache=True),
    "probe": dict(full_logits=False, use_cache=False, probe_queries=QUERIES),
    "needle": dict(full_logits=False, probe_queries=1),  # + generate_tokens
    "eager": dict(full_logits=False, use_cache=False, attention="eager", output_attentions=True),
}


def probe_report(report: dict) -> dict:
    """The probe section in benchmarks/probe.py's layout (results/probe-<device>.json)."""
    rows = [r for r in report.get("probe", []) if r.get("status") == "ok"]
    worst = {key: max((r["probe/sdpa"][key] for r in rows if key in r["probe/sdpa"]), default=None)
             for key in ("seconds", "peak_gib", "extra_gib")}
    return {"benchmark": "one forward pass: sdpa vs sdpa + probe (last 16 queries), from benchmarks/real_scale.py",
            "device": report["device"], "model_shape": "llama2-7b", "model": report.get("model", {}),
            "dtype": report["dtype"], "probe_queries": QUERIES, "repeats": report["repeats"],
            "summary": {"worst_probe/sdpa": {"time": worst["seconds"], "peak_memory": worst["peak_gib"],
                                             "extra_memory": worst["extra_gib"]},
                        "targets_met": {"probe/sdpa time <= 1.15": (worst["seconds"] or 9) <= 1.15,
                                        "probe/sdpa peak_memory <= 1.1": (worst["peak_gib"] or 9) <= 1.10}},
            "versions": report["versions"], "machine": report["machine"], "results": report.get("probe", [])}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(partial, path)


def _limit_malloc_caching() -> None:
    """glibc: serve every block over 64 KiB by mmap, so freed tensors leave the resident set at once."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 65536)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--tiny", action="store_true", help="tiny shape and lengths, CPU, seconds")
    parser.add_argument("--layers", type=int, help="decoder layers (default: 32 on cuda, 2 on cpu)")
    parser.add_argument("--model", help="local HF checkpoint directory: its real weights")
    parser.add_argument("--config", help="local HF checkpoint directory: its shape, random init")
    parser.add_argument("--dtype", help="default: bfloat16 on cuda, float32 on cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=4)
    parser.add_argument("--budget-seconds", type=float, default=540.0)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("ROPEBOOK_THREADS", 2)))
    parser.add_argument("--sections", default="perplexity,probe,needle,eager")
    for section in OPTIONS:
        parser.add_argument(f"--{section}-lengths", help="comma-separated token counts")
    parser.add_argument("--out", help="JSON path (required on cpu; default on cuda: results/real-scale.json)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.device = "cpu"
    if args.device == "cpu" and not args.out:
        parser.error("--out is required on cpu (results/real-scale.json is the GPU record)")
    args.out = Path(args.out) if args.out else RESULTS / "real-scale.json"
    args.dtype = args.dtype or ("bfloat16" if args.device == "cuda" else "float32")
    args.layers = args.layers or (None if args.tiny or args.device == "cuda" else 2)
    torch.set_num_threads(args.threads)
    if args.device == "cpu":
        _limit_malloc_caching()

    bench = Bench(args)
    defaults = LENGTHS["tiny" if args.tiny else args.device]
    sections = [s for s in args.sections.split(",") if s]
    if set(sections) - set(OPTIONS):
        parser.error(f"--sections: unknown {sorted(set(sections) - set(OPTIONS))}; choose from {list(OPTIONS)}")
    bench.lengths = {s: [int(x) for x in getattr(args, f"{s}_lengths").split(",")] if getattr(args, f"{s}_lengths")
                     else defaults[s] for s in sections}
    bench.report["lengths"] = bench.lengths
    start = time.perf_counter()
    try:
        bench.build()
    except Exception as error:
        bench.report.setdefault("model", {})["status"] = f"error: {type(error).__name__}: {error}"
    if bench.model is not None:
        for section in sections:
            for length in bench.lengths[section]:
                options = dict(OPTIONS[section])
                if section == "needle":
                    options["generate_tokens"] = args.new_tokens
                bench.attempt(section, length, options, getattr(bench, section))
    bench.report["wall_seconds"] = time.perf_counter() - start
    bench.save()
    if args.device == "cuda" and not args.tiny:
        _write_json(args.out.parent / "probe-cuda.json", probe_report(bench.report))
    print(f"wrote {args.out}")
    return bench.report


if __name__ == "__main__":
    main()
