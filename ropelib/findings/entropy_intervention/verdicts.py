"""Is attention entropy a cause of retrieval errors? The intervention chapter's estimand (claim 4.1).

Input: a tidy table of paired needle trials, one row per (method, length, prompt_id, condition)
with ``entropy_first`` (nats: the attention entropy of the row predicting the first answer
token) and ``passed`` (bool), optionally ``needle_first`` (the needle's key ranked first by
attention on that row); condition "none" is the untouched model, the others ("log_scale",
"temperature") the arms of :mod:`ropelib.core.interventions`. A trial of an arm is paired with
the "none" trial of the same (method, length, prompt_id). Only lengths past the CPT length
count (past L0 for a training-free model: the page passes L0 as its ``cpt_length`` then): there
entropy is high and retrieval fails, which is what the arms are meant to repair.

The estimand (registry entry 4.1, graded by ``claims``' one rule), one part per (model, arm):
  dP = mean(passed[arm] - passed[none])  over the paired trials past the CPT length
     = (arm_only - none_only) / n        from the paired 2x2 counts (both pass, arm only,
                                          untouched only, neither)
with the 95% CI of ``claims.newcombe_paired`` from those counts and n_units = the number of
distinct prompts (the registry's unit; a prompt is one trial per model and arm).

Premises (caveats, never switches; ``sensitivity`` = the parts that meet them, None if all do):
  - the arm lowers entropy: dH = mean(entropy_first[arm] - entropy_first[none]) <= -ENTROPY_MARGIN
    (0.05 nats: exp(H) is the effective number of attended keys, so 0.05 nats shrinks it by
    1 - exp(-0.05) = 4.9%); an arm that does not lower entropy does not test the claim;
  - the model retrieves at L0: pass rate >= AT_L0 on its own untouched trials at L0 (unchecked,
    and said so, when the page has no trials at L0).
Reported beside it, not graded (:func:`by_model`, :func:`shared_rescues`): trials rescued
(fail -> pass) and broken (pass -> fail) per arm, the rescues the two arms share, and where the
trials record ``needle_first`` how many failing and how many rescued trials had the needle
ranked first before the intervention (a temperature keeps the ranking of keys, so those are
all it can rescue).
Not here: running the trials (``analysis``, with ``interventions`` and ``tasks.needle``), the
one rule (``ropelib.findings.claims``), the page's wording of the row (``analysis.glance_rows``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ropelib.findings import claims

ORDER = 4.1
ENTROPY_MARGIN = 0.05  # nats
AT_L0 = claims.premise_threshold()  # the registry's "retrieves at L0": pass rate at L0, untouched trials
BASELINE = "none"
COLUMNS = ("length", "prompt_id", "condition", "entropy_first", "passed")


# ---- paired trials

def _method(trials: pd.DataFrame) -> str:
    return "method" if "method" in trials.columns else "model"


def arms(trials: pd.DataFrame) -> list[str]:
    """The intervention conditions present in ``trials``, in their order."""
    return [c for c in dict.fromkeys(trials["condition"]) if c != BASELINE]


def paired_trials(trials: pd.DataFrame, condition: str, cpt_length: int) -> pd.DataFrame:
    """One row per (method, length, prompt_id) past ``cpt_length`` present in both conditions:
    method, length, prompt_id, d_entropy = entropy_first[condition] - entropy_first[none], d_passed =
    passed difference, passed_none, passed_x, and needle_first_none where the trials record it."""
    missing = [c for c in COLUMNS if c not in trials.columns]
    if missing:
        raise ValueError(f"trials lack column(s) {missing}; expected {list(COLUMNS)} and method or model")
    if condition == BASELINE or condition not in set(trials["condition"]):
        raise ValueError(f"condition={condition!r}: expected an intervention present in the table, not {BASELINE!r}")
    method = _method(trials)
    keys = [method, "length", "prompt_id"]
    beyond = trials[trials["length"] > cpt_length]
    sides = []
    for name in (condition, BASELINE):
        columns = ["entropy_first", "passed"] + (["needle_first"] if "needle_first" in beyond.columns else [])
        side = beyond[beyond["condition"] == name].set_index(keys)[columns]
        if side.index.has_duplicates:
            raise ValueError(f"condition {name!r} has several trials for one (method, length, prompt_id)")
        sides.append(side.astype(float).add_suffix("_none" if name == BASELINE else "_x"))
    joined = sides[0].join(sides[1], how="inner")
    out = pd.DataFrame({"method": joined.index.get_level_values(method),
                        "length": joined.index.get_level_values("length"),
                        "prompt_id": joined.index.get_level_values("prompt_id"),
                        "d_entropy": (joined["entropy_first_x"] - joined["entropy_first_none"]).to_numpy(),
                        "d_passed": (joined["passed_x"] - joined["passed_none"]).to_numpy(),
                        "passed_none": joined["passed_none"].to_numpy(), "passed_x": joined["passed_x"].to_numpy()})
    if "needle_first_none" in joined:
        out["needle_first_none"] = joined["needle_first_none"].to_numpy()
    return out


def counts(pairs: pd.DataFrame) -> tuple[int, int, int, int]:
    """The paired 2x2 table: (both pass, arm only, untouched only, neither)."""
    x, none = pairs["passed_x"].astype(bool), pairs["passed_none"].astype(bool)
    return int((x & none).sum()), int((x & ~none).sum()), int((~x & none).sum()), int((~x & ~none).sum())


# ---- the estimand, one part per (model, arm)

def by_model(trials: pd.DataFrame, cpt_length: int) -> pd.DataFrame:
    """One row per (model, arm) with paired trials past ``cpt_length``: model, condition, n_trials,
    n_prompts, entropy_change (dH), lowers_entropy, the 2x2 counts, pass_change (dP) with its Newcombe
    CI, rescued / broken / failing_before, and (NaN where not recorded) failing_needle_first and
    rescued_needle_first: the failing / rescued trials whose needle ranked first before the arm."""
    rows = []
    for model, part in trials.groupby(_method(trials), sort=False):
        for condition in arms(part):
            pairs = paired_trials(part, condition, cpt_length)
            if pairs.empty:
                continue
            both, arm_only, none_only, neither = counts(pairs)
            d_p, low, high = claims.newcombe_paired(both, arm_only, none_only, neither)
            failing = pairs[pairs["passed_none"] == 0]
            rescued = failing[failing["passed_x"] == 1]
            first = "needle_first_none" in pairs
            d_h = float(pairs["d_entropy"].mean())
            rows.append({"model": model, "condition": condition, "n_trials": len(pairs),
                         "n_prompts": int(pairs["prompt_id"].nunique()), "entropy_change": d_h,
                         "lowers_entropy": bool(d_h <= -ENTROPY_MARGIN), "both": both, "arm_only": arm_only,
                         "none_only": none_only, "neither": neither, "pass_change": d_p, "pass_change_low": low,
                         "pass_change_high": high, "rescued": arm_only, "broken": none_only,
                         "failing_before": len(failing),
                         "failing_needle_first": int(failing["needle_first_none"].sum()) if first else np.nan,
                         "rescued_needle_first": int(rescued["needle_first_none"].sum()) if first else np.nan})
    return pd.DataFrame(rows)


def part_name(row) -> str:
    return f"{row['model']} {row['condition']}"


def parts(per_model: pd.DataFrame, claim: claims.Claim | None = None) -> list[claims.Part]:
    """One graded part per row of :func:`by_model` (the registry's rule on dP's Newcombe CI)."""
    claim = claim or claims.claim(ORDER)
    return [claims.part(claim, part_name(r), r["pass_change"], r["pass_change_low"], r["pass_change_high"],
                        r["n_prompts"]) for _, r in per_model.iterrows()]


# ---- premises (caveats, not switches)

def retrieval_at_l0(trials: pd.DataFrame, pretrained_length: int) -> dict[str, float]:
    """model -> pass rate of its untouched trials at L0; {} when the page has no trials at L0."""
    untouched = trials[trials["condition"] == BASELINE].rename(columns={_method(trials): "method"})
    rates = claims.pass_rates_at(untouched, list(dict.fromkeys(untouched["method"])), pretrained_length)
    return {model: rate for model, rate in rates.items() if np.isfinite(rate)}


def premises(per_model: pd.DataFrame, at_l0: dict[str, float], pretrained_length: int) -> tuple[list[str], list[bool]]:
    """(caveats, meets): one caveat line per failing premise (an arm that does not lower entropy, a
    model that does not retrieve at L0), and per row of ``per_model`` whether it meets every premise
    that could be checked."""
    caveats, meets = [], []
    checked = {model: at_l0[model] for model in dict.fromkeys(per_model["model"]) if model in at_l0}
    caveats += claims.below_premise(checked, pretrained_length)  # the registry's one premise check
    for _, r in per_model.iterrows():
        if not r["lowers_entropy"]:
            caveats.append(f"premise not met: {part_name(r)} changes mean first-token entropy by "
                           f"{r['entropy_change']:+.3f} nats (the arm must lower it by >= {ENTROPY_MARGIN})")
        meets.append(bool(r["lowers_entropy"]) and at_l0.get(r["model"], AT_L0) >= AT_L0)
    return caveats, meets


def row(trials: pd.DataFrame, cpt_length: int, pretrained_length: int, model: str, details: str = "",
        ours: str = "", caveats=(), chapter: str | None = None) -> dict:
    """The glance row of claim 4.1: graded on every (model, arm) part; the premises' failures as
    caveats (after the page's own ``caveats``, e.g. checkpoint gate misses), the parts meeting them
    as the sensitivity; not testable only when no trial lies past ``cpt_length``."""
    claim = claims.claim(ORDER)
    per_model = by_model(trials, cpt_length) if len(trials) else pd.DataFrame()
    if per_model.empty:
        return claims.not_testable(claim, f"no paired trials past the CPT length {cpt_length}", model, chapter)
    graded = parts(per_model, claim)
    at_l0 = retrieval_at_l0(trials, pretrained_length)
    failing, meets = premises(per_model, at_l0, pretrained_length)
    unchecked = ("" if at_l0 else f"retrieves at L0 not checked: the page has no trials at L0 = {pretrained_length}")
    sensitivity = None if all(meets) else [p for p, keep in zip(graded, meets) if keep]
    return claims.row(claim, graded, model, ours=ours, details="; ".join(x for x in (details, unchecked) if x),
                      caveats=[*caveats, *failing], sensitivity=sensitivity, chapter=chapter)


# ---- reported beside the verdict (not graded)

def shared_rescues(trials: pd.DataFrame, cpt_length: int) -> tuple[int, dict[str, int]]:
    """(trials rescued by every arm, rescued per arm): how much the arms are one effect seen twice."""
    rescued = {}
    for condition in arms(trials):
        pairs = paired_trials(trials, condition, cpt_length)
        keep = pairs[(pairs["passed_none"] == 0) & (pairs["passed_x"] == 1)]
        rescued[condition] = set(zip(keep["method"], keep["length"], keep["prompt_id"]))
    both = set.intersection(*rescued.values()) if rescued else set()
    return len(both), {c: len(r) for c, r in rescued.items()}
