"""Chapter 0's checks on synthetic tables (the rules, each with a table that must fail it; the
position bands; the figure) and its manifest tables on manifest-only checkpoints in a tmp folder
(gates, recipes as trained, curves), plus the corpus table on this interpreter's corpus."""

import math

import numpy as np
import pandas as pd
import pytest
from manifest_fixtures import organisms, write_checkpoint

from ropelib.findings.model_organism import analysis as checks
from ropelib.text import corpus
from ropelib.findings.model_organism import report

L0 = checks.L0


def _beyond(ppl, needles):
    rows = [{"checkpoint": "base", "length": f * L0, "loss": math.log(p), "ppl": 4.0, "ppl new": p, "needle accuracy": a,
             "loss past L0": math.log(p) if f == 4 else math.nan} for f, p, a in zip((1, 2, 4), ppl, needles)]
    return pd.DataFrame(rows).set_index(["checkpoint", "length"])


@pytest.mark.parametrize("ppl, needles, verdict", [
    ((4.0, 6.0, 8.0), (1.0, 0.2, 0.0), "fails visibly"),       # both rules hold
    ((4.0, 5.0, 7.9), (1.0, 0.2, 0.0), "does NOT fail visibly"),  # perplexity x1.98 < 2
    ((4.0, 9.0, 12.0), (1.0, 0.8, 0.6), "does NOT fail visibly"),  # needles keep 60% > half
])
def test_beyond_verdict_needs_both_rules(ppl, needles, verdict):
    lines = checks.beyond_verdict(_beyond(ppl, needles))  # the whole-sequence ppl stays flat: it is not read
    assert lines[-1].endswith(verdict) and len(lines) == 4


def test_premises_name_the_glance_rows_they_condition():
    table = checks.premises(_beyond((4.0, 5.0, 6.24), (0.96, 0.27, 0.0))).set_index("premise")
    assert table["holds"].tolist() == [False, True]  # x1.56: perplexity does not fail visibly; retrieval does
    assert table["claims"].iloc[0].split() == ["1.1", "1.2", "1.25", "1.3", "1.35"]
    assert "x1.56 at 4 L0" in table["numbers"].iloc[0]


@pytest.fixture
def checkpoints(monkeypatch, tmp_path):
    root = organisms(monkeypatch, tmp_path)
    write_checkpoint(root, "base", [(32, 100, 32), (256, 300, 8)])
    write_checkpoint(root, "native-4x", [(32, 100, 32), (1024, 250, 4)])  # 1,024,000 of 1,126,400 at 1024
    write_checkpoint(root, "cpt-pi", [(128, 20, 16), (1024, 40, 4)], parent="base", method="pi", factor=4.0,
                     gate=False, known_miss="retrieval 0.5 at 1024 (measured)")
    write_checkpoint(root, "ntk8-short", [(128, 20, 16), (256, 60, 16)], parent="base", method="ntk", factor=8.0,
                     gate=None)
    return ["base", "native-4x", "cpt-pi", "ntk8-short"]


def test_gate_table_lists_every_gate_length_and_the_summary_counts_checkpoints(checkpoints):
    gates = report.gate_table(checkpoints)
    assert list(gates.loc["base"].index) == [256] and list(gates.loc["native-4x"].index) == [256, 1024]
    assert gates.loc[("cpt-pi", 1024), "known miss"] == "retrieval 0.5 at 1024 (measured)"
    assert gates.loc[("ntk8-short", "none"), "passed"] == False  # noqa: E712 (a smoke run: no gate rows)
    summary = report.gate_summary(checkpoints)
    assert summary.startswith("2 of 4 checkpoints pass both gates")
    assert "cpt-pi: retrieval 0.5 at 1024 (measured)" in summary and "ntk8-short: not passed" in summary


def test_gate_verdict_reads_the_manifest_gate(checkpoints):
    gates = report.gate_table(checkpoints)
    assert checks.gate_verdict(gates).endswith("passes") and "200/200" in checks.gate_verdict(gates)
    assert checks.gate_verdict(gates, "cpt-pi").endswith("FAILS")
    assert checks.gate_verdict(gates, "ntk8-short").endswith("FAILS")  # no gate recorded is no pass


def test_recipe_table_describes_each_checkpoint_as_trained(checkpoints):
    table = report.recipe_table(checkpoints)
    native = table.loc["native-4x"]
    assert native["longest length"] == 1024 and native["share at longest"] == round(1_024_000 / 1_126_400, 3)
    assert native["tokens by length (M)"] == "32: 0.102, 1024: 1.02"
    assert table.loc["cpt-pi", "from scratch (M)"] == round((204_800 + 716_800) / 1e6, 3)
    assert table.loc["cpt-pi", "RoPE"] == "pi x4" and table.loc["base", "from"] == "scratch"
    assert table["parameters"].nunique() == 1 and table.loc["base", "parameters"] > 0
    lines = report.recipe_lines(table)
    assert lines[-1].startswith("native-4x: 90.9% of its 1.126M tokens at 1024 tokens (4 L0)")


def test_training_curves_read_the_dev_loss(checkpoints):
    curves = report.training_curves(["base", "cpt-pi"])
    assert list(curves["dev loss"]) == [2.0, 1.5, 2.0, 1.5]
    assert curves[curves["checkpoint"] == "cpt-pi"]["tokens (M)"].min() > 0.7  # starts at its parent's total


def test_loss_verdict_needs_half_the_unigram_baseline():
    sanity = pd.DataFrame({"test loss": [1.0]}, index=pd.Index(["base"], name="checkpoint"))
    assert checks.loss_verdict(sanity, unigram=2.0).endswith(": far below")
    assert checks.loss_verdict(sanity, unigram=1.9).endswith("NOT far below")


def test_corpus_table_has_three_splits_and_their_overlap_with_train():
    table = report.corpus_table()
    assert list(table.index) == list(corpus.SPLITS)
    assert table["share of bytes"].sum() == pytest.approx(1.0, abs=0.002)
    assert math.isnan(table.loc["train", "long lines also in train"])
    assert 0 <= table.loc["test", "long lines also in train"] < 0.1 and 0 <= table.loc["dev", "long lines also in train"] < 0.1


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


def test_the_chapter_shows_every_checkpoint_by_default_and_keeps_seed_and_device():
    from ropelib.publish import params
    from ropelib.training import recipes
    from ropelib.paths import ROOT

    declared = params.declared(ROOT / "chapters" / "model-organism.ipynb")
    assert set(declared["checkpoints"].default) == set(recipes.SPECS) == set(declared["checkpoints"].choices)
    assert {"seed", "device"} <= set(declared) and "OVERWRITING" in declared["retrain"].description


def test_a_manifest_without_a_reason_reads_it_from_the_recipes(checkpoints, monkeypatch):
    """Checkpoints trained before their reason was written down carry ``known_miss: null``: the report
    takes the reason from ``recipes.KNOWN_MISSES`` rather than saying none was recorded."""
    from ropelib.training import recipes
    monkeypatch.setitem(recipes.KNOWN_MISSES, "ntk8-short", "why it may miss (from the recipes)")
    summary = report.gate_summary(checkpoints)
    assert "ntk8-short: why it may miss (from the recipes)" in summary and "no known-miss" not in summary
    assert "cpt-pi: retrieval 0.5 at 1024 (measured)" in summary  # the manifest's own reason comes first
    assert report.gate_table(checkpoints).loc[("ntk8-short", "none"), "known miss"] == "why it may miss (from the recipes)"
