"""ropelib.findings.entropy_intervention: claim 4.1's estimand and row on synthetic paired-trial tables."""

import numpy as np
import pandas as pd
import pytest

from ropelib.findings import claims
from ropelib.findings.entropy_intervention import analysis
from ropelib.findings.entropy_intervention.verdicts import (ENTROPY_MARGIN, by_model, counts, paired_trials, parts,
                                                            retrieval_at_l0, row, shared_rescues)

L0, CPT = 128, 256
LENGTHS = (128, 256, 512, 1024)  # L0, the CPT length, two beyond
METHODS = ("ntk", "yarn")
ARMS = (("log_scale", 0.4), ("temperature", 1.2))  # (arm, entropy drop in nats)


def trials_table(after, n_prompts=20, before=None, drops=dict(ARMS), needle_first=None) -> pd.DataFrame:
    """Paired trials for every (method, length, prompt): "none" and each arm of ``drops``.

    before / after(method, condition, prompt, length) -> passed; by default the untouched model passes
    up to the CPT length and fails past it. Baseline entropy rises with length."""
    before = before or (lambda method, prompt, length: length <= CPT)
    rows = []
    for method in METHODS:
        for length in LENGTHS:
            for prompt in range(n_prompts):
                entropy = np.log(length) - 1 + 0.01 * prompt
                base = dict(method=method, length=length, prompt_id=f"p{prompt}")
                if needle_first is not None:
                    base["needle_first"] = needle_first(method, prompt)
                rows.append({**base, "condition": "none", "entropy_first": entropy,
                             "passed": before(method, prompt, length)})
                for condition, drop in drops.items():
                    passed = before(method, prompt, length) if length <= CPT else after(method, condition, prompt,
                                                                                        length)
                    rows.append({**base, "condition": condition, "entropy_first": entropy - drop, "passed": passed})
    return pd.DataFrame(rows)


def three_in_four(method, condition, prompt, length):
    return prompt % 4 != 0


def never(method, condition, prompt, length):
    return False


def graded(trials, **kw):
    return row(trials, CPT, L0, "organism", chapter="t", **kw)


# ---- the estimand: dP per (model, arm), Newcombe's paired interval, prompts as units

def test_entropy_drops_and_passes_rise_is_supported():
    trials = trials_table(three_in_four)
    per_model = by_model(trials, CPT)
    assert len(per_model) == 4 and per_model["entropy_change"].round(6).tolist() == [-0.4, -1.2] * 2
    first = per_model.iloc[0]
    assert (first["both"], first["arm_only"], first["none_only"], first["neither"]) == (0, 30, 0, 10)
    assert first["pass_change"] == pytest.approx(0.75) and first["n_trials"] == 40 and first["n_prompts"] == 20
    assert (first["pass_change_low"], first["pass_change_high"]) == pytest.approx(
        claims.newcombe_paired(0, 30, 0, 10)[1:])
    assert {p.grade for p in parts(per_model)} == {"replicated"}
    entry = graded(trials)
    assert entry["verdict"] == "supported" and entry["n_units"] == 20 and entry["unit"] == "prompt"
    assert entry["caveats"] == "" and entry["sensitivity"] == ""  # every premise met


def test_only_lengths_past_the_cpt_length_count():
    # a rise inside the CPT length only: not counted; the same table counted from L0 sees it
    inside = lambda method, prompt, length: length > CPT or prompt % 2 == 0  # noqa: E731
    trials = trials_table(lambda *a: a[2] % 2 == 0, before=inside)
    trials.loc[(trials["condition"] != "none") & (trials["length"] == CPT), "passed"] = True
    assert by_model(trials, CPT)["pass_change"].eq(-0.5).all()  # past CPT: the arms break half the needles
    assert (by_model(trials, L0)["pass_change"] > by_model(trials, CPT)["pass_change"]).all()
    assert graded(trials)["verdict"] == "not supported"  # CI on the other side


def test_length_alone_does_not_pass():
    # the untouched model fails beyond the CPT length and every arm leaves it failing: entropy falls, nothing returns
    entry = graded(trials_table(never, n_prompts=40))
    assert entry["verdict"] == "not supported" and "equivalence" in entry["parts"]
    few = graded(trials_table(never, n_prompts=10))  # 20 trials cannot exclude a rescue of 0.1
    assert few["verdict"] == "inconclusive"


def test_noise_is_not_supported():
    # one prompt rescued and one broken per model and arm: dP = 0 with a real interval
    before = lambda method, prompt, length: length <= CPT or prompt == 1  # noqa: E731
    after = lambda method, condition, prompt, length: prompt == 0  # noqa: E731
    trials = trials_table(after, before=before)
    per_model = by_model(trials, CPT)
    assert per_model["pass_change"].eq(0).all() and (per_model["pass_change_high"] > 0).all()
    assert graded(trials)["verdict"] in ("inconclusive", "not supported")


def test_nothing_changing_gives_no_zero_width_replication():
    # half the needles pass with and without the arm, none rescued or broken: never "supported"
    before = lambda method, prompt, length: length <= CPT or prompt % 2 == 0  # noqa: E731
    entry = graded(trials_table(lambda m, c, prompt, length: prompt % 2 == 0, before=before))
    assert entry["verdict"] != "supported"


def test_too_few_prompts_is_inconclusive_even_if_every_trial_is_rescued():
    entry = graded(trials_table(lambda *a: True, n_prompts=3))
    assert entry["verdict"] == "inconclusive" and "too few units" in entry["parts"] and entry["n_units"] == 3


def test_one_model_carrying_the_gain_is_partly():
    only_ntk = lambda method, condition, prompt, length: method == "ntk" and prompt % 2 == 0  # noqa: E731
    trials = trials_table(only_ntk, n_prompts=40)
    per_model = by_model(trials, CPT).set_index(["model", "condition"])
    assert per_model.loc["ntk", "pass_change"].eq(0.5).all() and per_model.loc["yarn", "pass_change"].eq(0).all()
    assert graded(trials)["verdict"] == "partly supported"
    assert shared_rescues(trials, CPT) == (40, {"log_scale": 40, "temperature": 40})  # one effect seen twice


# ---- premises: caveats and a sensitivity line, never switches

def test_an_arm_that_does_not_lower_entropy_is_graded_with_a_caveat():
    trials = trials_table(three_in_four, drops={"log_scale": 0.4, "temperature": ENTROPY_MARGIN / 2})
    entry = graded(trials)
    assert entry["verdict"] == "supported"  # every part graded: the premise is not a switch
    assert "temperature changes mean first-token entropy by -0.025" in entry["caveats"]
    assert "log_scale changes" not in entry["caveats"]
    assert entry["sensitivity"].startswith("on the units that meet the premises: supported (the same)")
    assert "temperature" not in entry["sensitivity"]  # only the arms that lowered entropy
    rising = graded(trials_table(three_in_four, drops={"log_scale": -0.2}))
    assert rising["verdict"] == "supported" and "+0.200 nats" in rising["caveats"]
    assert "not testable" in rising["sensitivity"]  # no part meets the premise


def test_a_model_that_misses_retrieval_at_l0_is_graded_with_a_caveat():
    # yarn fails its own L0 trials (and everything past CPT): still graded; the sensitivity drops it
    before = lambda method, prompt, length: method == "ntk" and length <= CPT  # noqa: E731
    after = lambda method, condition, prompt, length: method == "ntk" and prompt % 4 != 0  # noqa: E731
    trials = trials_table(after, before=before, n_prompts=40)
    assert retrieval_at_l0(trials, L0) == {"ntk": 1.0, "yarn": 0.0}
    entry = graded(trials)
    assert entry["verdict"] == "partly supported"  # yarn graded too: no rescue there
    assert "yarn misses the premise 'retrieves at L0': pass rate 0 < 0.8 at L0 = 128" in entry["caveats"]
    assert "supported (differs from all units)" in entry["sensitivity"] and "yarn" not in entry["sensitivity"]


def test_page_caveats_are_carried_and_missing_l0_trials_are_said():
    trials = trials_table(three_in_four)
    trials = trials[trials["length"] != L0]
    entry = graded(trials, caveats=["cpt-yarn missed its retrieval gate"])
    assert entry["verdict"] == "supported" and entry["caveats"] == "cpt-yarn missed its retrieval gate"
    assert "retrieves at L0 not checked: the page has no trials at L0 = 128" in entry["details"]


def test_nothing_past_the_cpt_length_is_not_testable():
    entry = row(trials_table(three_in_four), 4096, L0, "organism")
    assert entry["verdict"] == "not testable" and "no paired trials" in entry["details"]


# ---- reported beside the verdict

def test_rescues_with_the_needle_already_ranked_first_are_counted():
    half = lambda method, condition, prompt, length: prompt % 2 == 0  # noqa: E731
    trials = trials_table(half, needle_first=lambda method, prompt: prompt % 4 == 0)
    per_model = by_model(trials, CPT)
    assert per_model["rescued"].tolist() == [20] * 4 and per_model["rescued_needle_first"].tolist() == [10] * 4
    assert per_model["failing_needle_first"].tolist() == [10] * 4 and per_model["failing_before"].tolist() == [40] * 4
    [entry] = analysis.glance_rows(trials, CPT, L0, chapter="t", model="organism")
    assert entry["order"] == 4.1 and entry["kind"] == "beyond" and entry["verdict"] == "supported"
    assert "needle ranked first before the intervention in 20 of 80 failing and 20 of 40 rescued" in entry["details"]
    assert "rescued by both arms: 40" in entry["details"] and "dose-response" in entry["details"]
    assert "log-length scaling -0.40 nats -> +0.500" in entry["details"]  # a 3x smaller drop, the same gain
    [log, temp] = analysis.arm_rows(per_model)  # the page's prose, one per arm
    assert log["verdict"] == temp["verdict"] == "supported" and log["ours"].startswith("log-length scaling: ntk")
    log_alone, absent = analysis.arm_prose(by_model(trials[trials["condition"] != "temperature"], CPT))
    assert log_alone == log  # a page of one arm (a split run) words that arm as the pooled page does
    assert absent["condition"] == "temperature" and absent["verdict"] == "not run on this page"
    unrecorded = analysis.glance_rows(trials.drop(columns="needle_first"), CPT, L0, chapter="t", model="organism")
    assert "needle rank before the intervention not recorded" in unrecorded[0]["details"]


def test_counts_and_malformed_tables():
    trials = trials_table(three_in_four, n_prompts=10)
    pairs = paired_trials(trials, "log_scale", CPT)
    assert counts(pairs) == (0, 28, 0, 12)  # 2 models x 2 lengths x 10 prompts, 3 in 10 unrescued
    with pytest.raises(ValueError, match="lack column"):
        paired_trials(trials.drop(columns="passed"), "log_scale", CPT)
    with pytest.raises(ValueError, match="several trials"):
        paired_trials(pd.concat([trials, trials]), "log_scale", CPT)
    for condition in ("none", "absent"):
        with pytest.raises(ValueError, match="intervention present"):
            paired_trials(trials, condition, CPT)
    same = by_model(trials.rename(columns={"method": "model"}), CPT)
    pd.testing.assert_frame_equal(same, by_model(trials, CPT))


def test_teacher_forced_trials_record_whether_the_needle_ranks_first():
    import torch
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


# ---- the arms' strengths from a dose scan on the dev prompts (issue 35)

def test_the_dose_with_the_most_dev_passes_is_chosen_ties_to_the_plain_arm():
    from ropelib.findings.entropy_intervention import analysis

    scan = pd.DataFrame([{"condition": c, "dose": d, "passed": p}
                         for c, d, p in [("log_scale", 0.5, 0), ("log_scale", 1.0, 1), ("log_scale", 2.0, 3),
                                         ("temperature", 0.5, 2), ("temperature", 1.0, 2), ("temperature", 2.0, 2)]])
    assert analysis.choose_dose(scan) == {"log_scale": 2.0, "temperature": 1.0}
    alpha, taus = analysis.dosed(2.0, 0.25, {4096: 0.8, 2048: 1.0})
    assert alpha == 0.5 and taus == {4096: 0.8 ** 2, 2048: 1.0}
    assert analysis.dosed(0.0, 0.25, {4096: 0.8}) == (0.0, {4096: 1.0})  # dose 0: nothing changed


def test_an_arm_is_the_untouched_model_only_where_it_changes_nothing():
    assert analysis.untouched("none", 4096, 2048) and analysis.untouched("temperature", 2048, 2048)
    assert not analysis.untouched("temperature", 4096, 2048)
    assert not analysis.untouched("log_scale", 2048, 2048)  # the answer tokens' queries lie past L0
    assert analysis.check_conditions(["temperature", "none"]) == ["none", "temperature"]
