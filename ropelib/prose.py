"""Numbers in a chapter's prose, computed: values glued for MyST's ``{glue:text}`` role.

A chapter's "What this shows" paragraph cites its key numbers as ``{glue:text}`name```;
``glue_numbers(name=value, ...)`` stores each value as text (floats to 3 significant
digits, so the executed page is stable across machines) without displaying it, and
returns what it glued so the page can also print it. Never type a number into prose.
Also ``significant``, the rounding every findings module's tables use.
Not here: formatting of tables (``results``, each findings module).
"""

from __future__ import annotations

import math


class _Text(str):
    """A str whose repr is itself: glue shows text/plain, which for a plain str has quotes."""

    def __repr__(self) -> str:
        return str(self)


DIGITS = 4  # significant digits of the numbers a page's tables print


def significant(x: float, digits: int = DIGITS) -> float:
    """``x`` rounded to ``digits`` significant digits (0, inf and NaN unchanged)."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


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


def glue_verdicts(prefix: str, rows: list[dict]) -> dict[str, str]:
    """Glue each glance row's verdict, "ours" and details as ``<prefix>_<j>_verdict`` /
    ``_ours`` / ``_details`` (j = 1, 2, ... in the rows' order), for a "What this shows"
    paragraph that cites the page's own verdicts."""
    values = {}
    for j, row in enumerate(rows, start=1):
        values.update({f"{prefix}_{j}_verdict": row["verdict"], f"{prefix}_{j}_ours": row["ours"],
                       f"{prefix}_{j}_details": row["details"] or "no details"})
    return glue_numbers(**values)


# ---- what a page says about the models it runs

def model_text(chapter: str, section: str, label: str = "", pretrained_length: int = 0, path=None) -> str:
    """The ``section`` paragraph of ``chapter`` for the model a page measures (``chapters/prose.yml``): the
    organism's text when ``label`` is empty, else the real model's, with {label}, {L0} and {L0x2} filled in.
    A missing chapter or section raises KeyError naming it (a template asking for text that is not there)."""
    import yaml

    from ropelib import paths

    entries = yaml.safe_load(open(path or paths.ROOT / "chapters" / "prose.yml", encoding="utf-8"))
    try:
        texts = entries[chapter][section]
    except KeyError:
        raise KeyError(f"chapters/prose.yml has no section {section!r} for chapter {chapter!r}") from None
    if not label:
        return texts["organism"].strip()
    return texts["real"].strip().format(label=label, L0=pretrained_length, L0x2=2 * pretrained_length)


def model_paragraph(chapter: str, section: str, label: str = "", pretrained_length: int = 0):
    """:func:`model_text` as Markdown, for a code cell whose input the book hides (tag ``remove-input``)."""
    from IPython.display import Markdown

    return Markdown(model_text(chapter, section, label, pretrained_length))
