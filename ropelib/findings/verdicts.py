"""The checkpoints' retrieval gates, as information a page prints beside its line-up.

Unlike ``ropelib.findings.claims`` (the one rule that grades every row), nothing here decides a
verdict: a gate miss is no longer a switch that makes a row "not testable". The registry's
premises (``chapters/claims.yml``, e.g. "retrieves at L0", computed from the page's own trials)
are the caveats a row carries; the training-time gates below (``recipes.gate``: 95% Wilson lower
bound >= 0.9 on the evaluation needles at L0 and at the training length, recorded in each
checkpoint's manifest) are what a page prints so a reader can compare the two.

  gate_misses(sources)   one short note per organism checkpoint that missed its gate (or has none recorded)
  gate_notes(variants)   label -> "" or why its checkpoint missed its gate
  gate_lines(notes)      one printed line per variant

Not here: any grading (``ropelib.findings.claims``), the premises of a claim (the chapters' verdicts).
"""

from __future__ import annotations

from ropelib.models import manifest as manifests, sources


def gate_misses(source_names) -> list[str]:
    """One short note per organism checkpoint among ``source_names`` that missed its retrieval gate or has
    none recorded; a Hugging Face checkpoint has no gate and is taken as it is."""
    notes = []
    for source in dict.fromkeys(source_names):
        try:
            directory = sources.check_source(source, "checkpoint", verify_weights=False)
        except sources.SourceError as error:
            notes.append(str(error))
            continue
        notes += manifests.gate_misses(source, manifests.read(directory))
    return notes


def sources_of(variants) -> list[str]:
    """The checkpoint of each "method:source" string or Variant."""
    return [getattr(v, "source", None) or str(v).partition(":")[2] for v in variants]


def gate_notes(variants) -> dict[str, str]:
    """label -> "" when the variant's checkpoint passed its retrieval gate, else the miss, in words."""
    return {v.label: "; ".join(gate_misses(sources_of([v]))) for v in variants}


def gate_lines(notes: dict[str, str]) -> str:
    """One line per variant: its training-time retrieval gate, as information (graded either way)."""
    return "\n".join(f"  {label}: " + ("passed its retrieval gate (or has none: a real model)" if not note else
                                       f"missed its retrieval gate (a caveat, not a switch): {note}")
                     for label, note in notes.items())
