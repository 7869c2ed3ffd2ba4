"""Will it fit? Memory and time of one no-grad forward pass (or a greedy generation), from the config alone.

Arithmetic on a transformers ``PretrainedConfig`` (LLaMA, Mistral, Qwen2: decoder-only,
rotary, SwiGLU MLP); nothing is allocated, so :func:`check_fits` decides in microseconds
and a 7B model can be refused at 1M tokens before it is loaded. Notation: b batch, L
length (prompt tokens), g generated tokens, T = L + g, s bytes per element of ``dtype``,
H hidden, I intermediate, V vocab, n_l layers, n_h heads, n_kv kv heads, d head dim,
n probed queries, B distance bins.

  weights      = s * P,  P = V*H (embedding) + V*H (lm_head, unless tied) + H
                 + n_l * (H*d*(2 n_h + 2 n_kv) + 3*H*I + 2*H [+ d*(n_h + 2 n_kv) qkv bias, Qwen2])
                 LLaMA-2-7B: P = 6.738e9, 12.55 GiB in bfloat16
  kv_cache     = 2 * n_l * n_kv * d * T * b * s   (0 with use_cache=False; LLaMA-2-7B at 32K: 16 GiB)
  activations  = the peak transient of the pass (each layer frees its temporaries before the next):
                 3*b*L*H*s  (residual stream: the embedding output, which LlamaModel.forward keeps,
                             the residual, and the normed input of the attention or MLP block)
                 + mask     (b*L^2*s eager's 4D additive mask; b*L^2 boolean with a sliding window; else 0:
                             SDPA runs with is_causal and no mask)
                 + max of   attention  b*L*s*(2*d*(n_h + 2 n_kv) + 2*n_h*d): q, k, v before and after RoPE,
                                       SDPA output and its contiguous copy, + b*n_h*L*4 (logsumexp);
                                       SDPA is fused (flash / memory-efficient / CPU flash), never L x L
                                       [+ 2*b*L*n_h*d*s  repeat_kv copies: GQA with a mask]
                                       [+ b*n_h*L^2*(2s + 4)  eager: scores, masked scores, float32 softmax]
                                       [+ b*n_h*n*L*4 + min(float32 keys, 64 MiB)  probe: the layer's rows]
                            MLP        3*b*L*I*s: act(gate), up, their product
                            RMSNorm    2*b*L*H*4: float32 copy and product
                            logits     b*L*V*(s + 4) [+ b*L*V*4 float32 copy when s < 4]: lm_head output
                                       and log-softmax, when the task needs full logits (perplexity);
                                       else b*V*(s + 8) (``logits_to_keep=1``, as ``generate`` does)
                            decode     2*b*n_kv*d*T*s: the cache's cat copy of one layer's K, V (g > 0)
  probe_rows   = n_l * b * n_h * n * L * 4   ("rows"; n = probe_queries; when generating, n rows of
                 up to T keys per new token: n_l*b*n_h*n*g*T*4, n = 1 for capture_generation), or
                 n_l * b * n_h * n * B * 4 ("reduced": each layer's rows reduced to B bins as they come)
  attention_maps = n_l * b * n_h * L^2 * s   (eager with output_attentions=True: the maps it returns)
  total        = weights + kv_cache + activations + probe_rows + attention_maps

Time: FLOPs / throughput, per phase, and for decoding max(FLOPs / throughput, bytes read /
bandwidth) per token (decoding reads all weights and the KV cache once per token):
  prefill FLOPs = 2*b*L*P_layers + 2*b*n_l*n_h*d*L^2 (causal SDPA; eager computes the full
                  square: 4*b*n_l*n_h*d*L^2) + 2*b*H*V*(L if full logits else 1)
  decode  FLOPs = per token 2*b*(P_layers + H*V) + 4*b*n_l*n_h*d*t
``THROUGHPUT`` holds the rough rates used (achieved, not peak); they give the order of a
run's time, not a benchmark. Measured activations of a tiny CPU model are within 2x of
this estimate (tests/core/test_memory.py); the estimate leans high (it adds transients that may
not overlap) so that ``check_fits`` refuses rather than crashes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

GIB = 2**30
PROBE_CHUNK_BYTES = 64 * 2**20  # ropelib.core.probe._CHUNK_BYTES: bound on the float32 key copy
# Rough achieved rates: (FLOP/s for 2-byte dtypes, FLOP/s for float32, bytes/s of memory bandwidth).
# cuda: an H100/H200-class GPU running PyTorch eager (bf16 dense peak ~990 TFLOP/s, ~4.8 TB/s on H200);
# cpu: per thread (x torch.get_num_threads()); measured on this repository's 2-core AMD EPYC (AVX-512):
# float32 GEMM 73 GFLOP/s per thread, bf16 190, a whole 7B-layer forward ~40 (float32); bandwidth per socket.
THROUGHPUT = {"cuda": (4.0e14, 5.0e13, 3.0e12), "cpu": (8.0e10, 4.0e10, 1.0e10)}


class DoesNotFit(MemoryError):
    """The estimate exceeds the device's free memory; the message says by how much and what to do."""


@dataclass
class Estimate:
    """Bytes of one pass (see the module docstring for each term) and a rough time in seconds."""

    length: int
    dtype: str
    weights: int
    kv_cache: int
    activations: int
    probe_rows: int
    attention_maps: int
    total: int
    flops: float
    seconds: float

    @property
    def working(self) -> int:
        """Everything but the weights: what the pass adds to a resident model."""
        return self.total - self.weights

    def gib(self) -> dict:
        return {k: round(v / GIB, 3) for k, v in asdict(self).items()
                if k in ("weights", "kv_cache", "activations", "probe_rows", "attention_maps", "total")}

    def breakdown(self) -> str:
        parts = [f"{name.replace('_', ' ')} {value:.2f}" for name, value in self.gib().items()
                 if name != "total" and value > 0]
        return f"{self.total / GIB:.2f} GiB (" + " + ".join(parts) + ")"


def load_config(path):
    """The config of a local checkpoint directory (config.json only: no weights, no network)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(Path(path).expanduser()), local_files_only=True)


def _config(config):
    return load_config(config) if isinstance(config, (str, Path)) else config


def _shape(config) -> dict:
    """The sizes the formulas need, with the defaults transformers applies."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    sliding = getattr(config, "sliding_window", None)
    if getattr(config, "model_type", "") == "qwen2":
        sliding = sliding if getattr(config, "use_sliding_window", False) else None
    return dict(H=config.hidden_size, I=config.intermediate_size, V=config.vocab_size,
                layers=config.num_hidden_layers, heads=heads, d=head_dim,
                kv=getattr(config, "num_key_value_heads", None) or heads,
                tied=bool(getattr(config, "tie_word_embeddings", False)),
                qkv_bias=getattr(config, "attention_bias", getattr(config, "model_type", "") == "qwen2"),
                sliding=sliding)


def parameter_count(config) -> tuple[int, int]:
    """(all parameters P, those of the decoder layers P_layers) of a LLaMA-style config."""
    c = _shape(_config(config))
    H, d = c["H"], c["d"]
    per_layer = H * d * (2 * c["heads"] + 2 * c["kv"]) + 3 * H * c["I"] + 2 * H
    if c["qkv_bias"]:
        per_layer += d * (c["heads"] + 2 * c["kv"])
    layers = c["layers"] * per_layer
    return c["V"] * H * (1 if c["tied"] else 2) + H + layers, layers


def _itemsize(dtype) -> tuple[int, str]:
    import torch

    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    return dtype.itemsize, str(dtype).removeprefix("torch.")


def _kind(device) -> str:
    return "cuda" if str(device).startswith("cuda") else "cpu"


def estimate(config, length: int, *, dtype="bfloat16", device="cuda", batch: int = 1, probe_queries: int = 0,
             probe_mode: str = "rows", bins: int = 64, generate_tokens: int = 0, full_logits: bool = True,
             use_cache: bool = True, attention: str = "sdpa", output_attentions: bool = False,
             threads: int | None = None) -> Estimate:
    """Bytes and seconds of one no-grad pass at ``length`` tokens (module docstring: the formulas).

    config: a ``PretrainedConfig`` or a local checkpoint directory. full_logits: the task needs
    logits at every position in float32 (perplexity) instead of the last (``logits_to_keep=1``,
    as ``generate`` does). generate_tokens g > 0: a greedy ``generate`` of g tokens after the
    prompt (KV cache always on; probe rows are then one per generated token). attention:
    "sdpa" or "eager"; output_attentions keeps eager's maps. threads: CPU threads for the time
    estimate (default ``torch.get_num_threads()``).
    """
    if probe_mode not in ("rows", "reduced"):
        raise ValueError(f"probe_mode={probe_mode!r}: expected 'rows' or 'reduced'")
    if attention not in ("sdpa", "eager"):
        raise ValueError(f"attention={attention!r}: expected 'sdpa' or 'eager'")
    config = _config(config)
    c = _shape(config)
    s, dtype_name = _itemsize(dtype)
    b, L, g = int(batch), int(length), int(generate_tokens)
    T = L + g
    H, I, V, n_l, n_h, n_kv, d = c["H"], c["I"], c["V"], c["layers"], c["heads"], c["kv"], c["d"]
    P, P_layers = parameter_count(config)
    eager = attention == "eager"
    full_logits = full_logits and g == 0

    weights = P * s
    kv_cache = 2 * n_l * n_kv * d * T * b * s if (use_cache or g) else 0
    # per-layer transients (no-grad: each is freed before the next layer starts)
    attn = b * L * s * (2 * d * (n_h + 2 * n_kv) + 2 * n_h * d) + b * n_h * L * 4
    if n_kv < n_h and (eager or c["sliding"]):
        attn += 2 * b * L * n_h * d * s  # repeat_kv copies (no enable_gqa with a mask)
    if eager:
        attn += b * n_h * L * L * (2 * s + 4)
    if probe_queries:
        attn += b * n_h * probe_queries * L * 4 + min(b * n_kv * L * d * 4, max(PROBE_CHUNK_BYTES, b * L * d * 4))
    mlp = 3 * b * L * I * s
    norm = 2 * b * L * H * 4
    logits = b * L * V * (s + 4 + (4 if s < 4 else 0)) if full_logits else b * V * (s + 8)
    decode = 2 * n_kv * d * T * b * s if g else 0
    mask = b * L * L * s if eager else (b * L * L if c["sliding"] else 0)  # 4D float / boolean mask
    activations = 3 * b * L * H * s + mask + max(attn, mlp, norm, logits, decode)

    rows, width = (probe_queries * g, T) if g else (probe_queries, L)  # generating: n rows per new token
    probe_rows = n_l * b * n_h * rows * (bins if probe_mode == "reduced" else width) * 4
    attention_maps = n_l * b * n_h * L * L * s if (eager and output_attentions) else 0
    total = weights + kv_cache + activations + probe_rows + attention_maps

    half, single, bandwidth = THROUGHPUT[_kind(device)]
    rate = half if s <= 2 else single
    if _kind(device) == "cpu":
        import torch

        rate *= threads or torch.get_num_threads()
    prefill = 2 * b * L * P_layers + (4 if eager else 2) * b * n_l * n_h * d * L * L
    prefill += 2 * b * H * V * (L if full_logits else 1)
    seconds = prefill / rate
    flops = float(prefill)
    for t in range(L, T - 1):  # decode steps: one token each (the first token comes from the prefill)
        step = 2 * b * (P_layers + H * V) + 4 * b * n_l * n_h * d * t
        flops += step
        seconds += max(step / rate, (weights + 2 * n_l * n_kv * d * t * b * s) / bandwidth)
    return Estimate(L, dtype_name, weights, kv_cache, activations, probe_rows, attention_maps, total, flops,
                    seconds)


def available_bytes(device="cuda") -> int:
    """Free memory of ``device``. CUDA: driver-free bytes (``mem_get_info``) plus what PyTorch's caching
    allocator holds unused (reserved - allocated); CPU: ``psutil.virtual_memory().available``."""
    if _kind(device) == "cuda":
        import torch

        dev = torch.device(device)
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free + torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev))
    import psutil

    return int(psutil.virtual_memory().available)


def longest_fitting(config, usable: int, **options) -> int:
    """The longest length (a multiple of 256, >= 0) whose estimate is within ``usable`` bytes."""
    lo, hi = 0, 1 << 26  # 64M tokens
    while hi - lo > 256:
        mid = (lo + hi) // 2 // 256 * 256
        if estimate(config, mid, **options).total <= usable:
            lo = mid
        else:
            hi = mid
    return lo


def check_fits(config, length: int, *, device="cuda", dtype="bfloat16", margin: float = 0.9,
               free_bytes: int | None = None, include_weights: bool = True, **options) -> Estimate:
    """The :class:`Estimate` if it fits in ``margin`` x the free memory, else raise :class:`DoesNotFit`.

    free_bytes: the free memory to assume (default :func:`available_bytes`). include_weights=False
    when the model is already resident (its weights are not free memory any more). Other options
    go to :func:`estimate`. Never allocates; well under a second.
    """
    config = _config(config)
    free = available_bytes(device) if free_bytes is None else int(free_bytes)
    options = dict(dtype=dtype, device=device, **options)
    est = estimate(config, length, **options)
    need = est.total if include_weights else est.working
    usable = margin * free
    if need <= usable:
        return est
    budget = usable + (0 if include_weights else est.weights)
    longest = longest_fitting(config, int(budget), **options)
    advice = [f"a shorter length (the longest that fits is about {longest} tokens)" if longest else
              "a shorter length (not even 256 tokens fit)"]
    if _itemsize(dtype)[0] > 2:
        advice.append("dtype=bfloat16")
    advice.append("a device with more free memory")
    resident = "" if include_weights else f", weights {est.weights / GIB:.2f} GiB already resident"
    raise DoesNotFit(
        f"length={length} does not fit on {device} in {est.dtype}: needs about {est.breakdown()}{resident}, "
        f"but {free / GIB:.2f} GiB is free ({margin:.0%} usable = {usable / GIB:.2f} GiB); use "
        + ", or ".join(advice))
