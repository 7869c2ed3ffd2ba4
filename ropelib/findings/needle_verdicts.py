"""Finding 2's rules, verdicts and words, from the tables of ``needle_analysis``.

  RULES                          each statement's rule, fixed before any real run
  verdicts(association, ...)     the verdict of each statement, pooled over methods
  summary(...)                   the pooled results in words (the page's "Verdict" lines)
  glance_rows(...)               the finding-2 rows of the glance page

Not here: computing the tables (``needle_analysis``), plots (``needle_plots``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ropelib import results
from ropelib.findings.needle_analysis import ALPHA, CHAPTER, POOLED, STATEMENTS, pooled_row


def _direction(low: float, high: float) -> str:
    if not np.isfinite(low):
        return "cannot be tested (no stratum has both outcomes)"
    if low > 0.5:
        return "failures have higher entropy"
    if high < 0.5:
        return "failures have LOWER entropy"
    return "no detectable difference"


def summary(association: pd.DataFrame, logistic: pd.DataFrame, topk: pd.DataFrame, borrowed: pd.DataFrame) -> list[str]:
    """The pooled results in words, one line per test (what the page prints under "Verdict")."""
    a, g = pooled_row(association), pooled_row(logistic)
    lines = [
        f"all trials: AUROC {a['auroc']:.3f} [{a['auroc_low']:.3f}, {a['auroc_high']:.3f}]: "
        f"{_direction(a['auroc_low'], a['auroc_high'])}",
        f"within a length: AUROC {a['within']:.3f} [{a['within_low']:.3f}, {a['within_high']:.3f}] "
        f"over {a['strata']} (method, length) strata: {_direction(a['within_low'], a['within_high'])}",
        f"logistic, per-length intercepts: {g['entropy_within']:+.2f} [{g['entropy_within_low']:+.2f}, "
        f"{g['entropy_within_high']:+.2f}] log-odds of failure per nat"
        + ("" if g["converged_within"] else " (did not converge)"),
    ]
    for statement in STATEMENTS:
        t = pooled_row(topk, statement=statement)
        lines.append(f"{statement}: hit rate {t['hit_rate']:.3f} vs chance {t['chance']:.3f} "
                     f"({t['hits']} of {t['failing']} failing cells, p = {t['p_value']:.3g})")
    if (borrowed["method"] == POOLED).any():
        b = pooled_row(borrowed)
        lines.append(f"wrong answers: {b['borrowed']:.3f} found elsewhere in the context (unseen context: "
                     f"{b['by_chance']:.3f}); {b['garbled']:.3f} are the needle's own digits garbled "
                     f"(another needle's digits: {b['garbled_chance']:.3f})")
    return lines


RULES = {
    "auroc": "replicated if the 95% CI of the AUROC lies above 0.5, else not replicated",
    "topk": (f"replicated if the hit rate exceeds chance with exact p < {ALPHA}; partly if above chance "
             "with larger p; not replicated otherwise"),
    "borrowed": (f"replicated if failures find their wrong answer in their own context more often than in an "
                 f"unseen context of the same length (McNemar p < {ALPHA}) and the borrowed places get more "
                 f"attention than the needle (signed-rank p < {ALPHA}); partly if one of the two holds; "
                 "not replicated otherwise"),
    "finding": ("replicated if the AUROC of entropy for failure is above 0.5 (95% CI) both over all trials and "
                "within a fixed length; partly if only over all trials (the association is carried by length); "
                "not replicated otherwise"),
}


def _above_half(low: float) -> bool:
    return bool(np.isfinite(low) and low > 0.5)


def verdicts(association: pd.DataFrame, topk: pd.DataFrame, borrowed: pd.DataFrame) -> dict[str, str]:
    """Verdict of each finding-2 statement (pooled over methods) by :data:`RULES`."""
    pooled = pooled_row(association)
    out = {"auroc": "replicated" if _above_half(pooled["auroc_low"]) else "not replicated",
           "within": "replicated" if _above_half(pooled["within_low"]) else "not replicated"}
    out["finding"] = ("replicated" if out["auroc"] == out["within"] == "replicated"
                      else "partly" if out["auroc"] == "replicated" else "not replicated")
    for statement in STATEMENTS:
        row = pooled_row(topk, statement=statement)
        above = np.isfinite(row["hit_rate"]) and row["hit_rate"] > row["chance"]
        out[statement] = "replicated" if above and row["p_value"] < ALPHA else "partly" if above else "not replicated"
    row = pooled_row(borrowed) if (borrowed["method"] == POOLED).any() else None
    checks = 0 if row is None else int(bool(row["chance_p"] < ALPHA)) + int(bool(row["mass_p"] < ALPHA))
    out["borrowed"] = ("replicated", "partly", "not replicated")[2 - checks]
    return out


def glance_rows(association: pd.DataFrame, topk: pd.DataFrame, borrowed: pd.DataFrame) -> list[dict]:
    """The finding-2 rows for the glance page (pooled over methods), verdicts from :func:`verdicts`."""
    verdict = verdicts(association, topk, borrowed)
    pooled = pooled_row(association)
    rows = [
        results.glance_row(2.0, "Finding 2", "Large attention entropy goes with retrieval errors (Fig. 4)",
                           "failures coincide with high entropy (by eye)",
                           f"AUROC {pooled['auroc']:.3f} over all trials, {pooled['within']:.3f} within a length",
                           verdict["finding"], RULES["finding"], CHAPTER),
        results.glance_row(2.1, "Finding 2", "AUROC of answer entropy for a failed needle, all trials",
                           "not computed", pooled["auroc"], verdict["auroc"], RULES["auroc"], CHAPTER,
                           pooled["auroc_low"], pooled["auroc_high"]),
        results.glance_row(2.2, "Finding 2", "Same AUROC within each context length (length confound removed)",
                           "not computed", pooled["within"], verdict["within"], RULES["auroc"], CHAPTER,
                           pooled["within_low"], pooled["within_high"]),
    ]
    for order, statement in zip((2.3, 2.4), STATEMENTS):
        row = pooled_row(topk, statement=statement)
        rows.append(results.glance_row(
            order, "Finding 2", f"{statement.capitalize()} entropies (hit rate; chance {row['chance']:.2f}, "
            f"p = {row['p_value']:.2g})", "yes (by eye)", row["hit_rate"], verdict[statement], RULES["topk"], CHAPTER))
    row = pooled_row(borrowed) if (borrowed["method"] == POOLED).any() else None
    rows.append(results.glance_row(
        2.5, "Finding 2", "Wrong answers are borrowed from elsewhere in the context (share of failures"
        + ("" if row is None else f"; by chance {row['by_chance']:.2f}") + ")",
        "yes (examples)", np.nan if row is None else row["borrowed"], verdict["borrowed"], RULES["borrowed"], CHAPTER,
        None if row is None else row["borrowed_low"], None if row is None else row["borrowed_high"]))
    for row in rows:  # 6 significant digits, as write_csv gives float columns ("ours" mixes text and numbers)
        for key in ("ours", "ci_low", "ci_high"):
            if isinstance(row[key], float) and np.isfinite(row[key]):
                row[key] = float(f"{row[key]:.6g}")
    return rows
