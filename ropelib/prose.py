"""Numbers in a chapter's prose, computed: values glued for MyST's ``{glue:text}`` role.

A chapter's "What this shows" paragraph cites its key numbers as ``{glue:text}`name```;
``glue_numbers(name=value, ...)`` stores each value as text (floats to 3 significant
digits, so the executed page is stable across machines) without displaying it, and
returns what it glued so the page can also print it. Never type a number into prose.
Not here: formatting of tables (``results``, each findings module).
"""

from __future__ import annotations

import math


class _Text(str):
    """A str whose repr is itself: glue shows text/plain, which for a plain str has quotes."""

    def __repr__(self) -> str:
        return str(self)


def as_text(value, digits: int = 3) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.{digits}g}"
    return str(value)


def glue_numbers(**values) -> dict[str, str]:
    from myst_nb import glue

    texts = {name: as_text(value) for name, value in values.items()}
    for name, text in texts.items():
        glue(name, _Text(text), display=False)
    return texts
