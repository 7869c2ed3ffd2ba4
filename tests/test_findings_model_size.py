"""Appendix "Model size" (ropelib.findings.model_size): PI's gain over RoPE per size and the
"PI helps the larger model more" rule, pinned on synthetic needle and perplexity tables."""

import math

import pandas as pd
import pytest

from ropelib import results
from ropelib.findings import model_size

L0 = 256
LENGTHS = [256, 512, 1024]
DEPTHS = [0, 25, 50, 75, 100]
PAIRS = {"S": ("RoPE (S)", "PI (S)"), "M": ("RoPE (M)", "PI (M)"), "L": ("RoPE (L)", "PI (L)")}


def tables(pi_pass: dict, pi_loss_saved: dict, needles: int = 2):
    """Trials and per-document losses: RoPE passes only at L0; PI (size s) passes a share pi_pass[s]
    of each cell's needles beyond L0 and saves pi_loss_saved[s] nats per token (with a small wiggle)."""
    trials, ppl = [], []
    for size, (rope, pi) in PAIRS.items():
        for length in LENGTHS:
            for depth in DEPTHS:
                share = round(pi_pass[size] * needles)
                for i in range(needles):
                    trials.append({"method": rope, "length": length, "depth": float(depth), "passed": length == L0,
                                   "entropy": 5.0, "needle_mass": 0.0})
                    trials.append({"method": pi, "length": length, "depth": float(depth),
                                   "passed": length == L0 or i < share, "entropy": 4.0, "needle_mass": 0.0})
            for d in range(6):
                wiggle = 0.01 * math.sin(d + length)
                ppl.append({"method": rope, "length": length, "document": f"doc{d}", "loss": 3.0 + wiggle})
                saved = pi_loss_saved[size] if length > L0 else 0.0
                ppl.append({"method": pi, "length": length, "document": f"doc{d}", "loss": 3.0 - saved + 2 * wiggle})
    return pd.DataFrame(trials), pd.DataFrame(ppl)


def test_gains_are_pi_minus_rope_beyond_L0():
    trials, ppl = tables({"S": 0.0, "M": 0.5, "L": 1.0}, {"S": 0.1, "M": 0.2, "L": 0.4})
    gains = model_size.gains(trials, ppl, PAIRS, beyond=L0).set_index(["size", "metric"])
    assert gains.loc[("S", "needle pass rate"), "gain"] == 0.0
    assert gains.loc[("M", "needle pass rate"), "gain"] == 0.5
    assert gains.loc[("L", "needle pass rate"), "n"] == 2 * len(DEPTHS)  # cells beyond L0 only
    assert gains.loc[("L", "loss saved (nats/token)"), "gain"] == pytest.approx(0.4, abs=0.02)
    assert gains.loc[("L", "loss saved (nats/token)"), "n"] == 2 * 6  # (length, document) pairs beyond L0


def test_growing_gain_is_replicated_and_written_as_glance_rows():
    trials, ppl = tables({"S": 0.0, "M": 0.5, "L": 1.0}, {"S": 0.1, "M": 0.2, "L": 0.4})
    trend = model_size.size_trend(trials, ppl, PAIRS, beyond=L0)
    assert trend["monotone"].all() and (trend["ci_low"] > 0).all()
    rows = model_size.glance_rows(trend)
    assert [r["verdict"] for r in rows] == ["replicated", "replicated"]
    assert [r["order"] for r in rows] == [9.1, 9.2] and all(r["chapter"] == "model-size" for r in rows)
    assert list(pd.DataFrame(rows, columns=results.GLANCE_COLUMNS).columns) == results.GLANCE_COLUMNS


@pytest.mark.parametrize("pi_pass, verdict", [
    ({"S": 0.5, "M": 0.0, "L": 1.0}, "partly"),  # largest gains most, but not monotone
    ({"S": 1.0, "M": 0.5, "L": 0.0}, "not replicated"),
    ({"S": 0.0, "M": 0.0, "L": 0.0}, "not replicated"),  # no gain anywhere: nothing grows
])
def test_needle_rule(pi_pass, verdict):
    trials, ppl = tables(pi_pass, {"S": 0.1, "M": 0.1, "L": 0.1})
    trend = model_size.size_trend(trials, ppl, PAIRS, beyond=L0).set_index("metric")
    assert model_size.verdict(trend.loc["needle pass rate"].to_dict()) == verdict


@pytest.mark.parametrize("largest_gain, difference, low, monotone, verdict", [
    (0.5, 0.3, 0.1, True, "replicated"), (0.5, 0.3, -0.1, True, "partly"), (0.5, 0.3, 0.1, False, "partly"),
    (0.0, 0.0, 0.0, True, "not replicated"), (0.1, -0.2, -0.4, False, "not replicated"),
    (0.0, 0.1, 0.05, True, "not replicated"),  # the largest size loses less, but PI helps no one
])
def test_rule_on_a_trend_row(largest_gain, difference, low, monotone, verdict):
    row = {"largest_gain": largest_gain, "difference": difference, "ci_low": low, "monotone": monotone}
    assert model_size.verdict(row) == verdict


def test_size_table_reports_pass_rates_at_and_beyond_L0():
    trials, _ = tables({"S": 0.0, "M": 0.5, "L": 1.0}, {"S": 0, "M": 0, "L": 0})
    table = model_size.size_table(trials, {"RoPE (S)": 10, "RoPE (M)": 20, "RoPE (L)": 30}, PAIRS, L0)
    assert list(table["parameters"]) == [10, 20, 30]
    assert (table["RoPE pass at L0"] == 1.0).all() and (table["RoPE pass beyond L0"] == 0.0).all()
    assert list(table["PI pass beyond L0"]) == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("rope, pi, sizes, message", [
    (["rope:a", "rope:b"], ["pi:a"], ["S", "L"], "same length"),
    (["rope:a"], ["pi:a"], ["S"], "same length >= 2"),
    (["rope:a", "rope:b"], ["pi:a", "pi:b"], ["S", "S"], "duplicates"),
])
def test_size_pairs_fail_before_loading_anything(rope, pi, sizes, message):
    with pytest.raises(ValueError, match=message):
        model_size.size_pairs(rope, pi, sizes)
