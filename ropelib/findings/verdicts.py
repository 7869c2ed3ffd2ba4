"""Shared pieces of every verdict rule: preconditions, roles, grades, and agreeing evidence.

Every rule of the book grades in ``results.VERDICTS`` (a control's or a beyond-the-paper
row's words are given by ``results.worded``). "not testable" is returned, before any effect
is looked at, when the quantity the claim compares cannot be measured:

- a checkpoint the claim needs is absent, or is no full checkpoint (no gate recorded: a
  smoke or pre-v3 checkpoint); a Hugging Face checkpoint has no gate and is taken as it is;
- a checkpoint whose *role* in the claim needs retrieval (:data:`ROLE_NEEDS_RETRIEVAL`)
  missed its retrieval gate (``recipes.gate``: 95% Wilson lower bound >= 0.9 on the
  evaluation's needles at L0 and at its training length). Perplexity and attention do not
  need retrieval, and a control's retrieval is what the control measures: a gate miss
  makes neither untestable;
- no stratum has both outcomes (a stratum with fewer than ``MIN_OUTCOME_TRIALS`` trials of
  either outcome is dropped; a claim left with none, but with strata of both outcomes, was
  measured on too few trials and is inconclusive);
- a model the comparison needs is absent from the page's line-up.

Grades (:func:`graded`, :func:`ordered`, :func:`combined`), the same words everywhere:
  replicated      the CI (and permutation p, where there is one) is on the claimed side;
  not replicated  the CI is on the other side (absence or opposite shown);
  inconclusive    the CI spans both, or the test cannot separate the claim from its baseline;
  partly          a claim of several parts: at least one part replicated, not all.
A point estimate alone never makes a "partly".
Not here: the rules themselves (each chapter's findings module).
"""

from __future__ import annotations

from ropelib import results
from ropelib.models import manifest as manifests, sources

MIN_OUTCOME_TRIALS = 5  # trials of each outcome a stratum needs to count
ALPHA = 0.05


# what a checkpoint does in a claim -> whether a retrieval-gate miss makes the claim untestable
ROLE_NEEDS_RETRIEVAL = {
    "retrieval": True,  # its needle results are the claim's data (findings 2, 3.2, 4, 9)
    "perplexity": False,  # perplexity is measured on any checkpoint
    "attention": False,  # attention patterns, JS, entropy of attention: measured on any checkpoint
    "control": False,  # a control's outcome, retrieval included, is a result
}


def gate_misses(source_names, role: str = "retrieval") -> list[str]:
    """One short note per organism checkpoint among ``source_names`` that is unfit for ``role``."""
    if role not in ROLE_NEEDS_RETRIEVAL:
        raise ValueError(f"role={role!r}; expected one of {sorted(ROLE_NEEDS_RETRIEVAL)}")
    notes = []
    for source in dict.fromkeys(source_names):
        try:
            directory = sources.check_source(source, "checkpoint", verify_weights=False)
        except sources.SourceError as error:
            notes.append(str(error))
            continue
        misses = manifests.gate_misses(source, manifests.read(directory))  # {} for Hugging Face: taken as it is
        unrecorded = [m for m in misses if "no retrieval gate recorded" in m]  # not a full checkpoint: any role
        notes += misses if ROLE_NEEDS_RETRIEVAL[role] else unrecorded
    return notes


def sources_of(variants) -> list[str]:
    """The checkpoint of each "method:source" string or Variant."""
    return [getattr(v, "source", None) or str(v).partition(":")[2] for v in variants]


def not_testable_reason(variants, role: str = "retrieval") -> str:
    """"" when every checkpoint behind ``variants`` is fit for ``role`` (:data:`ROLE_NEEDS_RETRIEVAL`),
    else why the claim is not testable."""
    return "; ".join(gate_misses(sources_of(variants), role))


def gate_notes(variants, role: str = "retrieval") -> dict[str, str]:
    """label -> "" when the variant's checkpoint is fit for ``role``, else why it is shown but not pooled."""
    return {v.label: not_testable_reason([v], role) for v in variants}


def pooled(notes: dict[str, str]) -> list[str]:
    """The labels of ``gate_notes`` that passed their gate: the ones a pooled verdict uses."""
    return [label for label, note in notes.items() if not note]


def gate_lines(notes: dict[str, str]) -> str:
    """One line per variant: pooled, or shown and why not pooled (what a chapter prints under its set-up).
    A real model has no gate (only the organism's checkpoints are gated when trained): it is pooled as it is."""
    fit = "passed its retrieval gate, pooled" if results.measured_model() == results.ORGANISM else \
        "pooled as it is (a real model has no retrieval gate)"
    return "\n".join(f"  {label}: {fit if not note else 'shown, not pooled: ' + note}" for label, note in notes.items())


def agree(ci_low: float, ci_high: float, p_value: float, null: float) -> bool:
    """CI and permutation test agree that the effect is on the claimed side: CI above ``null``, p < ALPHA."""
    return ci_low > null and p_value < ALPHA


def graded(ci_low: float, ci_high: float, null: float = 0.0, p_value: float | None = None) -> str:
    """One effect claimed to lie above ``null``: replicated if its CI lies above (and p < ALPHA
    where a permutation p is given), not replicated if the CI lies at or below ``null``,
    inconclusive otherwise (the CI holds both the claimed direction and its absence)."""
    if ci_low > null and (p_value is None or p_value < ALPHA):
        return "replicated"
    return "not replicated" if ci_high <= null else "inconclusive"


def ordered(low: float, high: float, other_low: float, other_high: float) -> int:
    """+1 if the interval [low, high] lies above the other's, -1 if below, 0 if they overlap."""
    return 1 if low > other_high else -1 if high < other_low else 0


def combined(grades) -> str:
    """The grade of a claim of several parts: replicated if every part is, partly if at least one
    is replicated or partly (a significant part), not replicated if every part is, inconclusive
    otherwise; not testable if any part is."""
    grades = list(grades)
    if not grades or "not testable" in grades:
        return "not testable"
    if all(g == "replicated" for g in grades):
        return "replicated"
    if "replicated" in grades or "partly" in grades:  # a part that is itself partly is a significant part
        return "partly"
    return "not replicated" if all(g == "not replicated" for g in grades) else "inconclusive"
