"""Progress bars for the terminal of whoever runs a page, never inside a notebook's outputs.

Inside a Jupyter kernel (papermill, nbval), ``sys.stderr`` is captured into the cell's
outputs, so a tqdm bar there becomes hundreds of output blocks in the rendered book. The
kernel process's own stderr (``sys.__stderr__``) is inherited from whoever started it:
the terminal of ``ropebook run``, or pytest's. Bars go there, and only when it is a
terminal (tqdm's ``disable=None``), so CI logs stay clean too.
``no_transformers_bars`` keeps transformers' own bars (model loading) out of the pages.
Not here: training's progress (``training``), which runs outside notebooks.
"""

from __future__ import annotations

import contextlib
import sys

from tqdm import tqdm


def _stream():
    return sys.__stderr__ if "ipykernel" in sys.modules and sys.__stderr__ is not None else sys.stderr


def progress(iterable=None, *, desc: str = "", disable: bool | None = None, **kwargs):
    """``tqdm(iterable)`` on the runner's terminal; ``disable=True`` turns it off, None: only on a tty."""
    return tqdm(iterable, desc=desc, file=_stream(), disable=disable, dynamic_ncols=True, **kwargs)


@contextlib.contextmanager
def no_transformers_bars():
    """Silence transformers' own progress bars for the block: its "Loading weights" bar and the
    GGUF reader's raw tqdm would otherwise print into a page's outputs (stderr is captured)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with contextlib.ExitStack() as stack:
            try:  # the legacy GGUF reader imports tqdm.auto directly, which the switch above misses
                from unittest import mock

                from transformers import modeling_gguf_pytorch_utils as gguf_utils

                if hasattr(gguf_utils, "tqdm"):
                    stack.enter_context(mock.patch.object(gguf_utils, "tqdm", lambda iterable, **_: iterable))
            except ImportError:
                pass
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
