"""Verdicts of chapter "Attention patterns at and beyond the pretrained length": Table 1's orderings, Fig. 2's claim.

Input: the tables of :mod:`ropelib.findings.attention_patterns.analysis` (one row per variant: variant,
method, compared with, statistic, value, ci_low, ci_high).

  setting(length, L0)                  "at L0" (the paper's 2K half of Table 1) or "beyond L0" (its 8K half, 2 L0 of LLaMA-2)
  ordering_roles(table, ...)           who should come first in the paper's ordering, and against whom
  dominates(table, leader, others)     the ordering rule: replicated / partly / not replicated
  ratios(table, leader, others)        the leader's value as a multiple of each other's (the paper's "much larger")
  beside_paper(table, ...)             ours beside the paper's Table 1, as printed
  glance_rows(js, gap, ...)            this page's rows for the "Results at a glance" page

The paper's ordering at L0: PI's divergence from the original model above YaRN's and NTK's.
Beyond L0: plain RoPE's (the original model's, extrapolating) above PI's, YaRN's and NTK's,
both for the divergence from the natively long model (Table 1) and for the gap from the
original model's L0 pattern (Fig. 2).

Beyond L0 the gap (Fig. 2) and the JS (Table 1) are two measures of one attention capture: one
claim (row 1.3), not two. Control the paper lacks (row 1.35): beyond L0, does each extension
beat plain RoPE continually pretrained at the same length with the same tokens (``cpt-rope``),
i.e. is the control's gap and JS to the natively long model above every extension's, by the
same rule? Its outcome is a result, worded "supported" / "not supported" / ... (``results.worded``).
A row is "not testable" only when the attention it compares cannot be measured: a
checkpoint it needs is absent (no native model, no cpt-rope) or no full checkpoint; a
retrieval-gate miss does not count (``ropelib.findings.verdicts.ROLE_NEEDS_RETRIEVAL``).
Not here: capturing or computing the statistics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ropelib import results
from ropelib.findings.verdicts import combined, not_testable_reason, ordered

EXTENSIONS = ("pi", "ntk", "ntk100", "yarn")
# The paper's Table 1, units as printed there (the paper does not say which).
PAPER_TABLE1 = {
    "at L0": {"pi": 1.29, "yarn": 0.05, "ntk": 0.06, "rope": 0.00},  # at 2K, vs LLaMA-2 at 2K
    "beyond L0": {"pi": 2.29, "yarn": 1.72, "ntk": 1.68, "rope": 2.57},  # at 8K, vs LLaMA-3 at 8K
}
RULE = ("95% paired bootstrap CIs over sequences; replicated if the first model's CI lies above every other's, "
        "partly if above some (not all), not replicated if above none and below at least one, else inconclusive")


def setting(length: int, pretrained_length: int) -> str:
    """Which half of Table 1 a length belongs to: "at L0" (length <= L0) or "beyond L0"."""
    return "at L0" if length <= pretrained_length else "beyond L0"


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
    """Verdict of "``leader``'s value is larger than each of ``others``'", on CIs only:

    replicated if the leader's CI lies above every other CI; partly if above some (a
    significant part) but not all; not replicated if above none and below at least one;
    inconclusive if it overlaps every other (a point estimate alone decides nothing).
    """
    by = table.set_index("variant")
    lead = by.loc[leader]
    sides = [ordered(lead["ci_low"], lead["ci_high"], by.loc[o, "ci_low"], by.loc[o, "ci_high"]) for o in others]
    if all(side > 0 for side in sides):
        return "replicated"
    if any(side > 0 for side in sides):
        return "partly"
    return "not replicated" if any(side < 0 for side in sides) else "inconclusive"


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


def sink_formatted(sinks: pd.DataFrame) -> pd.DataFrame:
    """``attention.sink_table`` as printed: each statistic with its 95% CI, 4 significant digits."""
    names = ("sink mass", "entropy (nats)", "entropy without sink (nats)")
    return pd.DataFrame({name: [f"{_shown(v)} [{_shown(lo)}, {_shown(hi)}]" for v, lo, hi in
                                zip(sinks[name], sinks[f"{name} low"], sinks[f"{name} high"])] for name in names},
                        index=pd.Index(sinks["variant"], name="variant"))


def beside_paper(table: pd.DataFrame, length: int, pretrained_length: int, reference: str) -> pd.DataFrame:
    """Ours beside the paper's Table 1 value of the same method (``reference`` is the paper's RoPE row).

    Variants the paper does not evaluate (e.g. RoPE continually pretrained) get "-".
    """
    paper = PAPER_TABLE1[setting(length, pretrained_length)]

    def paper_value(row):
        method = "ntk" if row.method == "ntk100" else row.method  # the paper's NTK is Code Llama's base raise
        key = "rope" if row.variant == reference else method if method in EXTENSIONS else None
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


def control_roles(table: pd.DataFrame, reference: str) -> tuple[str, list[str]] | None:
    """(plain-RoPE CPT variant, extensions) for the control rows, or None when there is no such model."""
    controls = table[(table["method"] == "rope") & (table["variant"] != reference)]["variant"].tolist()
    extensions = table[table["method"].isin(EXTENSIONS)]["variant"].tolist()
    return (controls[0], extensions) if controls and extensions else None


def _verdict(table, roles, needs) -> tuple[str, str]:
    """(verdict, details): "not testable" with the reason when a needed checkpoint is absent or no
    full checkpoint; a retrieval-gate miss does not count (attention does not need retrieval)."""
    reason = not_testable_reason(needs, role="attention")
    if reason:
        return "not testable", reason
    return dominates(table, *roles), _summary(table, *roles)


def glance_rows(js: pd.DataFrame | None, gap: pd.DataFrame | None, length: int, pretrained_length: int,
                reference: str, long_reference: str | None, chapter: str, sources: dict[str, str],
                js_free: pd.DataFrame | None = None) -> list[dict]:
    """This page's verdicts for the glance page (rule: :func:`dominates`, repeated in each row).

    At L0: row 1.4, Table 1's ordering vs the original model. Beyond L0, the gap (Fig. 2) and
    the JS to the natively long model (Table 1) come from ONE attention capture, so they are
    one claim with two measures (row 1.3, graded by ``findings.verdicts.combined`` on the measures
    that could be measured, at most "partly" when one could not, e.g. no natively long model,
    and said), and one
    control (1.35, plain-RoPE CPT first, the same two measures). ``js_free`` (the JS without
    the attention sink) is shown beside the JS with it, not judged. ``sources``: label ->
    "method:source" of every model on the page, for the checks that each exists.
    """
    def needs(*labels):
        return [sources[label] for label in labels if label in sources]

    rows = []
    if setting(length, pretrained_length) == "at L0":
        roles = ordering_roles(js, length, pretrained_length, reference)
        if roles:
            verdict, details = _verdict(js, roles, needs(roles[0], *roles[1], reference))
            rows.append(results.glance_row(
                1.4, "Finding 1", f"Table 1 at L0: PI changes in-length attention more than YaRN and NTK do "
                f"(JS vs {reference})", "PI 1.29 >> YaRN 0.05, NTK 0.06", _summary(js, *roles), verdict,
                f"JS (bits) of mean distance-binned attention, PI first; {RULE}", chapter, details=details))
        return rows

    # the measures of one capture: name, table, its paper statement, whether the native model takes part
    native = f"natively long model ({long_reference})" if long_reference else "natively long model (none given)"
    measures = [("gap to the original L0 pattern (Fig. 2)", gap, False),
                (f"JS to the {native} (Table 1)", js if long_reference else None, True)]

    def graded_row(order, claim, paper, pick_roles, kind, rule):
        grades, ours, details = [], [], []
        for name, table, with_native in measures:
            roles = pick_roles(table) if table is not None else None
            if roles is None:
                details.append(f"{name}: not measured (no such model on the page)")
                continue
            compared = [roles[0], *roles[1], reference] + ([long_reference] if with_native else [])
            verdict, text = _verdict(table, roles, needs(*compared))
            grades.append(verdict)
            ours.append(f"{name}: {_summary(table, *roles)}")
            details.append(f"{name}: {verdict}" + (f" ({text})" if verdict == "not testable" else ""))
            if with_native and js_free is not None:
                free = pick_roles(js_free)
                if free:
                    details.append(f"JS without the attention sink (shown, not judged): {dominates(js_free, *free)}; "
                                   f"{_summary(js_free, *free)}")
        measured = [g for g in grades if g != "not testable"]
        verdict = combined(measured) if measured else "not testable"
        if verdict == "replicated" and len(measured) < len(measures):  # a part unmeasured: at most partly
            verdict = "partly"
        return results.glance_row(order, "Finding 1", claim, paper, " | ".join(ours) or "-", verdict, rule, chapter,
                                  kind=kind, details="; ".join(details))

    rows.append(graded_row(
        1.3, f"Fig. 2 and Table 1 beyond L0 (one attention capture at {length} tokens): PI, YaRN and NTK come back "
        "to the original model's L0 pattern and are closer to the natively long model than plain RoPE",
        "by eye (Fig. 2); RoPE 2.57 > PI 2.29, YaRN 1.72, NTK 1.68 (Table 1)",
        lambda table: ordering_roles(table, length, pretrained_length, reference), "paper",
        "two measures of one capture, plain RoPE first in each: gap = mean |log10| ratio of attention per key to "
        f"the original's at L0 over distances < 3 L0 / 4; JS (bits) of mean distance-binned attention; {RULE}; "
        "the claim combines its measures (partly if one is replicated; at most partly if one cannot be measured)"))
    rows.append(graded_row(
        1.35, f"Control: at {length} tokens each extension is closer to the original L0 pattern and to the natively "
        "long model than plain RoPE continually pretrained at the same length with the same tokens",
        "not tested in the paper", lambda table: control_roles(table, reference), "control",
        f"the measures of 1.3, plain-RoPE CPT first; {RULE}; a retrieval-gate miss of the control does not count "
        "(attention does not need retrieval)"))
    return rows


def key_numbers(js, js_free, gap, sinks: pd.DataFrame, roles, gap_roles) -> dict[str, str]:
    """What the page's prose cites: sink mass range, and each ordering's verdict with and without the sink."""
    def verdict(table, order):
        return dominates(table, *order) if table is not None and order else "not tested on this page"

    return {"att_sink_low": f"{sinks['sink mass'].min():.3g}", "att_sink_high": f"{sinks['sink mass'].max():.3g}",
            "att_js_verdict": verdict(js, roles), "att_js_free_verdict": verdict(js_free, roles),
            "att_gap_verdict": verdict(gap, gap_roles)}
