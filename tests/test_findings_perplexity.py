"""ropelib.findings.perplexity: the extrapolation-limit rule, the curve summary and the Fig. 1 verdicts."""

import math

import numpy as np
import pandas as pd
import pytest

from ropelib.findings import perplexity as fig1
from ropelib.variants import Variant

LENGTHS = [128, 256, 512, 1024, 2048]


def curve_of(ppl_by_variant: dict[str, tuple[str, list[float]]]) -> pd.DataFrame:
    """A hand-made curves() table: variant -> (method, ppl at LENGTHS)."""
    rows = [{"variant": variant, "method": method, "length": length, "ppl": ppl, "ci_low": ppl, "ci_high": ppl}
            for variant, (method, values) in ppl_by_variant.items() for length, ppl in zip(LENGTHS, values)]
    return pd.DataFrame(rows)


def test_limit_is_the_last_length_before_the_first_failure():
    curve = curve_of({
        "original": ("rope", [10, 8, 12, 8, 8]),  # sets the bar 1.2 * 8 = 9.6; fails at 512, recovery ignored
        "graceful": ("pi", [10, 8, 9, 9.5, 20]),  # holds to 1024, fails at 2048
        "flat": ("ntk", [10, 7, 7, 6, 5]),  # never fails: censored at the longest length
        "at-the-bar": ("yarn", [10, 9.6, 9.6, 9.6, 9.61]),  # <= the bar holds, just above it fails
        "poor": ("pi", [30, 25, 25, 25, 25]),  # over the bar at L0 already: no limit
    })
    limits = fig1.extrapolation_limits(curve, pretrained_length=256, reference="original").set_index("variant")
    assert limits["bar"].eq(9.6).all()
    assert limits.loc["original", ["limit", "limit_x", "first_failure"]].tolist() == [256, 1.0, 512]
    assert limits.loc["graceful", ["limit", "limit_x", "censored", "first_failure"]].tolist() == [1024, 4.0, False, 2048]
    assert limits.loc["graceful", "ratio_at_failure"] == pytest.approx(20 / 8)
    assert limits.loc["flat", "limit"] == 2048 and limits.loc["flat", "censored"]
    assert math.isnan(limits.loc["flat", "first_failure"])
    assert limits.loc["at-the-bar", ["limit", "first_failure"]].tolist() == [1024, 2048]
    assert math.isnan(limits.loc["poor", "limit"]) and limits.loc["poor", "limit_x"] == 0
    assert limits.loc["poor", ["first_failure", "ppl_at_L0"]].tolist() == [256, 25]


def test_limit_needs_the_original_model_at_l0():
    curve = curve_of({"a": ("rope", [1, 1, 1, 1, 1])})
    with pytest.raises(ValueError, match="pretrained length 300"):
        fig1.extrapolation_limits(curve, pretrained_length=300, reference="a")
    with pytest.raises(ValueError, match="'b'"):
        fig1.extrapolation_limits(curve, pretrained_length=256, reference="b")


def test_tolerance_is_a_parameter():
    curve = curve_of({"a": ("pi", [10, 8, 9, 9.5, 20])})
    assert fig1.extrapolation_limits(curve, 256, "a", tolerance=1.1).loc[0, "limit"] == 256  # 9 > 8.8 already
    assert fig1.extrapolation_limits(curve, 256, "a", tolerance=3.0).loc[0, "censored"]


def test_curves_are_exp_of_the_mean_loss_with_a_bootstrap_band():
    losses = [1.0, 2.0, 3.0, 2.5]
    table = pd.DataFrame({"variant": "v", "method": "pi", "length": 256, "document": list("abcd"), "loss": losses})
    row = fig1.curves(table, n_boot=200).iloc[0]
    assert row["ppl"] == pytest.approx(math.exp(np.mean(losses)))
    assert row["ci_low"] <= row["ppl"] <= row["ci_high"]
    assert math.exp(min(losses)) <= row["ci_low"] and row["ci_high"] <= math.exp(max(losses))
    single = fig1.curves(table.iloc[:1]).iloc[0]
    assert single["ppl"] == pytest.approx(math.e) and math.isnan(single["ci_low"])


def test_limits_table_shows_censoring_and_the_papers_limits():
    curve = curve_of({"RoPE (base)": ("rope", [10, 8, 20, 30, 40]), "RoPE (cpt-rope)": ("rope", [10, 8, 8, 8, 30]),
                      "NTK (cpt-ntk)": ("ntk", [10, 8, 7, 6, 5]), "PI (base)": ("pi", [30, 25, 25, 25, 25])})
    shown = fig1.limits_table(fig1.extrapolation_limits(curve, 256, "RoPE (base)"), reference="RoPE (base)")
    assert shown.loc["RoPE (base)", ["limit (tokens)", "ours (x L0)"]].tolist() == ["256", "1x"]
    assert shown.loc["RoPE (base)", "paper, after CPT (x L0)"] == "1x"
    assert shown.loc["RoPE (cpt-rope)", "paper, after CPT (x L0)"] == "-"  # not in the paper
    assert shown.loc["NTK (cpt-ntk)", ["limit (tokens)", "ours (x L0)"]].tolist() == [">= 2048", ">= 8x"]
    assert shown.loc["NTK (cpt-ntk)", "paper, after CPT (x L0)"] == "32x"
    assert shown.loc["PI (base)", ["limit (tokens)", "ours (x L0)", "first length over the bar"]].tolist() == \
        ["none", "none", "256"]
    assert shown.loc["RoPE (base)", "first length over the bar"] == "512"


@pytest.mark.parametrize("rope, pi, yarn, ntk, expected", [
    ([10, 8, 20, 30, 40], [10, 8, 8, 8, 20], [10, 8, 8, 8, 20], [10, 8, 8, 8, 8], ("replicated", "replicated")),
    # NTK only ties PI and YaRN: "NTK furthest" is not shown
    ([10, 8, 20, 30, 40], [10, 8, 8, 8, 20], [10, 8, 8, 8, 20], [10, 8, 8, 8, 20], ("replicated", "partly")),
    # RoPE holds to 2 L0 (partly); NTK one doubling further than PI and YaRN
    ([10, 8, 8.5, 30, 40], [10, 8, 8, 8, 30], [10, 8, 8, 8, 30], [10, 8, 8, 8, 8], ("partly", "replicated")),
    # an extension no better than RoPE
    ([10, 8, 8, 8, 40], [10, 8, 20, 30, 30], [10, 8, 8, 8, 8], [10, 8, 8, 8, 8], ("not replicated", "not replicated")),
])
def test_glance_verdicts_follow_the_stated_rules(rope, pi, yarn, ntk, expected):
    curve = curve_of({"RoPE (base)": ("rope", rope), "PI (cpt-pi)": ("pi", pi), "YaRN (cpt-yarn)": ("yarn", yarn),
                      "NTK (cpt-ntk)": ("ntk", ntk)})
    limits = fig1.extrapolation_limits(curve, 256, "RoPE (base)")
    rows = fig1.glance_rows(limits, "RoPE (base)", 256, cpt_length=512, chapter="test")
    assert [row["order"] for row in rows] == [1.1, 1.2]
    assert tuple(row["verdict"] for row in rows) == expected
    assert all(row["rule"] and row["finding"] == "Finding 1" for row in rows)


def test_extensions_must_outlast_the_cpt_length():
    curve = curve_of({"RoPE (base)": ("rope", [10, 8, 20, 30, 40]), "PI (cpt-pi)": ("pi", [10, 8, 8, 20, 20]),
                      "YaRN (cpt-yarn)": ("yarn", [10, 8, 8, 20, 20]), "NTK (cpt-ntk)": ("ntk", [10, 8, 8, 8, 8])})
    limits = fig1.extrapolation_limits(curve, 256, "RoPE (base)")
    verdict = fig1.glance_rows(limits, "RoPE (base)", 256, cpt_length=512, chapter="test")[1]["verdict"]
    assert verdict == "partly"  # PI and YaRN hold to 512 = the CPT length, not beyond


def test_reference_variant_checks_before_any_model_loads():
    variants = [Variant("rope", "base", "RoPE (base)"), Variant("pi", "base", "PI (base)")]
    assert fig1.reference_variant(variants, "rope:base", 256, LENGTHS).label == "RoPE (base)"
    with pytest.raises(ValueError, match="reference='ntk:base'"):
        fig1.reference_variant(variants, "ntk:base", 256, LENGTHS)
    with pytest.raises(ValueError, match="pretrained_length=300"):
        fig1.reference_variant(variants, "rope:base", 300, LENGTHS)
