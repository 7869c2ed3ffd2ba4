"""Fig. 1: the curve summary (both aggregations, new positions), the extrapolation limits (description),
and every claim's estimand graded by the registry's one rule on synthetic per-document tables, including
tables that must NOT pass: no rise past L0, noise, identical differences (a zero-width interval), too few
documents, a control as good as the extensions, a failure visible only on all positions."""

import math

import numpy as np
import pandas as pd
import pytest

from ropelib.findings import claims
from ropelib.findings.perplexity import analysis as fig1
from ropelib.findings.perplexity import verdicts as rules
from ropelib.models.variants import Variant

LENGTHS = [128, 256, 512, 1024, 2048]
L0, CPT = 256, 512


def curve_of(ppl_by_variant: dict, spread: float = 0.0) -> pd.DataFrame:
    """A hand-made curves() table: variant -> (method, ppl_new at LENGTHS); CI = ppl_new * (1 -/+ spread)."""
    rows = []
    for variant, (method, values) in ppl_by_variant.items():
        for length, ppl in zip(LENGTHS, values):
            rows.append({"variant": variant, "method": method, "source": variant.lower(), "length": length,
                         "ppl": ppl, "ci_low": ppl, "ci_high": ppl, "ppl_new": ppl,
                         "new_ci_low": ppl * (1 - spread), "new_ci_high": ppl * (1 + spread)})
    return pd.DataFrame(rows)


# ---- extrapolation limits (description of Fig. 1) and the curves

def test_limit_is_the_last_length_before_the_first_failure():
    curve = curve_of({
        "original": ("rope", [10, 8, 12, 8, 8]),  # sets the bar 1.2 * 8 = 9.6; fails at 512, recovery ignored
        "graceful": ("pi", [10, 8, 9, 9.5, 20]),  # holds to 1024, fails at 2048
        "flat": ("ntk", [10, 7, 7, 6, 5]),  # never fails: censored at the longest length
        "at-the-bar": ("yarn", [10, 9.6, 9.6, 9.6, 9.61]),
        "poor": ("pi", [30, 25, 25, 25, 25]),  # over the bar at L0 already: no limit
    })
    limits = rules.extrapolation_limits(curve, pretrained_length=256, reference="original").set_index("variant")
    assert limits["bar"].eq(9.6).all()
    assert limits.loc["original", ["limit", "limit_x"]].tolist() == [256, 1.0]
    assert limits.loc["graceful", ["limit", "limit_x", "censored"]].tolist() == [1024, 4.0, False]
    assert limits.loc["flat", "limit"] == 2048 and limits.loc["flat", "censored"]
    assert limits.loc["at-the-bar", "limit"] == 1024
    assert limits.loc["poor", "limit"] == 0 and limits.loc["poor", "limit_x"] == 0
    assert limits["determined"].all()  # no CI spread here


def test_an_interval_that_straddles_the_bar_leaves_the_limit_undetermined():
    curve = curve_of({"original": ("rope", [10, 8, 20, 20, 20]), "pi": ("pi", [10, 8, 8, 9.3, 20])}, spread=0.05)
    limits = rules.extrapolation_limits(curve, 256, "original").set_index("variant")
    row = limits.loc["pi"]  # 9.3 * 1.05 = 9.77 > 9.6 > 9.3 * 0.95: 1024 is undetermined
    assert (row["limit_low"], row["limit_high"], row["determined"]) == (512, 1024, False)
    assert rules.shown_limit(row) == "2x-4x"


def test_without_l0_no_limit_is_measured():
    """The bar is the original model's perplexity at L0: without L0 among the lengths every limit
    says so, never a limit of 0."""
    curve = curve_of({"a": ("rope", [1, 1, 1, 1, 1]), "b": ("pi", [1, 1, 1, 1, 1]), "c": ("ntk", [1, 1, 1, 1, 1])})
    limits = rules.extrapolation_limits(curve, pretrained_length=3000, reference="a")
    assert limits["limit_x"].isna().all() and limits["bar"].isna().all()
    assert rules.shown_limit(limits.iloc[0]) == "not measured (L0 not evaluated)"
    assert rules.key_numbers(limits, "a")["ppl_original_limit"] == "not measured (L0 not evaluated)"


def test_curves_report_both_aggregations_and_the_new_positions():
    losses, new = [1.0, 2.0, 3.0, 2.5], [1.5, 2.5, 3.5, 3.0]
    table = pd.DataFrame({"variant": "v", "method": "pi", "source": "s", "length": 256, "document": list("abcd"),
                          "loss": losses, "loss_new": new})
    row = fig1.curves(table, n_boot=200).iloc[0]
    assert row["ppl"] == pytest.approx(math.exp(np.mean(losses)))
    assert row["ppl_new"] == pytest.approx(math.exp(np.mean(new)))
    assert row["ppl_doc_mean"] == pytest.approx(np.mean(np.exp(losses))) and row["ppl_doc_mean"] >= row["ppl"]
    assert row["new_ci_low"] <= row["ppl_new"] <= row["new_ci_high"]


def test_a_failure_hidden_by_averaging_all_positions_still_ends_the_limit():
    # all-position ppl stays low at 512, but the positions 256..512 alone are over the bar
    curve = curve_of({"RoPE (base)": ("rope", [10, 8, 20, 30, 40])})
    curve["ppl"] = 8.5
    assert rules.extrapolation_limits(curve, 256, "RoPE (base)").loc[0, "limit"] == 256


def test_reference_variant_checks_before_any_model_loads():
    variants = [Variant("rope", "base", "RoPE (base)"), Variant("pi", "base", "PI (base)")]
    assert fig1.reference_variant(variants, "rope:base", 256, LENGTHS).label == "RoPE (base)"
    with pytest.raises(ValueError, match="reference='ntk:base'"):
        fig1.reference_variant(variants, "ntk:base", 256, LENGTHS)
    assert fig1.reference_variant(variants, "rope:base", 300, LENGTHS).label == "RoPE (base)"  # L0 not needed here


def test_paired_ratios_cancel_document_difficulty():
    # documents differ a lot in difficulty, a model is 1.5x worse on every one of them at 512
    rows = []
    for d, difficulty in enumerate([0.5, 1.5, 2.5, 3.5]):
        rows += [{"variant": "RoPE (base)", "length": 256, "document": d, "loss_new": difficulty},
                 {"variant": "RoPE (base)", "length": 512, "document": d, "loss_new": difficulty + math.log(1.5)}]
    ratios = rules.paired_ratios(pd.DataFrame(rows), "RoPE (base)", 256, n_boot=200).set_index("length")
    assert ratios.loc[512, "ratio"] == pytest.approx(1.5)
    assert ratios.loc[512, "ratio_low"] == pytest.approx(1.5) and ratios.loc[512, "ratio_high"] == pytest.approx(1.5)
    assert ratios.loc[256, ["ratio", "ratio_low", "ratio_high"]].tolist() == pytest.approx([1, 1, 1])


# ---- the claims: paired per-document loss differences, graded by the registry's one rule

ORIGINAL = "RoPE (base)"
DIFFICULTY = 1.0 + 0.25 * np.arange(12)  # documents differ more than the effects (exact binary fractions)


def explodes(length):
    return 0.0 if length <= L0 else 1.0


def holds_to(limit, by=1.0):
    return lambda length: 0.0 if length <= limit else by


def flat(length):
    return 0.0


def table_of(models: dict, n_documents: int = 10, noise: float = 0.05, lengths=LENGTHS, seed: int = 1):
    """A hand-made evaluate() table: variant -> (method, added loss as a function of length);
    loss_new = the document's difficulty + the added loss + normal noise; ``loss`` (all positions) flat."""
    rng = np.random.default_rng(seed)
    rows = []
    for variant, (method, shift) in models.items():
        for length in lengths:
            for d in range(n_documents):
                rows.append({"variant": variant, "method": method, "source": variant.split("(")[-1].rstrip(")"),
                             "length": length, "document": d, "loss": 2.0,
                             "loss_new": DIFFICULTY[d] + shift(length) + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def rows_of(table, cpt_length=CPT):
    return {row["order"]: row for row in rules.glance_rows(table, ORIGINAL, L0, cpt_length, chapter="t", seed=0)}


CPT_LINEUP = {ORIGINAL: ("rope", explodes), "RoPE (cpt-rope)": ("rope", holds_to(CPT)),
              "PI (cpt-pi)": ("pi", holds_to(1024, 0.5)), "YaRN (cpt-yarn)": ("yarn", holds_to(1024, 0.5)),
              "NTK (cpt-ntk)": ("ntk", flat)}


def test_the_cpt_lineup_grades_1_1_1_2_and_the_control_and_no_1_5():
    rows = rows_of(table_of(CPT_LINEUP))
    assert list(rows) == [1.1, 1.2, 1.25]  # 1.5 is about training-free PI
    assert [rows[o]["verdict"] for o in rows] == ["replicated", "replicated", "supported"]
    assert rows[1.25]["kind"] == "control" and rows[1.1]["kind"] == "paper"
    for order, row in rows.items():
        assert row["rule"] == claims.claim(order).rule and row["n_units"] == 10 and row["unit"] == "document"
        assert row["model"] == "organism" and row["caveats"] == "" and row["sensitivity"] == ""
    assert rows[1.1]["estimate"] == pytest.approx(1.0, abs=0.05)
    # 1.2: (a) one part per extension, (b) one per extension other than NTK, past the CPT length
    assert rows[1.2]["parts"].count("(a) ") == 3 and rows[1.2]["parts"].count("(b) NTK (cpt-ntk) below") == 2
    assert "past the CPT length 512: 1024-2048" in rows[1.2]["details"]
    assert rows[1.25]["parts"].count("below RoPE (cpt-rope)") == 3


def test_the_estimates_are_the_registry_estimands():
    table = table_of(CPT_LINEUP, noise=0.0)  # exact: every per-document difference is the same number
    assert rules.difference(table, ORIGINAL, "PI (cpt-pi)", [512, 1024, 2048]).tolist() == pytest.approx(
        [(1 + 1 + 0.5) / 3] * 10)  # (a): original minus PI, mean over lengths past L0
    assert rules.difference(table, "PI (cpt-pi)", "NTK (cpt-ntk)", [1024, 2048]).tolist() == pytest.approx(
        [0.25] * 10)  # (b): PI minus NTK past the CPT length
    assert rules.difference(table, "RoPE (cpt-rope)", "NTK (cpt-ntk)", [512, 1024, 2048]).tolist() == pytest.approx(
        [2 / 3] * 10)  # 1.25: plain-RoPE CPT minus the extension past L0


def test_identical_differences_give_a_zero_width_interval_and_no_verdict():
    rows = rows_of(table_of(CPT_LINEUP, noise=0.0))
    assert {rows[o]["verdict"] for o in rows} == {"inconclusive"}
    assert "zero-width" in rows[1.1]["parts"]


def test_too_few_documents_are_inconclusive_whatever_the_effect():
    rows = rows_of(table_of(CPT_LINEUP, n_documents=5))
    assert {rows[o]["verdict"] for o in rows} == {"inconclusive"}
    assert "too few units: 5 documents" in rows[1.1]["parts"]


def test_no_rise_past_l0_is_not_replicated_and_noise_is_inconclusive():
    # the original model holds past L0 (flat): an interval inside +- ln 1.2 excludes an explosion
    assert rows_of(table_of({ORIGINAL: ("rope", flat)}))[1.1]["verdict"] == "not replicated"
    # a model that gets better with more context: the CI lies on the other side
    better = rows_of(table_of({ORIGINAL: ("rope", lambda length: -0.3 * (length > L0))}))[1.1]
    assert better["verdict"] == "not replicated" and "other side" in better["parts"]
    # noise as large as an explosion, no effect: neither
    assert rows_of(table_of({ORIGINAL: ("rope", flat)}, noise=1.0))[1.1]["verdict"] == "inconclusive"


def test_a_failure_hidden_by_averaging_all_positions_is_read_on_the_new_positions():
    table = table_of({ORIGINAL: ("rope", explodes)})
    assert (table["loss"] == 2.0).all()  # all positions: flat
    assert rows_of(table)[1.1]["verdict"] == "replicated"
    table = table.assign(loss=table["loss_new"], loss_new=table["loss"])  # all positions rise, new ones flat
    assert rows_of(table)[1.1]["verdict"] == "inconclusive"  # a zero-width interval: no explosion is read


def test_1_1_uses_the_first_length_past_l0_when_2_l0_is_missing_and_needs_l0():
    row = rows_of(table_of({ORIGINAL: ("rope", explodes)}, lengths=[128, 256, 384, 1024]))[1.1]
    assert row["verdict"] == "replicated" and "at 384, the first evaluated length past L0" in row["details"]
    row = rows_of(table_of({ORIGINAL: ("rope", explodes)}, lengths=[128, 512, 1024]))[1.1]
    assert row["verdict"] == "not testable" and "L0 = 256" in row["details"]


def test_a_control_as_good_as_the_extensions_is_not_supported():
    same = holds_to(1024, 0.5)
    lineup = {ORIGINAL: ("rope", explodes), "RoPE (cpt-rope)": ("rope", same), "PI (cpt-pi)": ("pi", same),
              "NTK (cpt-ntk)": ("ntk", flat)}
    assert rows_of(table_of(lineup))[1.25]["verdict"] == "partly supported"  # NTK beats it, PI does not
    del lineup["NTK (cpt-ntk)"]
    row = rows_of(table_of(lineup))[1.25]
    assert row["verdict"] == "not supported" and "equivalence" in row["parts"]


def test_an_ntk_no_better_than_the_others_makes_1_2_partly():
    lineup = dict(CPT_LINEUP, **{"NTK (cpt-ntk)": ("ntk", holds_to(1024, 0.5))})
    row = rows_of(table_of(lineup))[1.2]
    assert row["verdict"] == "partly"  # (a) replicated, (b) not replicated


def test_the_papers_ntk_is_ntk100_when_present():
    lineup = dict(CPT_LINEUP, **{"NTK100 (cpt-ntk100)": ("ntk100", flat)})
    parts = rows_of(table_of(lineup))[1.2]["parts"]
    assert parts.count("(b) NTK100 (cpt-ntk100) below") == 3  # PI, YaRN and the other NTK
    assert parts.count("(a) ") == 4


def test_without_a_plain_rope_cpt_model_the_control_is_not_testable():
    lineup = {k: v for k, v in CPT_LINEUP.items() if k != "RoPE (cpt-rope)"}
    row = rows_of(table_of(lineup))[1.25]
    assert row["verdict"] == "not testable" and "plain-RoPE CPT" in row["details"]


TRAINING_FREE = {ORIGINAL: ("rope", explodes), "PI (base)": ("pi", lambda length: 0.5),
                 "NTK (base)": ("ntk", flat)}


def test_a_training_free_lineup_grades_1_1_and_1_5_and_cannot_test_the_cpt_claims():
    for cpt_length in (0, None):
        rows = rows_of(table_of(TRAINING_FREE), cpt_length=cpt_length)
        assert list(rows) == [1.1, 1.2, 1.25, 1.5]
        assert rows[1.1]["verdict"] == "replicated"
        for order in (1.2, 1.25):
            assert rows[order]["verdict"] == "not testable" and "continual pretraining" in rows[order]["details"]
        assert rows[1.5]["verdict"] == "supported" and rows[1.5]["kind"] == "beyond"
        assert "inside: PI (base) above the original at L0" in rows[1.5]["parts"]
        assert "beyond: PI (base) below the original at 512" in rows[1.5]["parts"]
    # a real model's rows name it; past 2 L0 missing, 1.5 says which length it read
    table = table_of(TRAINING_FREE, lengths=[128, 256, 384])
    rows = rules.glance_rows(table, ORIGINAL, L0, 0, seed=0, model="smollm2")
    assert {row["model"] for row in rows} == {"smollm2"} and rows[-1]["order"] == 1.5
    assert "at 384, the first evaluated length past L0" in rows[-1]["details"]


def test_training_free_pi_without_a_cost_inside_l0_is_partly_supported():
    lineup = dict(TRAINING_FREE, **{"PI (base)": ("pi", holds_to(L0, 0.5))})  # as good as the original at L0
    assert rows_of(table_of(lineup), cpt_length=0)[1.5]["verdict"] == "partly supported"
    lineup = {ORIGINAL: ("rope", explodes), "NTK (base)": ("ntk", flat)}
    row = rows_of(table_of(lineup), cpt_length=0)[1.5]
    assert row["verdict"] == "not testable" and "no PI" in row["details"]


def test_pairing_cancels_document_difficulty():
    # the documents' spread (1 to 4 nats) dwarfs the 1-nat rise; unpaired, the intervals would overlap
    table = table_of({ORIGINAL: ("rope", explodes)}, noise=0.1)
    at = table[table["variant"] == ORIGINAL].groupby("length")["loss_new"]
    assert at.max()[256] > at.min()[512]
    row = rows_of(table)[1.1]
    assert row["ci_low"] > 0.8 and row["ci_high"] < 1.2
