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
    so pass rates say nothing about it), or fewer than MIN_PROMPTS prompt ids (the cluster
    bootstrap has too few clusters for a CI to mean anything: with k clusters there are only
    C(2k-1, k) distinct resamples, 10 for k = 3, and percentile CIs undercover);
  - "entropy is causal for retrieval" if dH <= -ENTROPY_MARGIN and dP's CI lies above 0;
  - "symptom" if dH <= -ENTROPY_MARGIN and dP's CI includes 0 or lies below it.

ENTROPY_MARGIN = 0.05 nats: exp(H) is the effective number of attended keys, so a drop of
0.05 nats shrinks it by 1 - exp(-0.05) = 4.9%; a smaller change is not a manipulation of
attention dispersion that a null result could be blamed on.
Not here: running the trials (the chapter, with ``interventions`` and ``tasks.needle``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ropelib.core import metrics

ENTROPY_MARGIN = 0.05  # nats
MIN_PROMPTS = 10
N_BOOT = 2000
SEED = 0
LEVEL = 0.95
BASELINE = "none"
CAUSAL, SYMPTOM, NOT_TESTABLE = "entropy is causal for retrieval", "symptom", "not testable"
COLUMNS = ("length", "prompt_id", "condition", "entropy_first", "passed")
RULE = (f"beyond the CPT length, paired with the untouched model: not testable if the intervention lowers "
        f"mean first-token entropy by less than {ENTROPY_MARGIN} nats or there are fewer than {MIN_PROMPTS} "
        f"prompts; causal if it does and the {LEVEL:.0%} cluster-bootstrap CI (over prompts) of the pass-rate "
        "change lies above 0; symptom otherwise")


def paired_trials(trials: pd.DataFrame, condition: str, cpt_length: int) -> pd.DataFrame:
    """One row per (method, length, prompt_id) beyond ``cpt_length`` present in both conditions:
    prompt_id, d_entropy = entropy_first[condition] - entropy_first[none], d_passed = passed difference."""
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
        side = beyond[beyond["condition"] == name].set_index(keys)[["entropy_first", "passed"]]
        if side.index.has_duplicates:
            raise ValueError(f"condition {name!r} has several trials for one (method, length, prompt_id)")
        sides.append(side.astype(float).add_suffix("_none" if name == BASELINE else "_x"))
    joined = sides[0].join(sides[1], how="inner")
    return pd.DataFrame({"prompt_id": joined.index.get_level_values("prompt_id"),
                         "d_entropy": (joined["entropy_first_x"] - joined["entropy_first_none"]).to_numpy(),
                         "d_passed": (joined["passed_x"] - joined["passed_none"]).to_numpy()})


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
        reason, outcome = f"{n_prompts} prompts, fewer than {MIN_PROMPTS}", NOT_TESTABLE
    elif row["pass_change_low"] > 0:
        reason, outcome = "entropy fell and the pass rate rose (CI above 0)", CAUSAL
    else:
        reason, outcome = "entropy fell but the pass-rate change's CI reaches 0 or below", SYMPTOM
    return {**row, "verdict": outcome, "reason": reason}


def verdicts(trials: pd.DataFrame, cpt_length: int) -> pd.DataFrame:
    """One row per intervention condition present in ``trials``: verdict, reason, dH and dP with CIs."""
    present = [c for c in dict.fromkeys(trials["condition"]) if c != BASELINE]
    return pd.DataFrame([verdict(trials, cpt_length, condition) for condition in present])
