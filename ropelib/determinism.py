"""Seeds and thread count: the two knobs that make CPU results repeatable.

Every chapter and every training run calls :func:`seed_everything` first. The thread
count is fixed (default 2, override with ``ROPEBOOK_THREADS``) because float reductions
are summed in a thread-dependent order.
"""

import os
import random

import numpy as np
import torch

DEFAULT_THREADS = 2


def seed_everything(seed: int = 0, threads: int | None = None) -> None:
    """Seed python, numpy and torch; pin torch's intra-op thread count."""
    if threads is None:
        threads = int(os.environ.get("ROPEBOOK_THREADS", DEFAULT_THREADS))
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
