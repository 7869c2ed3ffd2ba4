"""Finding 2's rules, verdicts and words, from the tables of ``needle_analysis``.

Fixed in code before any real run (except the two "too few" cases below, changed on
2026-12-05 after the first SmolLM2 run: README, "Sample sizes"); each has a unit test with a synthetic table that must
NOT replicate (length alone, post-error tokens, tiny strata, a checkpoint that misses its
gate). Every rule is "not testable" when a model of the page misses its retrieval gate
(``ropelib.findings.verdicts``). 2.1 is "not testable" when no stratum has both outcomes,
and "inconclusive" when some have both but none has >= 5 trials of each (measured, too few
to judge: "not testable" is kept for what cannot be measured).

- 2.1 **Large attention entropy goes with retrieval errors.** On the two measures where
  cause precedes effect (first answer token, teacher-forced), pooled over methods, within
  a fixed length (strata (method, length), clustered by prompt): replicated if for BOTH
  measures the AUROC's 95% CI lies above 0.5 and its permutation p < 0.05; partly if for
  one; not replicated if both CIs lie at or below 0.5; else inconclusive (also when no
  stratum has >= 5 trials of each outcome but some have both). The all-token mean
  (Appendix C) is shown, not judged.
- 2.3 / 2.4 **Failing lengths (depths) are among the top-k entropies at a fixed depth
  (length).** On each causal measure: replicated if the hit rate beats the null of
  entropies shuffled within each (method, length) (p < 0.05) and, at a fixed depth, also
  beats ranking by length alone; inconclusive if it beats the null but not length alone
  (the test cannot separate the claim from its baseline), if even a perfect ranking would
  not reach p < 0.05 against the same shuffles (``best_p``: too few failing cells, or a null
  that always hits; such a test says nothing either way), or is not significant but above
  the null's mean; not replicated if not above the null's mean. The statement is
  replicated if both measures replicate, partly if one does (a significant part).
- 2.5 **Wrong answers are borrowed from the context**: replicated if failures find their
  wrong answer in their own context more often than in an unseen context of the same
  length (McNemar p < 0.05) and the borrowed places get more attention than the needle
  (signed-rank p < 0.05); partly if one holds.
- 1.65 **Control (the paper lacks it): each extension retrieves beyond L0 better than plain
  RoPE continually pretrained at the same length with the same tokens** (``cpt-rope``), on the
  test needles at lengths in (L0, CPT length]: per extension, pass rate minus the control's
  on the same prompts, 95% bootstrap CI over prompts; each part graded by
  ``findings.verdicts.graded`` (CI above 0), parts combined (``combined``). Longer lengths
  (beyond the CPT length) are shown, not judged. A gate miss never makes this row untestable:
  the control's retrieval is what it measures.
Not here: computing the tables (``needle_analysis``), plots (``needle_plots``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ropelib import results
from ropelib.findings.needle_entropy.analysis import ALPHA, CAUSAL_MEASURES, CHAPTER, MEASURES, POOLED, STATEMENTS, pooled_row
from ropelib.findings.verdicts import MIN_OUTCOME_TRIALS, combined, graded

CONTROL_BOOT = 2000
RULES = {
    "retrieval control": ("per extension: pass rate minus plain-RoPE CPT's on the same test prompts at lengths in "
                          "(L0, CPT length], 95% bootstrap CI over prompts; supported if every extension's CI lies "
                          "above 0, partly supported if one does, not supported if every CI lies at or below 0, "
                          "else inconclusive; lengths beyond the CPT length shown, not judged"),
    "association": ("within a length, pooled over methods, clustered by prompt, strata with >= 5 trials of each "
                    "outcome: replicated if on both the first-token and the teacher-forced entropy the AUROC's 95% "
                    f"CI lies above 0.5 and the permutation p < {ALPHA}; partly if on one; not replicated if both "
                    "CIs lie at or below 0.5; else inconclusive, as when strata have both outcomes but none has 5 "
                    "of each (too few trials); not testable if no stratum has both outcomes"),
    "topk": (f"on the first-token and teacher-forced entropies: the hit rate must beat entropies shuffled within "
             f"each length (p < {ALPHA}) and, at a fixed depth, ranking by length alone; replicated if both "
             "measures do, partly if one does; inconclusive where length alone ranks as well (the test cannot "
             "separate the claim from its baseline), where even a perfect ranking would have p >= 0.05 (too few "
             "failing cells to decide), or p >= 0.05 above the null's mean; not replicated if at or below it"),
    "borrowed": (f"replicated if failures find their wrong answer in their own context more often than in an "
                 f"unseen one (McNemar p < {ALPHA}) and the borrowed places get more attention than the needle "
                 f"(signed-rank p < {ALPHA}); partly if one of the two holds"),
}


def association_verdict(association: pd.DataFrame) -> tuple[str, str]:
    """(verdict, details) of 2.1 from ``association_table`` rows of every measure."""
    passed, details = [], []
    for measure in MEASURES:
        rows = association[(association["method"] == POOLED) & (association["measure"] == measure)]
        if rows.empty:
            continue
        row = rows.iloc[0]
        details.append(f"{MEASURES[measure]}: within-length AUROC {row['within']:.3f} [{row['within_low']:.3f}, "
                       f"{row['within_high']:.3f}], p = {row['within_p']:.3g}, {row['strata']} strata; all trials "
                       f"{row['auroc']:.3f} [{row['auroc_low']:.3f}, {row['auroc_high']:.3f}]")
        if measure in CAUSAL_MEASURES:
            passed.append(None if row["strata"] == 0 else graded(row["within_low"], row["within_high"], 0.5,
                                                                 row["within_p"]))
    if not passed or any(p is None for p in passed):
        mixed = int(association["mixed_strata"].max()) if len(association) else 0
        if mixed:  # measurable, but no stratum large enough to judge: imprecise, not unmeasurable
            return "inconclusive", (f"too few trials: no (method, length) stratum has >= {MIN_OUTCOME_TRIALS} trials "
                                    f"of each outcome ({mixed} have both outcomes); " + "; ".join(details))
        return "not testable", "no (method, length) stratum has both outcomes; " + "; ".join(details)
    return combined(passed), "; ".join(details)


def topk_verdict(topk: pd.DataFrame, statement: str) -> tuple[str, str]:
    """(verdict, details) of a top-k statement from ``topk_table`` rows of every measure."""
    grades, details = [], []
    for measure in MEASURES:
        rows = topk[(topk["method"] == POOLED) & (topk["statement"] == statement) & (topk["measure"] == measure)]
        if rows.empty:
            continue
        row = rows.iloc[0]
        if not np.isfinite(row["hit_rate"]):
            details.append(f"{MEASURES[measure]}: no group has both outcomes")
            if measure in CAUSAL_MEASURES:
                grades.append(None)
            continue
        beats_length = not np.isfinite(row["length_only"]) or row["hit_rate"] > row["length_only"]
        powerless = row["best_p"] >= ALPHA  # not even a perfect ranking could reject the null
        details.append(f"{MEASURES[measure]}: hit rate {row['hit_rate']:.3f} ({row['hits']} of {row['failing']}), "
                       f"shuffled within length {row['null']:.3f} (p = {row['p_value']:.3g}; a perfect ranking "
                       f"{row['best_p']:.3g}), random ranking {row['chance']:.3f}"
                       + ("" if not np.isfinite(row["length_only"]) else f", length alone {row['length_only']:.3f}"))
        if measure in CAUSAL_MEASURES:
            grades.append("inconclusive" if powerless else
                          "replicated" if row["p_value"] < ALPHA and beats_length else
                          "inconclusive" if row["hit_rate"] > row["null"] else "not replicated")
    if not grades or any(g is None for g in grades):
        return "not testable", "; ".join(details)
    return combined(grades), "; ".join(details)


def borrowed_verdict(borrowed: pd.DataFrame) -> tuple[str, str, pd.Series | None]:
    row = pooled_row(borrowed) if (borrowed["method"] == POOLED).any() else None
    if row is None or not row["failed"]:
        return "not testable", "no failed trial", row
    checks = int(bool(row["chance_p"] < ALPHA)) + int(bool(row["mass_p"] < ALPHA))
    details = (f"{row['borrowed']:.3f} of {int(row['failed'])} wrong answers found elsewhere in the context "
               f"(in an unseen context: {row['by_chance']:.3f}, McNemar p = {row['chance_p']:.3g}); attention on "
               f"borrowed places vs the needle: signed-rank p = {row['mass_p']:.3g}; garbled copies of the needle "
               f"{row['garbled']:.3f}")
    return ("replicated", "partly", "not replicated")[2 - checks], details, row


def glance_rows(association: pd.DataFrame, topk: pd.DataFrame, borrowed: pd.DataFrame,
                unfit: str = "") -> list[dict]:
    """One row per claim of finding 2; all "not testable" when ``unfit`` names a checkpoint that missed its gate."""
    verdict, details = association_verdict(association)
    causal = association[(association["method"] == POOLED) & (association["measure"] == "entropy_first")]
    first = causal.iloc[0] if len(causal) else None
    rows = [results.glance_row(
        2.1, "Finding 2", "Large attention entropy goes with retrieval errors (Fig. 4), entropy measured before "
        "the answer is generated", "failures coincide with high entropy (by eye)",
        "-" if first is None else float(f"{first['within']:.4g}"), verdict, RULES["association"], CHAPTER,
        None if first is None else float(f"{first['within_low']:.4g}"),
        None if first is None else float(f"{first['within_high']:.4g}"), details=details)]
    for order, statement in zip((2.3, 2.4), STATEMENTS):
        verdict, details = topk_verdict(topk, statement)
        rows.append(results.glance_row(order, "Finding 2", f"{statement.capitalize()} entropies", "yes (by eye)",
                                       "see details", verdict, RULES["topk"], CHAPTER, details=details))
    verdict, details, row = borrowed_verdict(borrowed)
    rows.append(results.glance_row(
        2.5, "Finding 2", "Wrong answers are borrowed from elsewhere in the context", "yes (examples)",
        np.nan if row is None else float(f"{row['borrowed']:.4g}"), verdict, RULES["borrowed"], CHAPTER,
        None if row is None else float(f"{row['borrowed_low']:.4g}"),
        None if row is None else float(f"{row['borrowed_high']:.4g}"), details=details))
    if unfit:
        for row in rows:
            row.update(verdict="not testable", details=f"{unfit}; measured: {row['details']}")
    return rows


def summary(association: pd.DataFrame, topk: pd.DataFrame, borrowed: pd.DataFrame) -> list[str]:
    """The pooled results in words, one line per claim (what the page prints under "Verdict")."""
    lines = [f"2.1 {association_verdict(association)[0].upper()}: {association_verdict(association)[1]}"]
    for order, statement in zip((2.3, 2.4), STATEMENTS):
        verdict, details = topk_verdict(topk, statement)
        lines.append(f"{order} {statement}: {verdict.upper()}: {details}")
    verdict, details, _ = borrowed_verdict(borrowed)
    lines.append(f"2.5 borrowed: {verdict.upper()}: {details}")
    return lines


def key_numbers(association: pd.DataFrame, topk: pd.DataFrame) -> dict[str, str]:
    """What the page's prose cites: the pooled within-length AUROC of each measure, the top-k at a
    fixed depth against length alone, and the verdict of 2.1."""
    def auroc(measure):
        rows = association[(association["method"] == POOLED) & (association["measure"] == measure)]
        if rows.empty or not np.isfinite(rows.iloc[0]["within"]):
            return "n/a"
        row = rows.iloc[0]
        return f"{row['within']:.3f} [{row['within_low']:.3f}, {row['within_high']:.3f}]"

    depth = topk[(topk["method"] == POOLED) & (topk["measure"] == "entropy_first")
                 & (topk["statement"] == next(iter(STATEMENTS)))]
    top = depth.iloc[0] if len(depth) else None
    return {"needle_auroc_first": auroc("entropy_first"), "needle_auroc_teacher": auroc("entropy_teacher"),
            "needle_auroc_all": auroc("entropy"), "needle_verdict": association_verdict(association)[0],
            "needle_topk_hits": "n/a" if top is None else f"{top['hit_rate']:.3f}",
            "needle_topk_length": "n/a" if top is None else f"{top['length_only']:.3f}",
            "needle_topk_null": "n/a" if top is None else f"{top['null']:.3f}"}


def retrieval_control(trials: pd.DataFrame, methods: dict[str, str], pretrained_length: int, cpt_length: int,
                      seed: int = 0, n_boot: int = CONTROL_BOOT) -> pd.DataFrame:
    """Per extension (``methods``: label -> RoPE method; the control is the one with method "rope"):
    pass rate, the control's on the same prompts, difference and its 95% bootstrap CI over prompts,
    inside (L0, CPT length] ("within") and beyond the CPT length ("beyond")."""
    controls = [label for label, method in methods.items() if method == "rope"]
    if not controls or not cpt_length:
        return pd.DataFrame()
    control = controls[0]
    rows = []
    for band, keep in (("within", lambda L: (L > pretrained_length) & (L <= cpt_length)),
                       ("beyond", lambda L: L > cpt_length)):
        band_trials = trials[keep(trials["length"])]
        wide = band_trials.pivot_table(index="prompt", columns="method", values="passed", aggfunc="mean")
        if control not in wide or wide.empty:
            continue
        draws = np.random.default_rng(seed).integers(0, len(wide), (n_boot, len(wide)))
        for label in (m for m in methods if m in wide and m != control):
            diff = (wide[label] - wide[control]).to_numpy(dtype=float)
            boot = diff[draws].mean(axis=1)
            rows.append({"band": band, "variant": label, "control": control, "prompts": len(wide),
                         "pass_rate": float(wide[label].mean()), "control_rate": float(wide[control].mean()),
                         "difference": float(diff.mean()), "ci_low": float(np.quantile(boot, 0.025)),
                         "ci_high": float(np.quantile(boot, 0.975))})
    return pd.DataFrame(rows)


def retrieval_control_row(table: pd.DataFrame, pretrained_length: int, cpt_length: int, chapter: str = CHAPTER) -> dict:
    """Glance row 1.65 from :func:`retrieval_control` (a control: worded "supported" / ...)."""
    claim = ("Control: beyond L0 each extension retrieves test needles better than plain RoPE continually "
             "pretrained at the same length with the same tokens")
    within = table[table["band"] == "within"] if len(table) else table
    if within.empty:
        return results.glance_row(1.65, "Finding 1", claim, "not tested in the paper", "-", "not testable",
                                  RULES["retrieval control"], chapter, kind="control",
                                  details="no plain-RoPE CPT model, or no length in (L0, CPT length]")
    verdict = combined(graded(r["ci_low"], r["ci_high"]) for _, r in within.iterrows())
    control = within.iloc[0]

    def shown(frame):
        return "; ".join(f"{r['variant']} {r['pass_rate']:.3f} ({r['difference']:+.3f} [{r['ci_low']:+.3f}, "
                         f"{r['ci_high']:+.3f}])" for _, r in frame.iterrows())
    ours = (f"{control['control']} {control['control_rate']:.3f} at ({pretrained_length}, {cpt_length}]; "
            + shown(within))
    beyond = table[table["band"] == "beyond"]
    details = (f"{int(control['prompts'])} prompts per model at lengths in ({pretrained_length}, {cpt_length}]"
               + (f"; beyond {cpt_length} (not judged): {beyond.iloc[0]['control']} "
                  f"{beyond.iloc[0]['control_rate']:.3f}; {shown(beyond)}" if len(beyond) else ""))
    return results.glance_row(1.65, "Finding 1", claim, "not tested in the paper", ours, verdict,
                              RULES["retrieval control"], chapter, kind="control", details=details)
