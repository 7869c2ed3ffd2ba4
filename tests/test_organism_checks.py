"""Chapter 0's checks on synthetic tables: the rules, the position bands, the figure."""

import math

import numpy as np
import pandas as pd
import pytest

from ropelib.findings import organism_checks as checks

L0 = checks.L0


def _beyond(ppl, needles):
    rows = [{"checkpoint": "base", "length": f * L0, "loss": math.log(p), "ppl": p, "needle accuracy": a,
             "loss past L0": math.log(p) if f == 4 else math.nan} for f, p, a in zip((1, 2, 4), ppl, needles)]
    return pd.DataFrame(rows).set_index(["checkpoint", "length"])


@pytest.mark.parametrize("ppl, needles, verdict", [
    ((4.0, 6.0, 8.0), (1.0, 0.2, 0.0), "fails visibly"),       # both rules hold
    ((4.0, 5.0, 7.9), (1.0, 0.2, 0.0), "does NOT fail visibly"),  # perplexity x1.98 < 2
    ((4.0, 9.0, 12.0), (1.0, 0.8, 0.6), "does NOT fail visibly"),  # needles keep 60% > half
])
def test_beyond_verdict_needs_both_rules(ppl, needles, verdict):
    lines = checks.beyond_verdict(_beyond(ppl, needles))
    assert lines[-1].endswith(verdict) and len(lines) == 4


def test_gate_verdict_is_at_least_the_gate():
    sanity = pd.DataFrame({"needle accuracy": [checks.GATE, checks.GATE - 0.01], "ci low": 0.8, "ci high": 1.0},
                          index=pd.Index(["base", "other"], name="checkpoint"))
    assert checks.gate_verdict(sanity).endswith("passes")
    assert checks.gate_verdict(sanity.rename(index={"base": "x", "other": "base"})).endswith("FAILS")


def test_band_table_averages_each_band_and_compares_it_to_the_first():
    positions = np.arange(1, 4 * L0)
    loss = np.where(positions < L0, 1.0, np.where(positions < 2 * L0, 1.5, 2.0))  # a model failing past L0
    profile = pd.concat([pd.DataFrame({"checkpoint": "failing", "position": positions, "loss": loss}),
                         pd.DataFrame({"checkpoint": "flat", "position": positions, "loss": 1.0})])
    bands = checks.band_table(profile)
    labels = [f"1-{L0 - 1}", f"{L0}-{2 * L0 - 1}", f"{2 * L0}-{4 * L0 - 1}"]
    assert list(bands["loss (nats/byte)"].columns) == labels
    assert list(bands.index) == ["failing", "flat"]  # the order given, not sorted
    assert list(bands.loc["failing", "loss (nats/byte)"]) == [1.0, 1.5, 2.0]
    assert bands.loc["failing", ("ppl vs first L0", labels[-1])] == pytest.approx(math.exp(1.0), rel=1e-2)
    assert list(bands.loc["flat", "ppl vs first L0"]) == [1.0, 1.0, 1.0]
    lines = checks.profile_lines(bands)
    assert lines[0].startswith("failing: 1 nats/byte") and "x2.72" in lines[0]


def test_band_edges_end_at_the_length():
    assert checks._band_edges(8 * L0) == [1, L0, 2 * L0, 4 * L0, 8 * L0]
    assert checks._band_edges(3 * L0) == [1, L0, 2 * L0, 3 * L0]


def test_position_figure_has_labelled_axes_and_marks_L0():
    profile = pd.DataFrame({"checkpoint": "base", "position": np.arange(1, 2 * L0), "loss": 1.0})
    figure = checks.plot_position_profile(profile, unigram=3.2)
    axis = figure.axes[0]
    assert "position" in axis.get_xlabel() and "loss" in axis.get_ylabel()
    assert any(list(line.get_xdata()) == [L0, L0] for line in axis.lines)  # the axvline at L0
