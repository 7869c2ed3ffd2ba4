"""The machine's yardstick, recorded beside every timing: fp32 matmul GFLOP/s on 2 threads.

Machines of this project's class differ up to 2x in speed (about 100-185 GFLOP/s on 2 threads), and
page times scale with it, so a time means little without the rate of the machine that took it.
``book/timings.json`` (``publish.runner``) and the benchmarks (``benchmarks/meter.py``) record it.

Not here: timing anything else (``benchmarks/meter.Meter``).
"""

from __future__ import annotations

import functools
import time

THREADS = 2


@functools.lru_cache(maxsize=None)
def matmul_gflops(threads: int = THREADS, size: int = 1024, seconds: float = 0.5) -> float:
    """Best fp32 rate of repeated ``size`` x ``size`` products over about ``seconds`` on ``threads`` threads,
    in GFLOP/s (2 size^3 FLOP per product); measured once per process and ``threads``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        torch.mm(a, b)  # warm-up
        best, end = 0.0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            start = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
        return round(best, 1)
    finally:
        torch.set_num_threads(previous)
