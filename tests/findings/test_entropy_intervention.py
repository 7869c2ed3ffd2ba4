"""ropelib.findings.entropy_intervention.verdicts: the rule on synthetic paired-trial tables."""

import numpy as np
import pandas as pd
import pytest

from ropelib.findings.entropy_intervention.verdicts import (CAUSAL, ENTROPY_MARGIN, NOT_TESTABLE, SYMPTOM, TOO_FEW,
                                                    by_model, paired_trials, verdict, verdicts)

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


def test_three_prompts_are_too_few_to_say_causal_but_were_measured():
    # every prompt rescued, but 3 clusters: inconclusive (measured, too imprecise), never "not testable"
    trials = table(3, lambda length: 0.4, fails_beyond, lambda p, length: True)
    result = verdict(trials, CPT, "log_scale")
    assert result["verdict"] == TOO_FEW and "prompts" in result["reason"]
    assert result["n_prompts"] == 3
    assert set(by_model(trials, CPT)["grade"]) == {"inconclusive"}


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


# --- the claim: two arms, the model as the unit ------------------------------------------------------------


def two_arms(rescue_log, rescue_temp, n_prompts=20, needle_first=None):
    """Both arms on both models; rescue_*(method, prompt, length) -> passed after that arm; none fails beyond."""
    rows = []
    for method in METHODS:
        for length in LENGTHS:
            for prompt in range(n_prompts):
                entropy = np.log(length) - 1 + 0.01 * prompt
                base = dict(method=method, length=length, prompt_id=f"p{prompt}", entropy_first=entropy)
                first = {} if needle_first is None else {"needle_first": needle_first(method, prompt)}
                rows.append({**base, **first, "condition": "none", "passed": length <= CPT})
                for condition, rescue, drop in (("log_scale", rescue_log, 0.4), ("temperature", rescue_temp, 1.2)):
                    rows.append({**base, **first, "condition": condition, "entropy_first": entropy - drop,
                                 "passed": length <= CPT or rescue(method, prompt, length)})
    return pd.DataFrame(rows)


def test_one_model_carrying_the_pooled_gain_is_partly_not_supported():
    from ropelib.findings.entropy_intervention import analysis
    from ropelib.findings.entropy_intervention.verdicts import by_model, claim, shared_rescues
    only_ntk = lambda method, prompt, length: method == "ntk" and prompt % 2 == 0  # noqa: E731
    trials = two_arms(only_ntk, only_ntk)
    assert verdicts(trials, CPT).set_index("condition")["verdict"].eq(CAUSAL).all()  # pooled: both arms "causal"
    per_model = by_model(trials, CPT)
    assert per_model.set_index(["model", "condition"])["grade"].to_dict() == {
        ("ntk", "log_scale"): "replicated", ("ntk", "temperature"): "replicated",
        ("yarn", "log_scale"): "not replicated", ("yarn", "temperature"): "not replicated"}
    assert claim(per_model) == "partly"  # the model as the unit: one of two models
    assert shared_rescues(trials, CPT) == (20, {"log_scale": 20, "temperature": 20})  # one effect seen twice
    [row] = analysis.glance_rows(trials, CPT, "", chapter="t")
    assert row["order"] == 4.1 and row["kind"] == "beyond" and row["verdict"] == "partly supported"
    assert "rescued by both arms: 20" in row["details"] and "dose-response" in row["details"]
    assert "log-length scaling -0.40 nats -> +0.500" in row["details"]  # a 3x larger drop, the same gain
    assert "needle rank before the intervention not recorded" in row["details"]


def test_rescues_by_a_needle_already_ranked_first_are_counted():
    from ropelib.findings.entropy_intervention import analysis
    from ropelib.findings.entropy_intervention.verdicts import by_model
    every = lambda method, prompt, length: prompt % 2 == 0  # noqa: E731
    trials = two_arms(every, every, needle_first=lambda method, prompt: prompt % 4 == 0)
    per_model = by_model(trials, CPT)
    assert per_model["rescued"].tolist() == [20] * 4 and per_model["rescued_needle_first"].tolist() == [10] * 4
    [row] = analysis.glance_rows(trials, CPT, "", chapter="t")
    assert row["verdict"] == "supported" and "needle ranked first before the intervention in 20 of 40" in row["details"]


def test_noise_in_every_model_is_inconclusive_not_supported():
    from ropelib.findings.entropy_intervention.verdicts import by_model, claim
    one = lambda method, prompt, length: prompt == 0 and length == LENGTHS[-1]  # noqa: E731
    per_model = by_model(two_arms(one, one), CPT)
    assert set(per_model["grade"]) == {"inconclusive"} and claim(per_model) == "inconclusive"


def test_teacher_forced_trials_record_whether_the_needle_ranks_first():
    import torch
    from ropelib.findings.entropy_intervention import analysis
    from ropelib.models import organism
    from ropelib.text.tokenizer import ByteTokenizer
    torch.set_num_threads(1)
    config = organism.OrganismConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=2, intermediate_size=64,
                                     head_dim=16, train_length=32)
    model, tokenizer = organism.build(config, seed=0).eval(), ByteTokenizer()
    hay = tokenizer.encode("def f(x):\n    return x + 1\n" * 40)
    prompts = analysis.needle_prompts(tokenizer, hay, 128, [10, 90], 2, 0, "dev")
    out = analysis.teacher_forced(model, tokenizer, prompts)
    assert [set(o) for o in out] == [{"prompt_id", "entropy_first", "entropy_teacher", "passed", "needle_first"}] * 4
    assert all(isinstance(o["needle_first"], bool) for o in out)


def test_one_model_alone_is_at_most_partly():
    from ropelib.findings.entropy_intervention.verdicts import by_model, claim
    every = lambda method, prompt, length: prompt % 2 == 0  # noqa: E731
    trials = two_arms(every, every)
    assert claim(by_model(trials, CPT)) == "replicated"  # two models, both arms: supported
    assert claim(by_model(trials[trials["method"] == "ntk"], CPT)) == "partly"  # the same effect in one model
