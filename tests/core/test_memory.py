"""ropelib.core.memory: pinned sizes of LLaMA-2-7B, refusals with numbers, GQA, and a measured CPU peak.

The measured check runs a tiny random-init LlamaForCausalLM in a subprocess with
MALLOC_MMAP_THRESHOLD_=65536 (glibc returns every freed block over 64 KiB at once, so the
resident set tracks live tensors) and reads the resident high-water mark of the pass
(VmHWM, reset through /proc/self/clear_refs) minus the resident set before it. Each case
is sized so that the pass adds 50-400 MB, far above the allocator's noise.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers import LlamaConfig, MistralConfig, Qwen2Config

from ropelib.core import memory

GIB = 2**30
LLAMA2_7B = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                 head_dim=128, intermediate_size=11008, vocab_size=32000)


def llama2_7b(**overrides) -> LlamaConfig:
    return LlamaConfig(**{**LLAMA2_7B, **overrides})


def test_llama2_7b_weights_and_kv_cache_are_pinned():
    params, _ = memory.parameter_count(llama2_7b())
    assert params == 6_738_415_616  # Meta's "6.74B"
    est = memory.estimate(llama2_7b(), 32768, dtype="bfloat16", device="cuda")
    assert est.weights == params * 2
    assert est.weights / GIB == pytest.approx(12.55, abs=0.005)
    assert est.kv_cache == 2 * 32 * 32 * 128 * 32768 * 2 == 16 * GIB
    assert est.total == est.weights + est.kv_cache + est.activations + est.probe_rows + est.attention_maps


def test_terms_scale_as_documented():
    config = llama2_7b()
    bf16 = memory.estimate(config, 32768, dtype="bfloat16", device="cuda")
    fp32 = memory.estimate(config, 32768, dtype="float32", device="cuda")
    assert fp32.weights == 2 * bf16.weights and fp32.kv_cache == 2 * bf16.kv_cache
    no_cache = memory.estimate(config, 32768, dtype="bfloat16", use_cache=False, full_logits=False)
    assert no_cache.kv_cache == 0 and no_cache.activations < bf16.activations  # no full logits
    probe = memory.estimate(config, 32768, dtype="bfloat16", probe_queries=16)
    assert probe.probe_rows == 32 * 32 * 16 * 32768 * 4  # layers x heads x queries x length x 4 B
    reduced = memory.estimate(config, 32768, dtype="bfloat16", probe_queries=16, probe_mode="reduced", bins=64)
    assert reduced.probe_rows == 32 * 32 * 16 * 64 * 4
    eager = memory.estimate(config, 4096, dtype="bfloat16", attention="eager", output_attentions=True)
    assert eager.attention_maps == 32 * 32 * 4096**2 * 2
    generate = memory.estimate(config, 32768, dtype="bfloat16", generate_tokens=8, probe_queries=1)
    assert generate.kv_cache == 2 * 32 * 32 * 128 * (32768 + 8) * 2
    assert generate.probe_rows == 32 * 32 * 8 * (32768 + 8) * 4
    assert bf16.seconds > 0 and memory.estimate(config, 65536).seconds > 2 * bf16.seconds  # attention is L^2


@pytest.mark.parametrize("kv_heads, factor", [(32, 1), (16, 2), (8, 4)])
def test_gqa_divides_the_kv_cache(kv_heads, factor):
    full = memory.estimate(llama2_7b(), 32768, dtype="bfloat16")
    grouped = memory.estimate(llama2_7b(num_key_value_heads=kv_heads), 32768, dtype="bfloat16")
    assert grouped.kv_cache * factor == full.kv_cache


def test_other_families_are_read():
    mistral = memory.estimate(MistralConfig(), 8192, dtype="bfloat16")  # 7.24B, 8 kv heads
    assert mistral.weights == pytest.approx(7.24e9 * 2, rel=0.01)
    assert mistral.kv_cache == 2 * 32 * 8 * 128 * 8192 * 2
    qwen = Qwen2Config(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                       num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True)  # Qwen2-0.5B
    assert memory.parameter_count(qwen)[0] == pytest.approx(494_032_768, rel=1e-6)


def test_a_length_that_cannot_fit_is_refused_fast_with_numbers():
    start = time.perf_counter()
    with pytest.raises(memory.DoesNotFit) as info:
        memory.check_fits(llama2_7b(), 2**20, device="cuda", dtype="bfloat16", free_bytes=80 * GIB)
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert isinstance(info.value, MemoryError) and "\n" not in message
    for expected in ("length=1048576", "weights 12.55", "kv cache 512.00", "80.00 GiB is free",
                     "shorter length", "more free memory"):
        assert expected in message
    assert "the longest that fits is about" in message


def test_fits_and_resident_weights():
    est = memory.check_fits(llama2_7b(), 32768, device="cuda", dtype="bfloat16", free_bytes=80 * GIB)
    assert est.total < 72 * GIB
    # 20 GiB free with the model already resident: 32K (16 GiB cache + activations) does not fit, 4K does
    with pytest.raises(memory.DoesNotFit, match="already resident"):
        memory.check_fits(llama2_7b(), 32768, dtype="bfloat16", free_bytes=20 * GIB, include_weights=False)
    memory.check_fits(llama2_7b(), 4096, dtype="bfloat16", free_bytes=20 * GIB, include_weights=False)
    with pytest.raises(memory.DoesNotFit, match="dtype=bfloat16"):
        memory.check_fits(llama2_7b(), 32768, dtype="float32", device="cpu", free_bytes=40 * GIB)


def test_available_bytes_on_cpu_and_config_from_a_directory(tmp_path):
    assert memory.available_bytes("cpu") > 0
    llama2_7b().save_pretrained(tmp_path)  # config.json only: no weights
    config = memory.load_config(tmp_path)
    assert memory.estimate(tmp_path, 4096).weights == memory.estimate(config, 4096).weights == 6_738_415_616 * 2



def test_every_task_refuses_an_impossible_length_before_loading_weights(tmp_path, monkeypatch):
    """ModelCache (every chapter's loader) estimates from config.json alone: the 7B shape at 10M tokens
    is refused with its numbers in under a second, and the (absent) weights are never read."""
    from ropelib.models import load as models
    from ropelib.models.variants import ModelCache, Variant

    llama2_7b(dtype="bfloat16").save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")  # a checkpoint by its files; loading it would fail
    for loader in ("load", "load_resolved"):
        monkeypatch.setattr(models, loader, lambda *a, **k: pytest.fail("weights loaded before the memory check"))
    cache = ModelCache("cpu", "auto", 10_000_000, batch=5, generate_tokens=8)
    start = time.perf_counter()
    with pytest.raises(memory.DoesNotFit, match=r"length=10000000 does not fit on cpu in bfloat16: needs about"):
        cache.get(Variant("rope", str(tmp_path), "RoPE (x)"), 1.0)
    assert time.perf_counter() - start < 1.0
    with pytest.raises(ValueError, match="dtype='int8'"):
        ModelCache("cpu", "int8", 10_000_000).get(Variant("rope", str(tmp_path), "RoPE (x)"), 1.0)

# --- measured on CPU -------------------------------------------------------------------------

CASES = {
    # full float32 logits dominate (perplexity: logits, log-softmax)
    "perplexity": (dict(hidden_size=128, intermediate_size=512, num_hidden_layers=1, num_attention_heads=2,
                        num_key_value_heads=2, head_dim=64, vocab_size=16000), 2048, dict(full_logits=True)),
    # the MLP intermediate dominates (last-token logits, no cache)
    "mlp": (dict(hidden_size=128, intermediate_size=8192, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=2, head_dim=64, vocab_size=256), 2048,
            dict(full_logits=False, use_cache=False)),
    # KV cache of 8 layers with GQA, greedy generation with the probe capturing every new token
    "generate": (dict(hidden_size=64, intermediate_size=128, num_hidden_layers=8, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=64, vocab_size=256), 4096,
                 dict(generate_tokens=4, probe_queries=1)),
}


def _measure(spec: dict) -> dict:
    """Subprocess body: the resident memory one pass adds (bytes), model built beforehand."""
    import gc

    import torch
    import torch.nn.functional as F
    from transformers import LlamaForCausalLM

    from ropelib.core import probe

    def resident(field):
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**spec["config"], attn_implementation="sdpa")).eval()
    options = spec["options"]
    ids = torch.randint(0, model.config.vocab_size, (1, spec["length"]), generator=torch.Generator().manual_seed(1))

    def run(ids):
        if options.get("generate_tokens"):
            with probe.capture_generation(model) as rec:
                model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, pad_token_id=0,
                               max_new_tokens=options["generate_tokens"], min_new_tokens=options["generate_tokens"])
            return rec
        if options["full_logits"]:
            logits = model(ids).logits[0, :-1].float()
            return F.cross_entropy(logits, ids[0, 1:], reduction="none")
        return model(ids, use_cache=False, logits_to_keep=1).logits

    with torch.no_grad():
        run(ids[:, :16])  # warm-up
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = resident("VmRSS")
        kept = run(ids)
        extra = resident("VmHWM") - before
    del kept
    return {"extra": extra}


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux /proc/self/clear_refs")
@pytest.mark.parametrize("case", sorted(CASES))
def test_estimate_is_within_2x_of_the_measured_peak_on_cpu(case):
    config, length, options = CASES[case]
    spec = {"config": config, "length": length, "options": options}
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, json.dumps(spec)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])["extra"]
    est = memory.estimate(LlamaConfig(**config), length, dtype="float32", device="cpu", **options)
    assert measured > 30e6, f"{case}: the pass added only {measured} bytes; too small to compare"
    assert measured / 2 <= est.working <= 2 * measured, (
        f"{case}: estimated {est.working / 1e6:.1f} MB ({est.breakdown()}), measured {measured / 1e6:.1f} MB")


if __name__ == "__main__":
    print(json.dumps(_measure(json.loads(sys.argv[1]))))
