"""Progress bars for the terminal of whoever runs a page, never inside a notebook's outputs.

Inside a Jupyter kernel (papermill, nbval), ``sys.stderr`` is captured into the cell's
outputs, so a tqdm bar there becomes hundreds of output blocks in the rendered book. The
kernel process's own stderr (``sys.__stderr__``) is inherited from whoever started it:
the terminal of ``ropebook run``, or pytest's. Bars go there, and only when it is a
terminal (tqdm's ``disable=None``), so CI logs stay clean too.
Not here: training's progress (``training``), which runs outside notebooks.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def _stream():
    return sys.__stderr__ if "ipykernel" in sys.modules and sys.__stderr__ is not None else sys.stderr


def progress(iterable=None, *, desc: str = "", disable: bool | None = None, **kwargs):
    """``tqdm(iterable)`` on the runner's terminal; ``disable=True`` turns it off, None: only on a tty."""
    return tqdm(iterable, desc=desc, file=_stream(), disable=disable, dynamic_ncols=True, **kwargs)
