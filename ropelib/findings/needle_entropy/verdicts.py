"""Finding 2's estimands and glance rows, graded by the registry's one rule.

Every verdict of this page comes from ``chapters/claims.yml`` (``ropelib.findings.claims``):
this module computes each claim's parts, (estimate, 95% CI, n_units), from the tables of
``needle_entropy.analysis`` and ``claims.row`` grades them. The verdicts use ALL trials of the
line-up. Claims 2.1-2.4 carry the registry's premise "retrieves at L0" (pass rate >= 0.8 on
the page's own trials at each model's L0, ``analysis.retrieves_at_l0``): a model that misses
it is a caveat on the row, never a switch, and the same parts computed on the trials of the
models that meet it are the row's sensitivity line (None when every model meets it, no parts
when none does). Causal measures (``CAUSAL_MEASURES``): the first-answer-token and the
teacher-forced entropy; the all-token mean (Appendix C) is shown, never graded.

- 2.1  per causal measure: the pooled within-length AUROC of entropy for a failed needle
       (strata (method, length) with >= 5 trials of each outcome), its cluster-bootstrap CI
       over haystacks; n_units = distinct haystacks in those strata (= prompts where each needle has its own). Not testable only when no
       stratum has both outcomes at all; none with 5 of each: n_units 0, inconclusive.
- 2.3  per causal measure and reference, over the failing cells of the groups (heatmap rows
       at a fixed depth) with both outcomes: hit rate (share in their row's top k) minus the
       reference, CI = Wilson interval of the hit rate (hits, failing) shifted by the same
       reference; references: the within-length shuffled null's mean, and length alone's hit
       rate. n_units = failing cells.
- 2.4  the same down the columns (fixed length), reference: the shuffled null only.
- 2.5  among failed trials whose answer is shaped like the needle's value
       (``analysis.like_shaped``; the rest are format failures, counted in details):
       (found) share found elsewhere in its own context minus share found in an unseen one,
       paired per answer, ``claims.newcombe_paired``; n_units = those answers;
       (attention) among those found, mean of ln(attention per occurrence of the borrowed
       string / attention on the needle's value), bootstrap over answers.
- 1.65 control, per extension: pass rate minus plain-RoPE CPT's on the same prompts at
       lengths in (L0, CPT length], bootstrap over prompts; n_units = prompts. Not testable
       on a training-free line-up (CPT length 0, or no plain-RoPE CPT model) or when no
       length in (L0, CPT length] was evaluated.
Not here: the tables (``needle_entropy.analysis``), the grading rule (``ropelib.findings.claims``),
plots (``needle_entropy.plots``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ropelib.findings import claims
from ropelib.findings.needle_entropy.analysis import (CAUSAL_MEASURES, MEASURES, POOLED, PREMISE_PASS_RATE, STATEMENTS,
                                                     Tables)

STATEMENT_OF = dict(zip((2.3, 2.4), STATEMENTS))  # claim -> topk_table's statement


def _pooled(table: pd.DataFrame, **where) -> pd.Series | None:
    """The pooled row of ``table`` with ``where``'s column values, or None."""
    if table.empty:
        return None
    mask = table["method"] == POOLED
    for column, value in where.items():
        mask &= table[column] == value
    return table[mask].iloc[0] if mask.any() else None


# ---- 2.1: within-length AUROC

def association_parts(association: pd.DataFrame) -> list[claims.Part] | None:
    """2.1's parts, one per causal measure: within-length AUROC [cluster bootstrap CI], n = haystacks of
    the qualifying strata (= prompts where every needle has its own). None when no (method, length)
    stratum has both outcomes (not measurable)."""
    claim = claims.claim(2.1)
    rows = {m: _pooled(association, measure=m) for m in CAUSAL_MEASURES}
    if any(r is None for r in rows.values()) or all(int(r["mixed_strata"]) == 0 for r in rows.values()):
        return None
    return [claims.part(claim, MEASURES[m], r["within"], r["within_low"], r["within_high"], int(r["haystacks"]))
            for m, r in rows.items()]


def association_details(association: pd.DataFrame) -> str:
    """Every measure's within-length AUROC, permutation p, strata, and the AUROC over all trials (length free)."""
    out = []
    for measure, name in MEASURES.items():
        r = _pooled(association, measure=measure)
        if r is not None:
            out.append(f"{name}: within-length AUROC {r['within']:.3f} "
                       f"[{r['within_low']:.3f}, {r['within_high']:.3f}], "
                       f"permutation p = {r['within_p']:.3g}, {r['strata']} strata with >= 5 of each outcome "
                       f"({r['mixed_strata']} with both), {r['haystacks']} haystacks; all trials {r['auroc']:.3f}"
                       + ("" if measure in CAUSAL_MEASURES else " (not graded: conditioned on the error)"))
    return "; ".join(out)


# ---- 2.3, 2.4: top-k statements

def topk_parts(topk: pd.DataFrame, order: float) -> list[claims.Part] | None:
    """2.3 / 2.4's parts: per causal measure (and for 2.3 per reference), hit rate minus the reference,
    the hit rate's Wilson CI shifted by it, n = failing cells. None when no group has both outcomes."""
    claim, statement = claims.claim(order), STATEMENT_OF[order]
    rows = {m: _pooled(topk, statement=statement, measure=m) for m in CAUSAL_MEASURES}
    if any(r is None or not r["failing"] for r in rows.values()):
        return None
    parts = []
    for measure, r in rows.items():
        rate, low, high = claims.wilson(int(r["hits"]), int(r["failing"]))
        perfect = claims.wilson(int(r["failing"]), int(r["failing"]))  # every failing cell in its top k
        references = [("shuffled within length", r["null"])]
        if order == 2.3:
            references.append(("length alone", r["length_only"]))
        parts += [claims.part(claim, f"{MEASURES[measure]} vs {name}", rate - ref, low - ref, high - ref,
                              int(r["failing"]), best=tuple(x - ref for x in perfect)) for name, ref in references]
    return parts


def topk_details(topk: pd.DataFrame, order: float) -> str:
    out = []
    for measure, name in MEASURES.items():
        r = _pooled(topk, statement=STATEMENT_OF[order], measure=measure)
        if r is None or not r["failing"]:
            continue
        out.append(f"{name}: hit rate {r['hit_rate']:.3f} ({r['hits']} of {r['failing']} failing cells in "
                   f"{r['groups']} groups), shuffled within length {r['null']:.3f} (p = {r['p_value']:.3g}; a perfect "
                   f"ranking {r['best_p']:.3g}), random ranking {r['chance']:.3f}"
                   + ("" if not np.isfinite(r["length_only"]) else f", length alone {r['length_only']:.3f}")
                   + ("" if measure in CAUSAL_MEASURES else " (not graded)"))
    return "; ".join(out)


# ---- 2.5: borrowed answers

def borrowed_parts(answers: pd.DataFrame, n_boot: int = claims.N_BOOT, seed: int = 0) -> list[claims.Part]:
    """2.5's parts from ``analysis.borrowed_answers`` (like-shaped wrong answers only):
    found = P(own) - P(unseen), Newcombe's paired interval, n = answers;
    attention = mean ln(per-occurrence mass / needle mass) over the own ones, bootstrap over answers."""
    claim = claims.claim(2.5)
    own, unseen = answers["own"].astype(bool), answers["unseen"].astype(bool)
    both, own_only = int((own & unseen).sum()), int((own & ~unseen).sum())
    unseen_only, neither = int((~own & unseen).sum()), int((~own & ~unseen).sum())
    found = claims.newcombe_paired(both, own_only, unseen_only, neither)
    attention = claims.bootstrap_mean(answers.loc[own, "log_ratio"], n_boot=n_boot, seed=seed)
    return [claims.part(claim, "found", *found, len(answers)), claims.part(claim, "attention", *attention)]


def borrowed_details(trials: pd.DataFrame, answers: pd.DataFrame) -> str:
    failed = int(trials["failed"].astype(bool).sum())
    own, unseen = answers["own"].astype(bool), answers["unseen"].astype(bool)
    ratio = answers.loc[own, "log_ratio"].dropna()
    return (f"{failed} wrong answers, {len(answers)} shaped like the value, {failed - len(answers)} format failures "
            f"(not counted); found in own context {int(own.sum())}, in an unseen one {int(unseen.sum())} "
            f"(both {int((own & unseen).sum())})"
            + (f"; ln attention ratio per occurrence: median {ratio.median():.3g} over {len(ratio)}"
               if len(ratio) else ""))


# ---- 1.65: the retrieval control

def retrieval_control(trials: pd.DataFrame, methods: dict[str, str], pretrained_length: int, cpt_length: int,
                      seed: int = 0, n_boot: int = claims.N_BOOT) -> pd.DataFrame:
    """Per extension (``methods``: label -> RoPE method; the control is the one with method "rope"):
    pass rate, the control's on the same prompts, their per-prompt difference's mean and 95% bootstrap
    CI over prompts (``claims.bootstrap_mean``), inside (L0, CPT length] ("within", graded) and beyond
    the CPT length ("beyond", shown). Empty without a control model or a CPT length."""
    controls = [label for label, method in methods.items() if method == "rope"]
    if not controls or not cpt_length:
        return pd.DataFrame()
    control = controls[0]
    rows = []
    for band, keep in (("within", lambda L: (L > pretrained_length) & (L <= cpt_length)),
                       ("beyond", lambda L: L > cpt_length)):
        wide = trials[keep(trials["length"])].pivot_table(index="prompt", columns="method", values="passed",
                                                          aggfunc="mean")
        if control not in wide or wide.empty:
            continue
        for label in (m for m in methods if m in wide and m != control):
            difference, low, high, n = claims.bootstrap_mean(wide[label] - wide[control], n_boot=n_boot, seed=seed)
            rows.append({"band": band, "variant": label, "control": control, "prompts": n,
                         "pass_rate": float(wide[label].mean()), "control_rate": float(wide[control].mean()),
                         "difference": difference, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def control_row(table: pd.DataFrame, pretrained_length: int, cpt_length: int, model: str) -> dict:
    """Glance row 1.65 from :func:`retrieval_control`: one part per extension (band "within")."""
    claim = claims.claim(1.65)
    within = table[table["band"] == "within"] if len(table) else table
    if not cpt_length or within.empty:
        return claims.not_testable(claim, "a training-free line-up (no plain-RoPE CPT model or no CPT length)"
                                   if not cpt_length or table.empty else
                                   f"no evaluated length in ({pretrained_length}, {cpt_length}]", model)
    parts = [claims.part(claim, r["variant"], r["difference"], r["ci_low"], r["ci_high"], r["prompts"])
             for _, r in within.iterrows()]
    beyond = table[table["band"] == "beyond"]
    shown = "; ".join(f"{r['variant']} {r['pass_rate']:.3f} ({r['difference']:+.3f} [{r['ci_low']:+.3f}, "
                      f"{r['ci_high']:+.3f}])" for _, r in beyond.iterrows())
    details = (f"{within.iloc[0]['control']} retrieves {within.iloc[0]['control_rate']:.3f} at lengths in "
               f"({pretrained_length}, {cpt_length}]"
               + (f"; beyond {cpt_length} (not graded): {beyond.iloc[0]['control']} "
                  f"{beyond.iloc[0]['control_rate']:.3f}; {shown}" if len(beyond) else ""))
    return claims.row(claim, parts, model, details=details)


# ---- rows

def premise_caveats(premise: pd.DataFrame) -> list[str]:
    """One line per model that misses "retrieves at L0" (``analysis.retrieves_at_l0``)."""
    return [f"{r['method']} misses the premise 'retrieves at L0': " + (
        f"pass rate {r['pass_rate']:.2f} on {r['trials']} trials at L0 = {r['L0']}, under {PREMISE_PASS_RATE:g}"
        if r["trials"] else f"no trial at its L0 = {r['L0']} (unchecked)")
        for _, r in premise.iterrows() if not r["meets"]]


def _parts(order: float, tables: Tables, n_boot: int, seed: int) -> list[claims.Part] | None:
    if order == 2.1:
        return association_parts(tables.association)
    if order in STATEMENT_OF:
        return topk_parts(tables.topk, order)
    return borrowed_parts(tables.answers, n_boot, seed)


def _unmeasurable(order: float) -> str:
    return {2.1: "no (method, length) stratum has both outcomes",
            2.3: "no heatmap row has both failing and passing cells",
            2.4: "no heatmap column has both failing and passing cells",
            2.5: "no failed trial"}[order]


def glance_rows(trials: pd.DataFrame, tables: Tables, premise: pd.DataFrame, sensitivity: Tables | None,
                model: str, n_boot: int = claims.N_BOOT, seed: int = 0) -> list[dict]:
    """Rows 2.1, 2.3, 2.4, 2.5 from ``tables`` (all trials); for the claims with premises, the models that
    miss them (``premise``) as caveats and the parts on ``sensitivity`` (the tables of the models that meet
    them; None when every model does) beside them."""
    caveats = premise_caveats(premise)
    everyone = bool(premise["meets"].all()) if len(premise) else True
    details = {2.1: association_details(tables.association), 2.3: topk_details(tables.topk, 2.3),
               2.4: topk_details(tables.topk, 2.4), 2.5: borrowed_details(trials, tables.answers)}
    rows = []
    for order in (2.1, 2.3, 2.4, 2.5):
        claim = claims.claim(order)
        parts = _parts(order, tables, n_boot, seed) if order != 2.5 or trials["failed"].any() else None
        if parts is None:
            rows.append(claims.not_testable(claim, f"{_unmeasurable(order)}; {details[order]}", model))
            continue
        if not claim.premises or everyone:
            rows.append(claims.row(claim, parts, model, details=details[order]))
            continue
        met = (_parts(order, sensitivity, n_boot, seed) or []) if sensitivity is not None else []
        rows.append(claims.row(claim, parts, model, details=details[order], caveats=caveats, sensitivity=met))
    return rows


def summary(rows: list[dict]) -> list[str]:
    """The rows in words, one line each (what the page prints under "Verdict")."""
    return [f"{r['order']} {r['verdict'].upper()}: {r['parts'] or r['details']}"
            + (f"\n    caveats: {r['caveats']}" if r["caveats"] else "")
            + (f"\n    {r['sensitivity']}" if r["sensitivity"] else "") for r in rows]


def key_numbers(association: pd.DataFrame, topk: pd.DataFrame, rows: list[dict]) -> dict[str, str]:
    """What the page's prose cites: the pooled within-length AUROC of each measure, the top-k at a
    fixed depth against length alone, and the verdict of 2.1."""
    def auroc(measure):
        r = _pooled(association, measure=measure)
        if r is None or not np.isfinite(r["within"]):
            return "n/a"
        return f"{r['within']:.3f} [{r['within_low']:.3f}, {r['within_high']:.3f}]"

    top = _pooled(topk, measure="entropy_first", statement=STATEMENT_OF[2.3])
    missing = top is None or not top["failing"]
    return {"needle_auroc_first": auroc("entropy_first"), "needle_auroc_teacher": auroc("entropy_teacher"),
            "needle_auroc_all": auroc("entropy"),
            "needle_verdict": next(r["verdict"] for r in rows if r["order"] == 2.1),
            "needle_topk_hits": "n/a" if missing else f"{top['hit_rate']:.3f}",
            "needle_topk_length": "n/a" if missing else f"{top['length_only']:.3f}",
            "needle_topk_null": "n/a" if missing else f"{top['null']:.3f}"}
