"""Checks every task runs before heavy work: lengths, and whether a length fits in memory
(``memory.check_fits``: the same estimate that refuses a checkpoint before its weights load)."""

from __future__ import annotations

from ropelib.core import memory

MIN_LENGTH = 8


def check_lengths(lengths, name: str = "lengths") -> list[int]:
    lengths = [int(x) for x in ([lengths] if isinstance(lengths, int) else lengths)]
    if not lengths:
        raise ValueError(f"{name} is empty; give at least one context length")
    bad = [x for x in lengths if x < MIN_LENGTH]
    if bad:
        raise ValueError(f"{name} has {bad}: every context length must be >= {MIN_LENGTH} tokens")
    return lengths


def check_memory(model, length: int, batch: int = 1, **options) -> None:
    """Raise ``memory.DoesNotFit`` (a ``MemoryError``) before a pass at ``length`` that cannot fit.

    The model is resident already, so only the working memory (KV cache, activations, probe
    rows) is compared with the device's free memory; ``options`` go to ``memory.estimate``
    (e.g. ``full_logits=False`` for a task that keeps only the last position's logits).
    """
    parameter = next(model.parameters())
    memory.check_fits(model.config, length, device=str(parameter.device), dtype=parameter.dtype, batch=batch,
                      include_weights=False, **options)
