"""ropelib.findings.entropy_intervention.verdicts: the rule on synthetic paired-trial tables."""

import numpy as np
import pandas as pd
import pytest

from ropelib.findings.entropy_intervention.verdicts import (CAUSAL, ENTROPY_MARGIN, NOT_TESTABLE, SYMPTOM, paired_trials,
                                                    verdict, verdicts)

CPT = 256
LENGTHS = (128, 256, 512, 1024)  # two inside the CPT length, two beyond
METHODS = ("ntk", "yarn")


def table(n_prompts: int, entropy_drop, passes_none, passes_after, condition: str = "log_scale") -> pd.DataFrame:
    """Paired trials for every (method, length, prompt): "none" and ``condition``.

    entropy_drop(length) -> nats removed by the intervention; passes_none / passes_after
    (prompt, length) -> bool. Baseline entropy rises with length.
    """
    rows = []
    for method in METHODS:
        for length in LENGTHS:
            for prompt in range(n_prompts):
                entropy = np.log(length) - 1 + 0.01 * prompt
                rows.append(dict(method=method, length=length, prompt_id=f"p{prompt}", condition="none",
                                 entropy_first=entropy, passed=passes_none(prompt, length)))
                rows.append(dict(method=method, length=length, prompt_id=f"p{prompt}", condition=condition,
                                 entropy_first=entropy - entropy_drop(length), passed=passes_after(prompt, length)))
    return pd.DataFrame(rows)


def fails_beyond(prompt, length):
    return length <= CPT


def rises_mostly(prompt, length):
    return length <= CPT or prompt % 4 != 0  # beyond the CPT length, 3 prompts in 4 now pass


def test_entropy_drops_and_passes_rise_is_causal():
    result = verdict(table(20, lambda length: 0.4, fails_beyond, rises_mostly), CPT, "log_scale")
    assert result["verdict"] == CAUSAL
    assert result["entropy_change"] == pytest.approx(-0.4)
    assert result["pass_change"] == pytest.approx(0.75)
    assert 0 < result["pass_change_low"] <= 0.75 <= result["pass_change_high"]
    assert result["n_prompts"] == 20 and result["n_trials"] == 20 * 2 * 2  # lengths beyond CPT only


def test_every_prompt_rising_is_causal():
    result = verdict(table(12, lambda length: 0.3, fails_beyond, lambda p, length: True), CPT, "log_scale")
    assert result["verdict"] == CAUSAL and result["pass_change_low"] == pytest.approx(1.0)


def test_entropy_drops_but_passes_do_not_change_is_a_symptom():
    same = lambda prompt, length: length <= CPT or prompt % 2 == 0  # noqa: E731
    result = verdict(table(20, lambda length: 0.4, same, same), CPT, "log_scale")
    assert result["verdict"] == SYMPTOM
    assert result["pass_change"] == 0 and result["pass_change_low"] <= 0 <= result["pass_change_high"]


def test_passes_that_fall_are_a_symptom_not_causal():
    result = verdict(table(20, lambda length: 0.4, lambda p, length: True, rises_mostly), CPT, "log_scale")
    assert result["verdict"] == SYMPTOM and result["pass_change_high"] < 0


def test_entropy_that_does_not_drop_is_not_testable():
    tiny_drop = lambda length: ENTROPY_MARGIN / 2  # noqa: E731
    result = verdict(table(20, tiny_drop, fails_beyond, rises_mostly), CPT, "log_scale")
    assert result["verdict"] == NOT_TESTABLE and "entropy" in result["reason"]
    assert result["pass_change_low"] > 0  # passes rose, yet the manipulation check failed
    rising = verdict(table(20, lambda length: -0.2, fails_beyond, rises_mostly), CPT, "log_scale")
    assert rising["verdict"] == NOT_TESTABLE


def test_a_rise_only_inside_the_cpt_length_is_not_causal():
    inside_fails = lambda prompt, length: length > CPT and prompt % 2 == 0  # noqa: E731
    inside_rises = lambda prompt, length: length <= CPT or prompt % 2 == 0  # noqa: E731
    trials = table(20, lambda length: 0.4, inside_fails, inside_rises)
    result = verdict(trials, CPT, "log_scale")
    assert result["verdict"] == SYMPTOM and result["pass_change"] == 0
    assert verdict(trials, 64, "log_scale")["verdict"] == CAUSAL  # the same table, counted from length 128


def test_three_prompts_are_too_few_to_say_causal():
    result = verdict(table(3, lambda length: 0.4, fails_beyond, lambda p, length: True), CPT, "log_scale")
    assert result["verdict"] == NOT_TESTABLE and "prompts" in result["reason"]
    assert result["n_prompts"] == 3


def test_clusters_are_prompts_not_trials():
    # one prompt rises at every method and length, nine never change: 40 trials but only 10 clusters
    one_prompt = lambda prompt, length: length <= CPT or prompt == 0  # noqa: E731
    result = verdict(table(10, lambda length: 0.4, fails_beyond, one_prompt), CPT, "log_scale")
    assert result["pass_change"] == pytest.approx(0.1)
    assert result["verdict"] == SYMPTOM and result["pass_change_low"] == 0  # resamples without prompt 0


def test_verdicts_one_row_per_intervention_and_model_column():
    trials = pd.concat([table(20, lambda length: 0.4, fails_beyond, rises_mostly, "log_scale"),
                        table(20, lambda length: 0.4, fails_beyond, fails_beyond, "temperature")])
    trials = trials.drop_duplicates(["method", "length", "prompt_id", "condition"])
    out = verdicts(trials.rename(columns={"method": "model"}), CPT)
    assert out.set_index("condition")["verdict"].to_dict() == {"log_scale": CAUSAL, "temperature": SYMPTOM}
    again = verdicts(trials, CPT)
    pd.testing.assert_frame_equal(out, again)  # fixed seed: the same numbers every time


def test_malformed_tables_raise():
    trials = table(10, lambda length: 0.4, fails_beyond, rises_mostly)
    with pytest.raises(ValueError, match="lack column"):
        paired_trials(trials.drop(columns="passed"), "log_scale", CPT)
    with pytest.raises(ValueError, match="several trials"):
        paired_trials(pd.concat([trials, trials]), "log_scale", CPT)
    assert verdict(trials, 4096, "log_scale")["verdict"] == NOT_TESTABLE  # nothing beyond the CPT length
    for condition in ("none", "temperature"):
        with pytest.raises(ValueError, match="intervention present"):
            verdict(trials, CPT, condition)
