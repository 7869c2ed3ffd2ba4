"""Checks every task runs before heavy work: lengths, and whether a length fits in memory."""

from __future__ import annotations

import psutil
import torch

MIN_LENGTH = 8


def check_lengths(lengths, name: str = "lengths") -> list[int]:
    lengths = [int(x) for x in ([lengths] if isinstance(lengths, int) else lengths)]
    if not lengths:
        raise ValueError(f"{name} is empty; give at least one context length")
    bad = [x for x in lengths if x < MIN_LENGTH]
    if bad:
        raise ValueError(f"{name} has {bad}: every context length must be >= {MIN_LENGTH} tokens")
    return lengths


def estimated_forward_bytes(model, length: int, batch: int = 1) -> int:
    """Rough peak activation memory of one no-grad SDPA forward: logits plus per-layer states.

    float32 logits (length x vocab, twice for the softmax) dominate for small models; the
    per-layer term covers q/k/v/mlp activations (~16 floats per hidden unit per token).
    SDPA never builds the length x length matrix, so there is no quadratic term.
    """
    cfg = model.config
    itemsize = next(model.parameters()).element_size()
    logits = 2 * 4 * length * cfg.vocab_size
    layers = cfg.num_hidden_layers * 16 * itemsize * length * max(cfg.hidden_size, cfg.intermediate_size)
    return batch * (logits + layers)


def check_memory(model, length: int, batch: int = 1) -> None:
    device = next(model.parameters()).device
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else psutil.virtual_memory().available
    need = estimated_forward_bytes(model, length, batch)
    if need > 0.8 * free:
        raise MemoryError(
            f"length={length} x batch={batch} needs about {need / 2**30:.1f} GiB for one forward pass, "
            f"but only {free / 2**30:.1f} GiB is free on {device}; use shorter lengths or a bigger device"
        )
