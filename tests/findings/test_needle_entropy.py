"""Finding 2's tables and estimands on synthetic trial tables, graded by the registry's rule, including
the tables that must NOT replicate: length alone, signal only in post-error tokens, noise, tiny strata,
too few failing cells, borrowing at chance level, format failures, no failures; and a model that misses
the premise, still graded, with a caveat and a sensitivity line."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ropelib import results  # noqa: E402
from ropelib.findings import claims  # noqa: E402
from ropelib.findings.needle_entropy import analysis as na  # noqa: E402
from ropelib.findings.needle_entropy import plots as needle_plots  # noqa: E402
from ropelib.findings.needle_entropy import verdicts as nv  # noqa: E402

LENGTHS = [128, 256, 512, 1024]
L0 = 128
DEPTHS = [0.0, 25.0, 50.0, 75.0, 100.0]
MEASURES = ("entropy_first", "entropy_teacher", "entropy")


def synthetic_trials(signal_in=MEASURES, seed: int = 0, per_cell: int = 6,
                     p_fail=(0.05, 0.3, 0.5, 0.85), methods=("A", "B"), l0_fail=None) -> pd.DataFrame:
    """Two methods reading the same prompts; entropy rises with log length and failures get likelier
    with length. Measures in ``signal_in`` also carry +1 nat for a failure at a fixed length. L0 = 128;
    ``l0_fail``: {method: failure probability at L0} for a model that misses the premise."""
    rng = np.random.default_rng(seed)
    rows = []
    for length, p in zip(LENGTHS, p_fail):
        for depth in DEPTHS:
            for i in range(per_cell):
                for method in methods:
                    q = (l0_fail or {}).get(method, p) if length == L0 else p
                    failed = bool(rng.random() < q)
                    base = np.log2(length) / 2 + rng.normal(scale=0.5)
                    borrowed = failed and rng.random() < 0.8
                    row = {m: base + (1.0 if failed and m in signal_in else 0.0) for m in MEASURES}
                    rows.append({
                        **row, "method": method, "length": length, "depth": depth, "prompt": f"{length}-{depth}-{i}",
                        "passed": not failed, "needle_mass": 0.05 * np.exp(rng.normal(scale=0.3)), "borrowed": borrowed,
                        "borrowed_mass": 0.3 * np.exp(rng.normal(scale=0.3)) if borrowed else 0.0,
                        "borrowed_count": 6 if borrowed else 0, "borrowed_positions": "10 40" if borrowed else "",
                        "borrowed_by_chance": failed and rng.random() < 0.2, "pretrained_length": L0,
                        "value": "12345", "answer": "54321" if failed else "12345"})
    trials = pd.DataFrame(rows)
    trials["failed"] = ~trials["passed"]
    return trials


def analyse(trials, n=200):
    return na.verdict_tables(trials, n_boot=n)


def rows_of(trials, n=200):
    """What the page does: tables on every trial, the premise per model, the tables of the models that meet it."""
    premise = na.retrieves_at_l0(trials)
    rows = nv.glance_rows(trials, analyse(trials, n), premise, na.met_tables(trials, premise, n_boot=n), "organism",
                          n_boot=n)
    return {r["order"]: r for r in rows}


@pytest.fixture(scope="module")
def signal():
    trials = synthetic_trials()
    return trials, analyse(trials)


def test_a_real_within_length_effect_replicates(signal):
    trials, tables = signal
    pooled = tables.association[(tables.association["method"] == na.POOLED)
                                & (tables.association["measure"] == "entropy_first")].iloc[0]
    assert pooled["n"] == len(trials) and pooled["within_low"] > 0.6 and pooled["within_p"] < 0.01
    assert pooled["haystacks"] == trials.loc[trials["length"] > 128, "prompt"].nunique()  # 128 has < 5 failures
    rows = rows_of(trials)
    assert sorted(rows) == [2.1, 2.3, 2.4, 2.5]  # one row per claim
    assert rows[2.1]["verdict"] == "replicated" and rows[2.5]["verdict"] == "replicated"
    assert rows[2.1]["n_units"] == pooled["haystacks"] and rows[2.1]["unit"] == "haystack"
    assert rows[2.1]["parts"].count(": replicated") == 2  # one part per causal measure
    assert rows[2.1]["caveats"] == "" and rows[2.1]["sensitivity"] == ""  # every model meets the premise
    assert all(r["verdict"] in results.VERDICTS and r["rule"] and r["details"] for r in rows.values())


def test_length_alone_does_not_replicate():
    # entropy depends on length only: every measure, every claim about entropy must fail to replicate
    trials = synthetic_trials(signal_in=())
    rows = rows_of(trials)
    assert rows[2.1]["verdict"] in ("not replicated", "inconclusive")  # never replicated, never partly
    assert rows[2.3]["verdict"] in ("not replicated", "inconclusive")  # length tops the entropies alone
    topk = analyse(trials).topk
    top = topk[(topk["method"] == na.POOLED) & (topk["measure"] == "entropy_first")].iloc[0]
    assert top["hit_rate"] > top["chance"]  # the old null (random ranking) would have been fooled


def test_signal_only_after_the_first_error_does_not_replicate():
    trials = synthetic_trials(signal_in=("entropy",))
    rows = rows_of(trials)
    assert rows[2.1]["verdict"] in ("not replicated", "inconclusive")
    association = analyse(trials).association
    appendix_c = association[(association["method"] == na.POOLED) & (association["measure"] == "entropy")].iloc[0]
    assert appendix_c["within_low"] > 0.5  # the Appendix C mean alone would have said "replicated"
    assert "not graded" in rows[2.1]["details"]


def _topk(statement, failing=69, **by_measure):
    """A pooled top-k table: measure -> (hit_rate, null, length_only)."""
    return pd.DataFrame([{"method": na.POOLED, "statement": statement, "measure": measure, "hit_rate": hit,
                          "hits": round(hit * failing) if failing else 0, "failing": failing, "groups": 5, "null": null,
                          "p_value": 0.5, "chance": 0.3, "length_only": length_only, "best_p": 0.001}
                         for measure, (hit, null, length_only) in by_measure.items()])


def _grades(parts):
    return [p.grade for p in parts]


def test_topk_parts_are_the_hit_rate_minus_each_reference_with_a_shifted_wilson_interval():
    depth, column = list(na.STATEMENTS)
    table = _topk(column, entropy_first=(0.9, 0.5, np.nan), entropy_teacher=(0.52, 0.5, np.nan))
    first, teacher = nv.topk_parts(table, 2.4)
    rate, low, high = claims.wilson(62, 69)
    assert (first.estimate, first.ci_low, first.ci_high, first.n_units) == pytest.approx(
        (rate - 0.5, low - 0.5, high - 0.5, 69))
    assert first.grade == "replicated" and teacher.grade == "inconclusive"  # noise: an effect of interest not excluded
    # at a fixed depth (2.3) a second reference per measure: ranking by length alone
    table = _topk(depth, entropy_first=(1.0, 0.6, 1.0), entropy_teacher=(1.0, 0.6, 1.0))
    parts = nv.topk_parts(table, 2.3)
    assert len(parts) == 4
    assert [p.name.split(" vs ")[1] for p in parts[:2]] == ["shuffled within length", "length alone"]
    # length alone ranks every failing length on top too (reference 1): no ranking could beat it, so that part
    # could not have shown the effect and is inconclusive, never "not replicated"
    assert _grades(parts) == ["replicated", "inconclusive"] * 2
    below = _topk(column, entropy_first=(0.40, 0.50, np.nan), entropy_teacher=(0.38, 0.50, np.nan), failing=300)
    assert _grades(nv.topk_parts(below, 2.4)) == ["not replicated"] * 2


def test_topk_with_too_few_failing_cells_is_inconclusive_and_without_any_not_testable():
    column = list(na.STATEMENTS)[1]
    few = _topk(column, failing=3, entropy_first=(1.0, 0.2, np.nan), entropy_teacher=(1.0, 0.2, np.nan))
    assert all(p.grade == "inconclusive" and "too few units" in p.reason for p in nv.topk_parts(few, 2.4))
    none = _topk(column, failing=0, entropy_first=(np.nan, np.nan, np.nan), entropy_teacher=(np.nan, np.nan, np.nan))
    assert nv.topk_parts(none, 2.4) is None


def test_best_p_is_the_p_of_a_perfect_ranking_against_the_same_shuffles():
    cells = na.cells(synthetic_trials(per_cell=1, p_fail=(0.0, 0.0, 0.0, 0.3), seed=3))
    rows = na.topk_table(cells, "entropy_first", n_perm=200)
    pooled = rows[rows["method"] == na.POOLED].set_index("statement")
    assert (pooled["best_p"] <= pooled["p_value"] + 1e-12).all()  # no ranking gets a smaller p than a perfect one
    # entropy that rises with length, failures at the long lengths: shuffles within a length rank the failing
    # lengths first nearly always, so at a fixed depth even a perfect ranking is not evidence
    cells = na.cells(synthetic_trials(signal_in=()))
    length_only = na.topk_table(cells, "entropy_first", n_perm=200)
    fixed_depth = length_only[(length_only["method"] == na.POOLED)
                              & (length_only["statement"] == list(na.STATEMENTS)[0])].iloc[0]
    assert fixed_depth["best_p"] >= 0.05 and fixed_depth["hit_rate"] > fixed_depth["chance"]


def test_tiny_strata_are_inconclusive_and_strata_of_one_outcome_not_testable():
    trials = synthetic_trials(per_cell=1, p_fail=(0.0, 0.0, 0.3, 1.0))  # no stratum with 5 of each outcome
    pooled = analyse(trials, n=50).association
    pooled = pooled[pooled["method"] == na.POOLED]
    assert pooled["strata"].eq(0).all() and pooled["mixed_strata"].gt(0).all() and pooled["haystacks"].eq(0).all()
    row = rows_of(trials, n=50)[2.1]
    assert row["verdict"] == "inconclusive" and "too few units: 0 haystacks" in row["parts"]
    # every stratum is all-pass or all-fail: no within-length AUROC exists at all
    rows = rows_of(synthetic_trials(per_cell=1, p_fail=(0.0, 0.0, 0.0, 1.0)), n=50)
    assert rows[2.1]["verdict"] == "not testable" and rows[2.4]["verdict"] == "not testable"  # columns: one outcome


def test_a_model_that_misses_the_premise_is_graded_with_a_caveat_and_a_sensitivity_line():
    trials = synthetic_trials(l0_fail={"B": 0.6})  # B retrieves about 0.4 at L0
    premise = na.retrieves_at_l0(trials)
    assert premise.set_index("method")["meets"].to_dict() == {"A": True, "B": False}
    rows = rows_of(trials)
    row = rows[2.1]
    assert row["verdict"] == "replicated"  # computed on every model's trials, never "not testable"
    assert row["caveats"].startswith("B misses the premise 'retrieves at L0'") and "L0 = 128" in row["caveats"]
    assert row["sensitivity"].startswith("on the units that meet the premises: replicated")
    assert rows[2.5]["caveats"] == "" and rows[2.5]["sensitivity"] == ""  # 2.5 has no premise in the registry
    # no model meets it: still graded; the sensitivity line says nothing could be graded on the rest
    rows = rows_of(synthetic_trials(l0_fail={"A": 0.6, "B": 0.6}))
    assert rows[2.1]["verdict"] == "replicated" and "not testable" in rows[2.1]["sensitivity"]
    assert rows[2.1]["caveats"].count("misses the premise") == 2
    # L0 not among the page's lengths: unchecked, a caveat
    unchecked = na.retrieves_at_l0(trials.assign(pretrained_length=4096))
    assert not unchecked["meets"].any() and "unchecked" in nv.premise_caveats(unchecked)[0]


def test_pooled_intervals_resample_prompts_not_trials(signal):
    trials, _ = signal
    one = trials[trials["method"] == "A"]
    twice = pd.concat([one, one.assign(method="B")])  # B reads the same prompts and answers as A does
    clustered = na.association_table(twice, "entropy_first", n_boot=400, n_perm=20).iloc[-1]
    by_trial = na.association_table(twice.drop(columns=["prompt"]), "entropy_first", n_boot=400, n_perm=20).iloc[-1]
    width = lambda row: row["within_high"] - row["within_low"]  # noqa: E731
    assert clustered["haystacks"] == by_trial["haystacks"] / 2  # a prompt read by two models is one unit
    assert width(clustered) > width(by_trial) * 1.2  # shared prompts are not independent


def test_needles_sharing_a_haystack_are_one_unit(signal):
    # a real model's page puts a cell's needles on one haystack: those trials are resampled together
    trials, _ = signal
    one = trials[trials["method"] == "A"].reset_index(drop=True)
    shared = one.assign(haystack=one["length"].astype(str) + "-" + (one.index // 4).astype(str))
    by_haystack = na.association_table(shared, "entropy_first", n_boot=400, n_perm=20).iloc[-1]
    by_prompt = na.association_table(one, "entropy_first", n_boot=400, n_perm=20).iloc[-1]
    assert by_prompt["haystacks"] == one.loc[one["length"] > 128, "prompt"].nunique()
    assert by_haystack["haystacks"] == shared.loc[shared["length"] > 128, "haystack"].nunique() < by_prompt["haystacks"]
    assert by_haystack["within"] == by_prompt["within"]  # the estimate is the same; only its units change


def test_no_failures_is_not_testable():
    trials = synthetic_trials()
    trials["passed"], trials["failed"] = True, False
    rows = rows_of(trials, n=20)
    assert {rows[o]["verdict"] for o in rows} == {"not testable"}


def test_borrowed_parts_pair_own_and_unseen_context_and_compare_attention_per_occurrence(signal):
    trials, tables = signal
    answers = tables.answers
    assert len(answers) == int(trials["failed"].sum())  # every synthetic wrong answer is shaped like the value
    own = answers[answers["own"]]
    hit = trials[trials["borrowed"]]
    expected = np.log(hit["borrowed_mass"] / 2 / hit["needle_mass"])
    assert own["occurrences"].eq(2).all() and np.allclose(own["log_ratio"], expected)  # "10 40": two occurrences
    found, attention = nv.borrowed_parts(answers, n_boot=200)
    assert found.n_units == len(answers) and attention.n_units == len(own)
    assert found.grade == "replicated" and attention.grade == "replicated"


def test_borrowing_at_chance_level_is_not_credited(signal):
    trials, _ = signal
    answers = na.borrowed_answers(trials.assign(borrowed_by_chance=trials["borrowed"]))
    found, _ = nv.borrowed_parts(answers, n_boot=200)
    assert found.estimate == 0 and found.ci_high > found.ci_low  # 0 discordant pairs: Newcombe still has width
    assert found.grade == "not replicated"  # CI inside 0 +- 0.1


def test_format_failures_are_not_candidates_and_few_borrowed_answers_are_inconclusive(signal):
    trials, _ = signal
    failed = trials.index[trials["failed"]]
    garbled = trials.copy()
    garbled.loc[failed[5:], "answer"] = "5151"  # 4 digits: a format failure, not a like-shaped wrong answer
    answers = na.borrowed_answers(garbled)
    assert len(answers) == 5
    found, attention = nv.borrowed_parts(answers, n_boot=200)
    assert found.grade == "inconclusive" and attention.grade == "inconclusive" and "too few" in attention.reason
    details = nv.borrowed_details(garbled, answers)
    assert f"{len(failed) - 5} format failures" in details
    # attention no larger per occurrence than on the needle: not credited
    even = trials.assign(borrowed_mass=trials["needle_mass"] * 2 * np.exp(np.random.default_rng(1).normal(
        scale=0.01, size=len(trials))))
    _, attention = nv.borrowed_parts(na.borrowed_answers(even), n_boot=200)
    assert attention.grade == "not replicated"


def test_like_shaped_answers_and_occurrences():
    frame = pd.DataFrame({"value": ["12345"] * 6 + ["98765"],
                          "answer": ["54321", "54321.", "54321\n#", "5432", "543210", "# x", None]})
    assert na.like_shaped(frame).tolist() == [True, True, True, False, False, False, False]
    frame = pd.DataFrame({"borrowed": [True, True, True, False], "borrowed_count": [3, 6, 90, 0],
                          "borrowed_positions": ["7", "7 9", " ".join(["1"] * 20), ""]})
    assert na.occurrences(frame).tolist() == [1, 2, 30, 0]  # the list is cut at 20: borrowed_count / 3 above it


def test_digit_overlap_and_readable():
    assert na._digit_overlap("82678", "82876") == 1.0 and na._digit_overlap(" 82670§", "82876") == 0.8
    table = pd.DataFrame({"method": ["A"], "auroc": [0.81234], "auroc_low": [0.7], "auroc_high": [0.9],
                          "auroc_p": [0.000999]})
    assert na.readable(table).iloc[0].tolist() == ["A", "0.812 [0.700, 0.900]", "0.000999"]


def test_plots_draw_one_panel_per_method(signal):
    trials, *_ = signal
    figure = needle_plots.plot_heatmaps(na.cells(trials), cpt_length=512, pretrained_length=256)
    assert len([ax for ax in figure.axes if ax.get_visible() and ax.get_title() in ("A", "B")]) == 2


def _control_trials(rates: dict[str, float], lengths=(128, 512, 1024, 2048), prompts=60, seed=0):
    """Trials of every model on the same prompts; pass rate per model, the same at every length."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame([{"method": label, "length": length, "prompt": f"{length}-{i}", "passed": rng.random() < rate}
                         for label, rate in rates.items() for length in lengths for i in range(prompts)])


METHODS = {"RoPE (cpt-rope)": "rope", "PI (cpt-pi)": "pi", "NTK (cpt-ntk)": "ntk"}


def test_a_control_that_fails_retrieval_is_a_result_not_untestable():
    trials = _control_trials({"RoPE (cpt-rope)": 0.2, "PI (cpt-pi)": 0.95, "NTK (cpt-ntk)": 0.95})
    table = nv.retrieval_control(trials, METHODS, pretrained_length=256, cpt_length=1024, n_boot=500)
    row = nv.control_row(table, 256, 1024, "organism")
    assert row["verdict"] == "supported" and row["kind"] == "control" and row["n_units"] == 120
    assert set(table["band"]) == {"within", "beyond"}
    assert table.groupby("band")["prompts"].first().to_dict() == {"within": 120, "beyond": 60}  # 512, 1024; 2048


def test_retrieval_control_on_noise_or_identical_models_is_inconclusive():
    noise = _control_trials({"RoPE (cpt-rope)": 0.9, "PI (cpt-pi)": 0.92, "NTK (cpt-ntk)": 0.9}, prompts=30)
    row = nv.control_row(nv.retrieval_control(noise, METHODS, 256, 1024, n_boot=500), 256, 1024, "organism")
    assert row["verdict"] in ("inconclusive", "not supported") and row["verdict"] != "supported"
    perfect = _control_trials({"RoPE (cpt-rope)": 1.0, "PI (cpt-pi)": 1.0, "NTK (cpt-ntk)": 1.0})
    row = nv.control_row(nv.retrieval_control(perfect, METHODS, 256, 1024, n_boot=500), 256, 1024, "organism")
    assert row["verdict"] == "inconclusive" and "zero-width" in row["parts"]  # every difference 0: not a CI
    few = _control_trials({"RoPE (cpt-rope)": 0.1, "PI (cpt-pi)": 1.0, "NTK (cpt-ntk)": 1.0}, prompts=3)
    row = nv.control_row(nv.retrieval_control(few, METHODS, 256, 1024, n_boot=500), 256, 1024, "organism")
    assert row["verdict"] == "inconclusive" and row["n_units"] == 6  # 6 prompts < 8


def test_retrieval_control_is_not_testable_on_a_training_free_line_up():
    trials = _control_trials({"RoPE (cpt-rope)": 0.2, "PI (cpt-pi)": 0.95})
    assert nv.control_row(nv.retrieval_control(trials, METHODS, 256, 0), 256, 0, "m")["verdict"] == "not testable"
    no_rope = nv.retrieval_control(trials.replace("RoPE (cpt-rope)", "YaRN"), {"YaRN": "yarn", "PI (cpt-pi)": "pi"},
                                   256, 1024)
    assert nv.control_row(no_rope, 256, 1024, "m")["verdict"] == "not testable"
