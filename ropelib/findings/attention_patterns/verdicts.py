"""Verdicts of chapter "Attention patterns at and beyond the pretrained length": Table 1's orderings, Fig. 2's claim.

Input: the capture of :mod:`ropelib.findings.attention_patterns.analysis` (for the estimands)
and its tables (one row per variant: variant, method, compared with, statistic, value, ci_low,
ci_high; for the roles and the printing).

  setting(length, L0)                  "at L0" (the paper's 2K half of Table 1) or "beyond L0" (its 8K half, 2 L0 of LLaMA-2)
  ordering_roles(table, ...)           who comes first in the paper's ordering, and against whom
  control_roles(table, reference)      plain-RoPE CPT and the extensions, for the control 1.35
  estimands(capture, table, ...)       each claim's parts: log ratios with paired bootstrap CIs
  glance_rows(ratios, ...)             this page's rows, graded by the registry's one rule (``claims.row``)
  ratios(table, leader, others)        the leader's value as a multiple of each other's (description)
  beside_paper(table, ...)             ours beside the paper's Table 1, as printed

Every verdict comes from ``ropelib.findings.claims`` (``chapters/claims.yml``). Per part, the
estimand is ln(the compared model's statistic / the extension's), both against the same target
and on the same sequences, with a paired percentile bootstrap over sequences
(``analysis.paired_log_ratio``; unit: sequence):

  1.3  beyond L0, first = the original model (plain RoPE extrapolating), one part per extension
       (PI, NTK, NTK x100, YaRN) and statistic: gap = ln(gap_RoPE / gap_ext), the distance to the
       original model's L0 pattern (Fig. 2), always; JS = ln(JS_RoPE / JS_ext), the divergence
       from the natively long model (Table 1), only where one is in the line-up (else the JS
       parts are absent and the row says so)
  1.35 the same, first = plain RoPE continually pretrained (method rope, not the original model);
       not testable without such a model
  1.4  at L0, ln(JS_PI / JS_other) to the original model, one part per other extension (NTK, NTK x100, YaRN)

A row is not testable only when none of its parts can be computed (no extension, no original
model at this length, no plain-RoPE CPT, no PI). Attention needs no retrieval: no premises.
The JS without the attention sink is graded by the same rule and shown in the row's details,
not part of its verdict.
Not here: capturing or computing the statistics (``analysis``), the rule (``claims``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ropelib import results
from ropelib.core import methods
from ropelib.findings import claims
from ropelib.findings.attention_patterns import analysis

EXTENSIONS = methods.PAPER_EXTENSIONS
# The paper's Table 1, units as printed there (the paper does not say which).
PAPER_TABLE1 = {
    "at L0": {"pi": 1.29, "yarn": 0.05, "ntk": 0.06, "rope": 0.00},  # at 2K, vs LLaMA-2 at 2K
    "beyond L0": {"pi": 2.29, "yarn": 1.72, "ntk": 1.68, "rope": 2.57},  # at 8K, vs LLaMA-3 at 8K
}
ORDERS = {"at L0": (1.4,), "beyond L0": (1.3, 1.35)}
UNTESTABLE = {
    1.3: "the line-up lacks the original model at this length or any extension (PI, NTK, YaRN)",
    1.35: "no plain-RoPE CPT model in this line-up (needs continual pretraining)",
    1.4: "the line-up lacks a PI model or an NTK / YaRN model",
}


# ---- roles

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


def control_roles(table: pd.DataFrame, reference: str) -> tuple[str, list[str]] | None:
    """(plain-RoPE CPT variant, extensions) for the control rows, or None when there is no such model."""
    controls = table[(table["method"] == "rope") & (table["variant"] != reference)]["variant"].tolist()
    extensions = table[table["method"].isin(EXTENSIONS)]["variant"].tolist()
    return (controls[0], extensions) if controls and extensions else None


# ---- printing (description, no verdict)

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


# ---- the estimands

def estimands(capture: analysis.Capture, table: pd.DataFrame, reference: str, long_reference: str | None,
              n_boot: int = 1000, seed: int = 0, sink: bool = True) -> pd.DataFrame:
    """Every part of this page's claims (module docstring): one row per (claim, statistic, extension),
    columns claim, first, other, statistic, estimate, ci_low, ci_high, n_units.

    ``table``: any of the page's tables (its variant and method columns name the roles).
    Estimate ln(S(first) / S(other)) and its paired bootstrap CI over sequences
    (``analysis.log_ratio_table``). ``sink=False``: the JS parts only, on the distributions
    without the attention sink (the gap's local curves never hold the first token).
    Not here: the grade (:func:`glance_rows`).
    """
    length, pretrained_length = capture.length, capture.reference_at_l0.length

    def parts(order, roles, statistics):
        if roles is None:
            return []
        first, others = roles
        return [analysis.log_ratio_table(capture, statistic, first, others, target, n_boot, seed, sink)
                .assign(claim=order) for statistic, target in statistics]

    if setting(length, pretrained_length) == "at L0":
        frames = parts(1.4, ordering_roles(table, length, pretrained_length, reference), [("JS", None)])
    else:
        native = long_reference if long_reference in capture.at_length else None
        statistics = ([("gap", None)] if sink else []) + ([("JS", native)] if native else [])
        frames = (parts(1.3, ordering_roles(table, length, pretrained_length, reference), statistics)
                  + parts(1.35, control_roles(table, reference), statistics))
    columns = ["claim", "first", "other", "statistic", "estimate", "ci_low", "ci_high", "n_units"]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def ratio_formatted(ratios: pd.DataFrame) -> pd.DataFrame:
    """The estimands as printed: ln(first / other) with its 95% CI, 4 significant digits."""
    return pd.DataFrame({
        "claim": ratios["claim"], "statistic": ratios["statistic"], "first": ratios["first"],
        "other": ratios["other"], "ln(first / other)": ratios["estimate"].map(_shown),
        "95% CI": [f"[{_shown(lo)}, {_shown(hi)}]" for lo, hi in zip(ratios["ci_low"], ratios["ci_high"])],
        "sequences": ratios["n_units"]})


# ---- rows, by the registry's rule

def _parts(claim: claims.Claim, ratios: pd.DataFrame) -> list[claims.Part]:
    """The claim's graded parts from its rows of :func:`estimands`."""
    chosen = ratios[ratios["claim"] == claim.order]
    return [claims.part(claim, f"{r.statistic}, ln({r.first} / {r.other})", r.estimate, r.ci_low, r.ci_high,
                        r.n_units) for r in chosen.itertuples()]


def glance_rows(ratios: pd.DataFrame, where: str, model: str, chapter: str,
                free: pd.DataFrame | None = None) -> list[dict]:
    """This page's rows (1.4 at L0; 1.3 and 1.35 beyond it), each graded by ``claims.row`` on its parts.

    ``where``: :func:`setting`; ``ratios``: :func:`estimands`; ``free``: the same without the
    attention sink (JS parts only), graded by the same rule and shown in the details, not part of
    the verdict. Beyond L0 without a natively long model the JS parts are absent, and the details
    say so. A claim none of whose parts could be computed is ``claims.not_testable`` with the reason.
    """
    rows = []
    for order in ORDERS[where]:
        claim = claims.claim(order)
        parts = _parts(claim, ratios)
        if not parts:
            rows.append(claims.not_testable(claim, UNTESTABLE[order], model, chapter=chapter))
            continue
        first = ratios.loc[ratios["claim"] == order, "first"].iloc[0]
        details = [f"per part ln({first}'s statistic / the extension's), same target, same sequences"]
        if order != 1.4 and not any(p.name.startswith("JS") for p in parts):
            details.append("JS parts absent: no natively long model in this line-up")
        shown = _parts(claim, free) if free is not None else []
        if shown:
            word = results.worded(claims.combine(claim, shown)[0], claim.kind)
            details.append(f"JS without the attention sink, same rule (shown, not part of the verdict): {word}: "
                           + "; ".join(p.text(claim.kind) for p in shown))
        decisive = claims.combine(claim, parts)[1]
        rows.append(claims.row(claim, parts, model, ours=f"{decisive.estimate:.4g} ({decisive.name})",
                               details="; ".join(details), chapter=chapter))
    return rows


def key_numbers(rows: list[dict], sinks: pd.DataFrame, free: pd.DataFrame | None) -> dict[str, str]:
    """What the page's prose cites: sink mass range, each row's verdict, and the same rule on the sink-free JS."""
    def free_grade(row):
        claim = claims.claim(row["order"])
        parts = _parts(claim, free) if free is not None else []
        return results.worded(claims.combine(claim, parts)[0], claim.kind) if parts else "not measured"

    return {"att_sink_low": f"{sinks['sink mass'].min():.3g}", "att_sink_high": f"{sinks['sink mass'].max():.3g}",
            "att_verdicts": "; ".join(f"{r['order']:g} {r['verdict']}" for r in rows) or "none on this page",
            "att_js_free_verdict": "; ".join(f"{r['order']:g} {free_grade(r)}" for r in rows) or "none on this page"}
