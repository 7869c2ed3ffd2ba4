"""Verdicts of chapter "Attention patterns at and beyond the pretrained length": Table 1's orderings, Fig. 2's claim.

Input: the tables of :mod:`ropelib.findings.attention` (one row per variant: variant,
method, compared with, statistic, value, ci_low, ci_high).

  setting(length, L0)                  "at L0" (the paper's 2K half of Table 1) or "at 4 L0" (its 8K half)
  ordering_roles(table, ...)           who should come first in the paper's ordering, and against whom
  dominates(table, leader, others)     the ordering rule: replicated / partly / not replicated
  ratios(table, leader, others)        the leader's value as a multiple of each other's (the paper's "much larger")
  beside_paper(table, ...)             ours beside the paper's Table 1, as printed
  glance_rows(js, gap, ...)            this page's rows for the "Results at a glance" page

The paper's ordering at L0: PI's divergence from the original model above YaRN's and NTK's.
Beyond L0: plain RoPE's (the original model's, extrapolating) above PI's, YaRN's and NTK's,
both for the divergence from the natively long model (Table 1) and for the gap from the
original model's L0 pattern (Fig. 2). Not here: capturing or computing the statistics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ropelib import results

EXTENSIONS = ("pi", "ntk", "yarn")
# The paper's Table 1, units as printed there (the paper does not say which).
PAPER_TABLE1 = {
    "at L0": {"pi": 1.29, "yarn": 0.05, "ntk": 0.06, "rope": 0.00},  # at 2K, vs LLaMA-2 at 2K
    "at 4 L0": {"pi": 2.29, "yarn": 1.72, "ntk": 1.68, "rope": 2.57},  # at 8K, vs LLaMA-3 at 8K
}
RULE = ("95% paired bootstrap CIs over sequences; replicated if the first model's CI lies above every other's, "
        "partly if only its point estimate is the largest, else not replicated")


def setting(length: int, pretrained_length: int) -> str:
    """Which half of Table 1 a length belongs to: "at L0" (length <= L0) or "at 4 L0" (beyond L0)."""
    return "at L0" if length <= pretrained_length else "at 4 L0"


def ordering_roles(table: pd.DataFrame, length: int, pretrained_length: int,
                   reference: str) -> tuple[str, list[str]] | None:
    """(leader, others) of the paper's ordering at this length, or None when the variants lack them.

    At L0: the PI variant leads, YaRN and NTK follow. Beyond L0: ``reference`` (the original
    model, the paper's RoPE row) leads, the PI, YaRN and NTK variants follow. Other
    variants (e.g. RoPE continually pretrained) take no part.
    """
    extensions = table[table["method"].isin(EXTENSIONS) & (table["variant"] != reference)]
    if setting(length, pretrained_length) == "at L0":
        pi = extensions.loc[extensions["method"] == "pi", "variant"].tolist()
        others = extensions.loc[extensions["method"] != "pi", "variant"].tolist()
        return (pi[0], others) if len(pi) == 1 and others else None
    if reference not in set(table["variant"]) or extensions.empty:
        return None
    return reference, extensions["variant"].tolist()


def dominates(table: pd.DataFrame, leader: str, others: list[str]) -> str:
    """Verdict of "``leader``'s value is larger than each of ``others``'":

    replicated if the leader's CI lies above every other CI (its low > each other's high);
    partly if only its point estimate is the largest; not replicated otherwise.
    """
    by = table.set_index("variant")
    rest = by.loc[others]
    if by.loc[leader, "ci_low"] > rest["ci_high"].max():
        return "replicated"
    return "partly" if by.loc[leader, "value"] > rest["value"].max() else "not replicated"


def ratios(table: pd.DataFrame, leader: str, others: list[str]) -> str:
    """How many times each of ``others``' value the leader's is, e.g. "1.35x NTK (cpt-ntk), 1.36x YaRN (cpt-yarn)"."""
    by = table.set_index("variant")["value"]
    return ", ".join(f"{_shown(by[leader] / by[other]) if by[other] else 'inf'}x {other}" for other in others)


def _shown(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.4g}"


def formatted(table: pd.DataFrame) -> pd.DataFrame:
    """A statistic table as printed: value and 95% CI to 4 significant digits, one row per variant."""
    statistic = table["statistic"].iloc[0] if len(table) else "value"
    return pd.DataFrame({
        "variant": table["variant"],
        "compared with": table["compared with"],
        f"ours: {statistic}": table["value"].map(_shown),
        "95% CI": [f"[{_shown(lo)}, {_shown(hi)}]" for lo, hi in zip(table["ci_low"], table["ci_high"])],
    }).set_index("variant")


def beside_paper(table: pd.DataFrame, length: int, pretrained_length: int, reference: str) -> pd.DataFrame:
    """Ours beside the paper's Table 1 value of the same method (``reference`` is the paper's RoPE row).

    Variants the paper does not evaluate (e.g. RoPE continually pretrained) get "-".
    """
    paper = PAPER_TABLE1[setting(length, pretrained_length)]

    def paper_value(row):
        key = "rope" if row.variant == reference else row.method if row.method in EXTENSIONS else None
        return f"{paper[key]:.2f}" if key else "-"

    shown = formatted(table)
    shown.insert(1, "paper (units as printed)", [paper_value(row) for row in table.itertuples()])
    return shown


def _summary(table: pd.DataFrame, leader: str, others: list[str]) -> str:
    """Each value with its CI, then the leader's value as a multiple of the others'."""
    by = table.set_index("variant")
    values = "; ".join(f"{label} {_shown(by.loc[label, 'value'])} [{_shown(by.loc[label, 'ci_low'])}, "
                       f"{_shown(by.loc[label, 'ci_high'])}]" for label in [leader, *others])
    return f"{values} (first = {ratios(table, leader, others)})"


def glance_rows(js: pd.DataFrame, gap: pd.DataFrame | None, length: int, pretrained_length: int, reference: str,
                long_reference: str, chapter: str) -> list[dict]:
    """This page's verdicts for the glance page (rule: :func:`dominates`, repeated in each row).

    At L0: row 1.4, Table 1's ordering vs the original model. Beyond L0: row 1.3, plain RoPE's
    curve further from the original model's L0 pattern than the extensions' (``gap``);
    row 1.5, Table 1's ordering vs the natively long-trained model.
    """
    rows = []
    if setting(length, pretrained_length) == "at L0":
        roles = ordering_roles(js, length, pretrained_length, reference)
        if roles:
            rows.append(results.glance_row(
                1.4, "Finding 1", f"Table 1 at L0: PI changes in-length attention more than YaRN and NTK do (JS vs {reference})",
                "PI 1.29 >> YaRN 0.05, NTK 0.06", _summary(js, *roles), dominates(js, *roles),
                f"JS (bits) of mean distance-binned attention, PI first; {RULE}", chapter))
        return rows
    roles = ordering_roles(gap, length, pretrained_length, reference) if gap is not None else None
    if roles:
        rows.append(results.glance_row(
            1.3, "Finding 1", f"Fig. 2: at {length} tokens PI, YaRN and NTK come back to the original model's "
            "L0 attention pattern; plain RoPE departs from it", "by eye (Fig. 2)", _summary(gap, *roles),
            dominates(gap, *roles), "gap = mean |log10| ratio of attention per key to the original's at L0 "
            f"over distances < 3 L0 / 4, plain RoPE first; {RULE}", chapter))
    roles = ordering_roles(js, length, pretrained_length, reference)
    if roles:
        rows.append(results.glance_row(
            1.5, "Finding 1", f"Table 1 beyond L0: the extensions' attention is closer to the natively long model's "
            f"({long_reference}) than plain RoPE's", "RoPE 2.57 > PI 2.29, YaRN 1.72, NTK 1.68",
            _summary(js, *roles), dominates(js, *roles),
            f"JS (bits) of mean distance-binned attention, plain RoPE first; {RULE}", chapter))
    return rows
