"""Fig. 1: the curve summary (both aggregations, new positions) and the verdict rules, with
synthetic tables that must NOT replicate (a failure hidden by averaging, an undetermined
limit, a control as good as the extension, a checkpoint that misses its gate)."""

import math

import numpy as np
import pandas as pd
import pytest

from ropelib.findings.perplexity import analysis as fig1
from ropelib.findings.perplexity import verdicts as rules
from ropelib.models.variants import Variant

LENGTHS = [128, 256, 512, 1024, 2048]


def curve_of(ppl_by_variant: dict, spread: float = 0.0) -> pd.DataFrame:
    """A hand-made curves() table: variant -> (method, ppl_new at LENGTHS); CI = ppl_new * (1 -/+ spread)."""
    rows = []
    for variant, (method, values) in ppl_by_variant.items():
        for length, ppl in zip(LENGTHS, values):
            rows.append({"variant": variant, "method": method, "source": variant.lower(), "length": length,
                         "ppl": ppl, "ci_low": ppl, "ci_high": ppl, "ppl_new": ppl,
                         "new_ci_low": ppl * (1 - spread), "new_ci_high": ppl * (1 + spread)})
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def every_gate_passes(monkeypatch):
    monkeypatch.setattr(rules, "not_testable_reason", lambda variants, role="retrieval": "")


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


def test_without_l0_no_limit_is_measured_and_every_claim_is_not_testable():
    """The bar is the original model's perplexity at L0: without L0 among the lengths (a short
    one-off run of a real model) nothing is graded, and the rows say why, never a limit of 0."""
    # with an NTK beside another extension (the one-off SmolLM2 run: every training-free method)
    curve = curve_of({"a": ("rope", [1, 1, 1, 1, 1]), "b": ("pi", [1, 1, 1, 1, 1]), "c": ("ntk", [1, 1, 1, 1, 1])})
    limits = rules.extrapolation_limits(curve, pretrained_length=3000, reference="a")
    assert limits["limit_x"].isna().all() and limits["bar"].isna().all()
    assert rules.shown_limit(limits.iloc[0]) == "not measured (L0 not evaluated)"
    for cpt_length in (0, 1024):
        rows = rules.glance_rows(limits, "a", 3000, cpt_length, chapter="perplexity")
        assert {r["verdict"] for r in rows} == {"not testable"}
        assert "L0" in rows[0]["details"]


def test_curves_report_both_aggregations_and_the_new_positions():
    losses, new = [1.0, 2.0, 3.0, 2.5], [1.5, 2.5, 3.5, 3.0]
    table = pd.DataFrame({"variant": "v", "method": "pi", "source": "s", "length": 256, "document": list("abcd"),
                          "loss": losses, "loss_new": new})
    row = fig1.curves(table, n_boot=200).iloc[0]
    assert row["ppl"] == pytest.approx(math.exp(np.mean(losses)))
    assert row["ppl_new"] == pytest.approx(math.exp(np.mean(new)))
    assert row["ppl_doc_mean"] == pytest.approx(np.mean(np.exp(losses))) and row["ppl_doc_mean"] >= row["ppl"]
    assert row["new_ci_low"] <= row["ppl_new"] <= row["new_ci_high"]


ROPE_FAILS = [10, 8, 20, 30, 40]


def _rows(curve, cpt_length=512):
    limits = rules.extrapolation_limits(curve, 256, "RoPE (base)")
    return {row["order"]: row for row in rules.glance_rows(limits, "RoPE (base)", 256, cpt_length, chapter="t")}


def test_paper_rows_and_the_control_follow_their_rules():
    rows = _rows(curve_of({"RoPE (base)": ("rope", ROPE_FAILS), "RoPE (cpt-rope)": ("rope", [10, 8, 8, 20, 20]),
                           "PI (cpt-pi)": ("pi", [10, 8, 8, 8, 20]), "YaRN (cpt-yarn)": ("yarn", [10, 8, 8, 8, 20]),
                           "NTK (cpt-ntk)": ("ntk", [10, 8, 8, 8, 8])}))
    assert [rows[o]["verdict"] for o in (1.1, 1.2, 1.25)] == ["replicated", "replicated", "supported"]
    assert rows[1.25]["kind"] == "control" and rows[1.1]["kind"] == "paper"


def test_a_failure_hidden_by_averaging_all_positions_is_still_a_failure():
    # all-position ppl stays low at 512, but the positions 256..512 alone are over the bar
    curve = curve_of({"RoPE (base)": ("rope", ROPE_FAILS)})
    curve["ppl"] = 8.5
    assert rules.extrapolation_limits(curve, 256, "RoPE (base)").loc[0, "limit"] == 256


def test_a_control_as_good_as_the_extensions_does_not_replicate():
    same = [10, 8, 8, 8, 20]
    rows = _rows(curve_of({"RoPE (base)": ("rope", ROPE_FAILS), "RoPE (cpt-rope)": ("rope", same),
                           "PI (cpt-pi)": ("pi", same), "NTK (cpt-ntk)": ("ntk", [10, 8, 8, 8, 8])}))
    assert rows[1.25]["verdict"] == "partly supported"  # NTK beats it, PI does not
    rows = _rows(curve_of({"RoPE (base)": ("rope", ROPE_FAILS), "RoPE (cpt-rope)": ("rope", same),
                           "PI (cpt-pi)": ("pi", same)}))
    assert rows[1.25]["verdict"] == "not supported"


def test_noise_that_straddles_the_bar_is_inconclusive_not_partly():
    # every limit undetermined (2x-4x), the control's too: no part is significant either way
    noisy = [10, 8, 8, 9.3, 20]
    rows = _rows(curve_of({"RoPE (base)": ("rope", [10, 8, 9.3, 20, 20]), "RoPE (cpt-rope)": ("rope", noisy),
                           "PI (cpt-pi)": ("pi", noisy), "NTK (cpt-ntk)": ("ntk", noisy)}, spread=0.05), cpt_length=512)
    assert rows[1.1]["verdict"] == "inconclusive"  # 1x-2x: both "explodes at L0" and "holds past it"
    assert rows[1.25]["verdict"] == "inconclusive"


def test_undetermined_limits_cannot_earn_ntk_furthest():
    curve = curve_of({"RoPE (base)": ("rope", ROPE_FAILS), "PI (cpt-pi)": ("pi", [10, 8, 8, 9.3, 20]),
                      "NTK (cpt-ntk)": ("ntk", [10, 8, 8, 9.3, 9.3])}, spread=0.05)
    assert _rows(curve)[1.2]["verdict"] == "inconclusive"  # neither part separates: PI 2x-4x vs CPT 2x, NTK 2x-8x


def test_no_control_or_a_failed_gate_is_not_testable(monkeypatch):
    rows = _rows(curve_of({"RoPE (base)": ("rope", ROPE_FAILS), "PI (cpt-pi)": ("pi", [10, 8, 8, 8, 20])}))
    assert rows[1.25]["verdict"] == "not testable"
    monkeypatch.setattr(rules, "not_testable_reason", lambda variants, role="retrieval": "cpt-pi is absent")
    rows = _rows(curve_of({"RoPE (base)": ("rope", ROPE_FAILS), "PI (cpt-pi)": ("pi", [10, 8, 8, 8, 20])}))
    assert {row["verdict"] for row in rows.values()} == {"not testable"}
    assert "absent" in rows[1.2]["details"]


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


def test_training_free_extensions_cannot_grade_the_cpt_claim():
    # a real model run training-free: the extensions extend far, but 1.2 is about CPT models
    rows = _rows(curve_of({"RoPE (base)": ("rope", ROPE_FAILS), "NTK (base)": ("ntk", [10, 8, 8, 8, 8]),
                           "PI (base)": ("pi", [10, 8, 8, 8, 20])}), cpt_length=0)
    assert rows[1.2]["verdict"] == "not testable" and "continual pretraining" in rows[1.2]["details"]
    assert rows[1.1]["verdict"] == "replicated"  # the original model's own claim needs no CPT
