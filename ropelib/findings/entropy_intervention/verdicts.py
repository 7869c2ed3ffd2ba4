"""Is attention entropy a cause of retrieval errors? The intervention chapter's verdict rule.

Fixed in code before any real run. Input: a tidy table of paired needle trials, one row per
(method, length, prompt_id, condition) with ``entropy_first`` (nats: the attention entropy of
the row predicting the first answer token) and ``passed`` (bool); condition "none" is the
untouched model, the others ("log_scale", "temperature") the interventions of
:mod:`ropelib.core.interventions`. A trial of an intervention is paired with the "none" trial of
the same (method, length, prompt_id). Only lengths beyond the CPT length count: there
entropy is high and retrieval fails, which is what the intervention is meant to repair.

Per intervention, over the paired trials beyond the CPT length:
  dH = mean(entropy_first[intervention] - entropy_first[none])      (nats)
  dP = mean(passed[intervention] - passed[none])                    (pass-rate change)
with 95% percentile CIs from a cluster bootstrap over prompt_id: resample prompt ids with
replacement (N_BOOT, SEED fixed) and keep every trial of a drawn prompt (all its methods and
lengths), since trials of one prompt share its haystack and are not independent.

Rule (:data:`RULE`):
  - "not testable" if dH > -ENTROPY_MARGIN (the manipulation failed: entropy did not drop,
    so pass rates say nothing about it);
  - "too few prompts" (graded inconclusive: measured, but not precisely enough to decide) if
    fewer than MIN_PROMPTS prompt ids (the cluster bootstrap has too few clusters for a CI to
    mean anything: with k clusters there are only C(2k-1, k) distinct resamples, 10 for k = 3,
    and percentile CIs undercover);
  - "entropy is causal for retrieval" if dH <= -ENTROPY_MARGIN and dP's CI lies above 0;
  - "symptom" if dH <= -ENTROPY_MARGIN and dP's CI includes 0 or lies below it.

ENTROPY_MARGIN = 0.05 nats: exp(H) is the effective number of attended keys, so a drop of
0.05 nats shrinks it by 1 - exp(-0.05) = 4.9%; a smaller change is not a manipulation of
attention dispersion that a null result could be blamed on.

**The claim, graded with the model as the unit** (:func:`by_model`, :func:`claim`, :data:`CLAIM_RULE`):
the two interventions are two arms of one claim ("lowering attention entropy restores
retrieval beyond the CPT length"). For each (model, arm) the rule above runs on that model's
trials alone (cluster bootstrap over its prompts) and gives a grade: replicated (CI above 0),
not replicated (CI at or below 0), inconclusive (also: too few prompts), or not testable
(entropy did not drop). A model's grade combines its two arms, the claim's combines the models
(``findings.verdicts.combined``: partly = at least one model significant; one testable model
alone is at most partly: a claim about models needs ``MIN_MODELS``). Reported beside it:
per arm the trials rescued (fail -> pass) and broken (pass -> fail), the rescued trials the
two arms share, the dose-response (entropy drop against pass-rate change, per arm and per
model), and, where the trials record it (``needle_first``), how many rescued trials already
had the needle ranked first by attention before the intervention (a temperature keeps the
ranking of keys, so that is all it can rescue).
Not here: running the trials (the chapter, with ``interventions`` and ``tasks.needle``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ropelib.core import metrics
from ropelib.findings.verdicts import combined

ENTROPY_MARGIN = 0.05  # nats
MIN_PROMPTS = 10
MIN_MODELS = 2  # the model as the unit: "supported" needs at least two testable models
N_BOOT = 2000
SEED = 0
LEVEL = 0.95
BASELINE = "none"
CAUSAL, SYMPTOM, NOT_TESTABLE = "entropy is causal for retrieval", "symptom", "not testable"
TOO_FEW = "too few prompts"  # measured, too imprecise to decide: inconclusive, never "not testable"
COLUMNS = ("length", "prompt_id", "condition", "entropy_first", "passed")
RULE = (f"beyond the CPT length, paired with the untouched model: not testable if the intervention lowers "
        f"mean first-token entropy by less than {ENTROPY_MARGIN} nats; too few prompts (inconclusive) with fewer "
        f"than {MIN_PROMPTS}; causal if it does and the {LEVEL:.0%} cluster-bootstrap CI (over prompts) of the "
        "pass-rate change lies above 0; symptom otherwise")


def paired_trials(trials: pd.DataFrame, condition: str, cpt_length: int) -> pd.DataFrame:
    """One row per (method, length, prompt_id) beyond ``cpt_length`` present in both conditions:
    method, length, prompt_id, d_entropy = entropy_first[condition] - entropy_first[none], d_passed =
    passed difference, passed_none, passed_x, and needle_first_none where the trials record it."""
    missing = [c for c in COLUMNS if c not in trials.columns]
    if missing:
        raise ValueError(f"trials lack column(s) {missing}; expected {list(COLUMNS)} and method or model")
    if condition == BASELINE or condition not in set(trials["condition"]):
        raise ValueError(f"condition={condition!r}: expected an intervention present in the table, not {BASELINE!r}")
    method = "method" if "method" in trials.columns else "model"
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


def cluster_mean_ci(values: np.ndarray, clusters: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high): mean of ``values`` with a percentile cluster-bootstrap CI (resampling clusters)."""
    codes = np.unique(clusters, return_inverse=True)[1]
    sums = np.bincount(codes, weights=values)  # (k,) per-cluster sums
    counts = np.bincount(codes).astype(float)  # (k,) trials per cluster
    mean = float(values.mean())
    if len(sums) < 2:
        return mean, float("nan"), float("nan")
    low, high = metrics.bootstrap_ci(np.arange(len(sums)), n_boot=N_BOOT, seed=SEED, level=LEVEL,
                                     stat=lambda drawn: sums[drawn.astype(int)].sum() / counts[drawn.astype(int)].sum())
    return mean, low, high


def verdict(trials: pd.DataFrame, cpt_length: int, condition: str) -> dict:
    """The verdict for one intervention (module docstring's rule) and the numbers behind it."""
    pairs = paired_trials(trials, condition, cpt_length)
    n_prompts = int(pairs["prompt_id"].nunique())
    row = {"condition": condition, "cpt_length": cpt_length, "n_trials": len(pairs), "n_prompts": n_prompts}
    if len(pairs) == 0:
        return {**row, "verdict": NOT_TESTABLE, "reason": "no paired trials beyond the CPT length"}
    clusters = pairs["prompt_id"].to_numpy()
    for name, column in (("entropy_change", "d_entropy"), ("pass_change", "d_passed")):
        mean, low, high = cluster_mean_ci(pairs[column].to_numpy(), clusters)
        row.update({name: mean, f"{name}_low": low, f"{name}_high": high})
    if row["entropy_change"] > -ENTROPY_MARGIN:
        reason, outcome = f"entropy fell by less than {ENTROPY_MARGIN} nats", NOT_TESTABLE
    elif n_prompts < MIN_PROMPTS:
        reason, outcome = f"{n_prompts} prompts, fewer than {MIN_PROMPTS}", TOO_FEW
    elif row["pass_change_low"] > 0:
        reason, outcome = "entropy fell and the pass rate rose (CI above 0)", CAUSAL
    else:
        reason, outcome = "entropy fell but the pass-rate change's CI reaches 0 or below", SYMPTOM
    return {**row, "verdict": outcome, "reason": reason}


def verdicts(trials: pd.DataFrame, cpt_length: int) -> pd.DataFrame:
    """One row per intervention condition present in ``trials``: verdict, reason, dH and dP with CIs."""
    present = [c for c in dict.fromkeys(trials["condition"]) if c != BASELINE]
    return pd.DataFrame([verdict(trials, cpt_length, condition) for condition in present])


# a (model, arm) outcome of the rule above, as a grade of the claim
GRADE = {CAUSAL: "replicated", NOT_TESTABLE: "not testable"}
CLAIM_RULE = (f"one claim, two arms (log-length scaling, entropy-matched temperature), the model as the unit: per "
              f"model and arm, beyond the CPT length and paired with the untouched model, not testable if entropy "
              f"falls by less than {ENTROPY_MARGIN} nats, inconclusive with fewer than {MIN_PROMPTS} prompts; else "
              f"the {LEVEL:.0%} "
              "cluster-bootstrap CI (over that model's prompts) of the pass-rate change: above 0 replicated, at or "
              "below 0 not replicated, else inconclusive; a model combines its arms and the claim its models: "
              "supported if every one is, partly supported if at least one is, not supported if none is and every "
              f"one shows no rise, else inconclusive; with fewer than {MIN_MODELS} testable models at most partly "
              "supported")


def _grade(row: dict) -> str:
    if row["verdict"] == NOT_TESTABLE:
        return "not testable"
    if row["verdict"] == TOO_FEW:
        return "inconclusive"
    if row["verdict"] == CAUSAL:
        return "replicated"
    return "not replicated" if row["pass_change_high"] <= 0 else "inconclusive"


def by_model(trials: pd.DataFrame, cpt_length: int) -> pd.DataFrame:
    """One row per (model, arm): the rule's numbers on that model's trials, its grade, rescued / broken trials
    and (where recorded) the rescued ones whose needle ranked first before the intervention."""
    method = "method" if "method" in trials.columns else "model"
    rows = []
    for model, part in trials.groupby(method, sort=False):
        for condition in (c for c in dict.fromkeys(part["condition"]) if c != BASELINE):
            row = verdict(part, cpt_length, condition)
            pairs = paired_trials(part, condition, cpt_length)
            rescued = pairs[(pairs["passed_none"] == 0) & (pairs["passed_x"] == 1)]
            row.update(model=model, grade=_grade(row), rescued=len(rescued),
                       broken=int(((pairs["passed_none"] == 1) & (pairs["passed_x"] == 0)).sum()),
                       failing_before=int((pairs["passed_none"] == 0).sum()),
                       rescued_needle_first=(int(rescued["needle_first_none"].sum())
                                             if "needle_first_none" in rescued else np.nan))
            rows.append(row)
    return pd.DataFrame(rows)


def shared_rescues(trials: pd.DataFrame, cpt_length: int) -> tuple[int, dict[str, int]]:
    """(trials rescued by every arm, rescued per arm): how much the arms are one effect seen twice."""
    rescued = {}
    for condition in (c for c in dict.fromkeys(trials["condition"]) if c != BASELINE):
        pairs = paired_trials(trials, condition, cpt_length)
        keep = pairs[(pairs["passed_none"] == 0) & (pairs["passed_x"] == 1)]
        rescued[condition] = set(zip(keep["method"], keep["length"], keep["prompt_id"]))
    both = set.intersection(*rescued.values()) if rescued else set()
    return len(both), {c: len(r) for c, r in rescued.items()}


def claim(per_model: pd.DataFrame) -> str:
    """The claim's grade: each model combines its arms, the claim combines the models (module docstring)."""
    if per_model.empty:
        return "not testable"
    models = [combined(group["grade"]) for _, group in per_model.groupby("model", sort=False)]
    testable = [g for g in models if g != "not testable"]
    if not testable:
        return "not testable"
    grade = combined(testable)
    return "partly" if grade == "replicated" and len(testable) < MIN_MODELS else grade  # one model is not "models"
