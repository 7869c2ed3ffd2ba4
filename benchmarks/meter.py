"""Wall time and peak memory of a block, the one meter every benchmark uses.

CPU: the resident-set high-water mark (VmHWM in /proc/self/status), reset to the current
RSS on entry by writing 5 to /proc/self/clear_refs, so ``peak`` is the block's own
high-water mark. CUDA: ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``. ``extra`` = peak - the level on entry.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

GIB = 2**30


def status_bytes(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


class Meter:
    """``with Meter(device) as m: ...`` then ``m.seconds``, ``m.peak``, ``m.extra`` (bytes), ``m.record()``."""

    def __init__(self, device: str):
        self.device = device

    def __enter__(self):
        import torch

        gc.collect()
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.before = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            self.before = status_bytes("VmRSS")
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.start
        self.peak = torch.cuda.max_memory_allocated() if self.device == "cuda" else status_bytes("VmHWM")
        self.extra = self.peak - self.before

    def record(self) -> dict:
        return {"seconds": self.seconds, "peak_gib": self.peak / GIB, "extra_gib": self.extra / GIB}


def matmul_gflops(threads: int = 2, size: int = 1024, seconds: float = 1.0) -> float:
    """fp32 matmul rate of this machine in GFLOP/s on ``threads`` threads (2 n^3 FLOP per n x n product),
    best of repeated products over about ``seconds``: the yardstick recorded beside every timing, since
    machines of this class differ up to 2x (about 100-185 GFLOP/s on 2 threads)."""
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
