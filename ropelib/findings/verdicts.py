"""Shared pieces of every verdict rule: preconditions, strata, and agreeing evidence.

Every rule of the book returns one of ``results.VERDICTS``. "not testable" is returned,
before any effect is looked at, when a precondition fails:

- a checkpoint the claim needs missed its retrieval gate (``recipes.gate``: 95% Wilson
  lower bound >= 0.9 on 200 dev needles at L0 and at its training length), or has no
  gate recorded (a smoke or pre-v3 checkpoint); a Hugging Face checkpoint has no gate and
  is taken as it is, and the row says so;
- a stratum has fewer than ``MIN_OUTCOME_TRIALS`` trials of either outcome (it is dropped;
  a claim left with no stratum is not testable);
- a model the comparison needs is absent from the page's line-up.

A "replicated" needs a confidence interval and a permutation p-value that agree
(:func:`agree`): the CI excludes the null and p < ``ALPHA``.
Not here: the rules themselves (each chapter's findings module).
"""

from __future__ import annotations

from ropelib.models import manifest as manifests, sources

MIN_OUTCOME_TRIALS = 5  # trials of each outcome a stratum needs to count
ALPHA = 0.05


def gate_misses(source_names) -> list[str]:
    """One short note per organism checkpoint among ``source_names`` that is unfit for its role."""
    notes = []
    for source in dict.fromkeys(source_names):
        try:
            directory = sources.check_source(source, "checkpoint", verify_weights=False)
        except sources.SourceError as error:
            notes.append(str(error))
            continue
        notes += manifests.gate_misses(source, manifests.read(directory))  # {} for Hugging Face: taken as it is
    return notes


def sources_of(variants) -> list[str]:
    """The checkpoint of each "method:source" string or Variant."""
    return [getattr(v, "source", None) or str(v).partition(":")[2] for v in variants]


def not_testable_reason(variants) -> str:
    """"" when every checkpoint behind ``variants`` passed its gate, else why the claim is not testable."""
    misses = gate_misses(sources_of(variants))
    return "; ".join(misses)


def gate_notes(variants) -> dict[str, str]:
    """label -> "" when the variant's checkpoint passed its gate, else why it is shown but not pooled."""
    return {v.label: not_testable_reason([v]) for v in variants}


def pooled(notes: dict[str, str]) -> list[str]:
    """The labels of ``gate_notes`` that passed their gate: the ones a pooled verdict uses."""
    return [label for label, note in notes.items() if not note]


def gate_lines(notes: dict[str, str]) -> str:
    """One line per variant: pooled, or shown and why not pooled (what a chapter prints under its set-up)."""
    return "\n".join(f"  {label}: {'passed its retrieval gate, pooled' if not note else 'shown, not pooled: ' + note}"
                     for label, note in notes.items())


def agree(ci_low: float, ci_high: float, p_value: float, null: float) -> bool:
    """CI and permutation test agree that the effect is on the claimed side: CI above ``null``, p < ALPHA."""
    return ci_low > null and p_value < ALPHA
