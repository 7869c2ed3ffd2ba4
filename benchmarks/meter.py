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
    """fp32 matmul GFLOP/s on ``threads`` threads: ``ropelib.machine.matmul_gflops`` (one yardstick for the book
    and the benchmarks)."""
    from ropelib.machine import matmul_gflops as measure

    return measure(threads, size, seconds)
