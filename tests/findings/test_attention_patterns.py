"""ropelib.findings.attention_patterns.analysis and attention_verdicts: query positions, profiles, paired statistics, orderings."""

import numpy as np
import pandas as pd
import pytest
import torch

from ropelib.models import organism
from ropelib.findings.attention_patterns import analysis as fig2
from ropelib.findings.attention_patterns import verdicts
from ropelib.text.tokenizer import ByteTokenizer

torch.set_num_threads(1)


def test_query_positions_are_the_last_token_and_draws_from_the_last_quarter():
    positions = fig2.query_positions(1024, 16, seed=3)
    assert len(positions) == 16 == len(set(positions.tolist()))
    assert positions[-1] == 1023 and positions.min() >= 768 and np.all(np.diff(positions) > 0)
    assert np.array_equal(positions, fig2.query_positions(1024, 16, seed=3))  # seeded
    assert fig2.query_positions(64, 1, seed=0).tolist() == [63]
    with pytest.raises(ValueError, match="n_queries=20"):
        fig2.query_positions(64, 20, seed=0)  # the last quarter of 64 tokens holds 16 positions


def test_js_of_mean_distributions_and_its_paired_bootstrap():
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(6), size=(2, 5, 3))  # (layer, sequence, head, bin)
    assert fig2.paired(fig2.js_of_means, a, a.copy(), n_boot=100) == (0, 0, 0)
    left, right = np.zeros((1, 4, 1, 2)), np.zeros((1, 4, 1, 2))
    left[..., 0], right[..., 1] = 1, 1  # disjoint supports: JS is exactly 1 bit
    assert fig2.paired(fig2.js_of_means, left, right, n_boot=50)[0] == pytest.approx(1.0)
    b = rng.dirichlet(np.ones(6), size=(2, 5, 3))
    js, low, high = fig2.paired(fig2.js_of_means, a, b, n_boot=200)
    assert 0 < low <= js <= high < 1
    with pytest.raises(ValueError, match="same sequences"):
        fig2.paired(fig2.js_of_means, a, b[:, :4])


def test_mean_profile_weights_layers_heads_and_sequences_equally():
    values = np.zeros((2, 1, 1, 2))
    values[0, 0, 0] = [1, 0]
    values[1, 0, 0] = [0.5, 0.5]
    assert fig2.mean_profile(values).tolist() == [0.75, 0.25]


def test_log_gap_is_the_mean_vertical_distance_in_orders_of_magnitude():
    reference = np.full((1, 3, 1, 4), 0.01)
    shifted = reference * np.array([10, 10, 0.1, 1])  # +1, +1, -1, 0 orders of magnitude
    assert fig2.log_gap(shifted, reference) == pytest.approx(0.75)
    assert fig2.log_gap(reference * 2, reference) == pytest.approx(np.log10(2))  # not rescaled away
    value, low, high = fig2.paired(fig2.log_gap, shifted, reference, n_boot=50)
    assert value == low == high == pytest.approx(0.75)  # identical sequences: no spread


def table(rows):
    return pd.DataFrame(rows, columns=["variant", "method", "compared with", "value", "ci_low", "ci_high"]).assign(
        statistic="JS (bits)")


@pytest.mark.parametrize("leader, expected", [
    ((0.5, 0.4, 0.6), "replicated"),  # CI above every other CI
    ((0.5, 0.25, 0.6), "partly"),  # above C, overlaps B: a significant part
    ((0.31, 0.12, 0.5), "inconclusive"),  # largest point, but its CI overlaps every other: noise decides nothing
    ((0.2, 0.1, 0.3), "inconclusive"),  # overlaps both
    ((0.01, 0.0, 0.02), "not replicated"),  # below both
])
def test_dominance_rule(leader, expected):
    rows = table([("A", "pi", "ref", *leader), ("B", "yarn", "ref", 0.2, 0.1, 0.3), ("C", "ntk", "ref", 0.1, 0.05, 0.2)])
    assert verdicts.dominates(rows, "A", ["B", "C"]) == expected


def synthetic_js(values):
    """A Table 1 of the default variants, JS values in the order base, cpt-rope, pi, ntk, yarn."""
    labels = [("RoPE (base)", "rope"), ("RoPE (cpt-rope)", "rope"), ("PI (cpt-pi)", "pi"), ("NTK (cpt-ntk)", "ntk"),
              ("YaRN (cpt-yarn)", "yarn")]
    return table([(label, method, "target", js, js * 0.9, js * 1.1) for (label, method), js in zip(labels, values)])


SOURCES = {label: f"{label.split()[0].lower()}:{label[label.index('(') + 1:-1]}" for label in
           ["RoPE (base)", "RoPE (cpt-rope)", "PI (cpt-pi)", "NTK (cpt-ntk)", "YaRN (cpt-yarn)", "RoPE (native-4x)"]}


@pytest.fixture(autouse=True)
def every_gate_passes(monkeypatch):
    monkeypatch.setattr(verdicts, "not_testable_reason", lambda variants, role="retrieval": "")


def test_ordering_roles_and_glance_rows_at_l0():
    js = synthetic_js([0.0, 0.01, 0.2, 0.01, 0.02])
    assert verdicts.ordering_roles(js, 256, 256, "RoPE (base)") == ("PI (cpt-pi)", ["NTK (cpt-ntk)", "YaRN (cpt-yarn)"])
    rows = verdicts.glance_rows(js, None, 256, 256, "RoPE (base)", "RoPE (native-4x)", chapter="test", sources=SOURCES)
    assert [(r["order"], r["verdict"]) for r in rows] == [(1.4, "replicated")]
    assert rows[0]["ours"].startswith("PI (cpt-pi) 0.2 [0.18, 0.22]")
    assert rows[0]["ours"].endswith("(first = 20x NTK (cpt-ntk), 10x YaRN (cpt-yarn))")


def test_ordering_roles_and_glance_rows_beyond_l0():
    js = synthetic_js([0.3, 0.05, 0.1, 0.1, 0.28])  # RoPE largest, YaRN's CI overlaps it: partly
    gap = synthetic_js([0.3, 0.05, 0.1, 0.1, 0.1])
    assert verdicts.ordering_roles(js, 1024, 256, "RoPE (base)") == \
        ("RoPE (base)", ["PI (cpt-pi)", "NTK (cpt-ntk)", "YaRN (cpt-yarn)"])  # cpt-rope is not an extension
    rows = verdicts.glance_rows(js, gap, 1024, 256, "RoPE (base)", "RoPE (native-4x)", chapter="test", sources=SOURCES)
    # gap and JS are one capture: one claim whose measures combine (gap replicated, JS partly: partly)
    assert [(r["order"], r["verdict"], r["kind"]) for r in rows] == [
        (1.3, "partly", "paper"), (1.35, "not supported", "control")]  # cpt-rope's gap and JS 0.05 < the extensions'
    assert "gap to the original L0 pattern (Fig. 2): replicated" in rows[0]["details"]
    assert "(Table 1): partly" in rows[0]["details"]
    assert verdicts.ordering_roles(js[js["method"] == "rope"], 1024, 256, "RoPE (base)") is None


def test_the_control_must_lose_to_every_extension():
    gap = synthetic_js([0.3, 0.25, 0.1, 0.1, 0.1])  # plain-RoPE CPT clearly further than every extension
    rows = verdicts.glance_rows(None, gap, 1024, 256, "RoPE (base)", None, chapter="test", sources=SOURCES)
    # no natively long model: the Table 1 measure is not measured, so the claim is at most partly
    assert [(r["order"], r["verdict"]) for r in rows] == [(1.3, "partly"), (1.35, "partly supported")]
    assert "JS to the natively long model (none given) (Table 1): not measured" in rows[0]["details"]
    same = synthetic_js([0.3, 0.1, 0.1, 0.1, 0.1])  # the control as good as the extensions: CIs overlap
    assert verdicts.glance_rows(None, same, 1024, 256, "RoPE (base)", None, "t", SOURCES)[1]["verdict"] == \
        "inconclusive"


def test_a_missed_gate_makes_a_row_not_testable(monkeypatch):
    monkeypatch.setattr(verdicts, "not_testable_reason", lambda variants, role="retrieval": "native-4x is absent")
    rows = verdicts.glance_rows(synthetic_js([0.3, 0.05, 0.1, 0.1, 0.1]), None, 1024, 256, "RoPE (base)",
                                "RoPE (native-4x)", chapter="test", sources=SOURCES)
    assert {r["verdict"] for r in rows} == {"not testable"} and "absent" in rows[0]["details"]


def test_a_control_that_fails_retrieval_is_still_compared_on_attention(monkeypatch):
    """cpt-rope missing its retrieval gate is the control's outcome: its attention is still measured and graded."""
    from ropelib.findings import verdicts as shared
    monkeypatch.undo()  # the real not_testable_reason, on a gate table where only cpt-rope misses
    monkeypatch.setattr(shared.sources, "check_source", lambda source, *a, **k: source)
    monkeypatch.setattr(shared.manifests, "read", lambda source: {"gate": [
        {"length": 1024, "passed": source != "cpt-rope", "rate": 0.25, "ci_low": 0.17, "ci_high": 0.33}]})
    gap = synthetic_js([0.3, 0.05, 0.1, 0.1, 0.1])
    rows = verdicts.glance_rows(None, gap, 1024, 256, "RoPE (base)", None, chapter="test", sources=SOURCES)
    assert [(r["order"], r["verdict"]) for r in rows] == [(1.3, "partly"), (1.35, "not supported")]
    assert shared.not_testable_reason(["rope:cpt-rope"], role="retrieval").startswith("cpt-rope retrieves 0.25")
    assert shared.not_testable_reason(["rope:cpt-rope"], role="attention") == ""


def test_beside_paper_maps_the_original_model_to_the_papers_rope_row():
    shown = verdicts.beside_paper(synthetic_js([0.0, 0.01, 0.2, 0.01, 0.02]), 256, 256, "RoPE (base)")
    assert shown["paper (units as printed)"].tolist() == ["0.00", "-", "1.29", "0.06", "0.05"]
    shown = verdicts.beside_paper(synthetic_js([0.3, 0.05, 0.1, 0.1, 0.28]), 1024, 256, "RoPE (base)")
    assert shown.loc["RoPE (base)", "paper (units as printed)"] == "2.57"
    assert shown.loc["PI (cpt-pi)", "95% CI"] == "[0.09, 0.11]"


def test_profiles_of_a_tiny_model():
    config = organism.OrganismConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=2, intermediate_size=64,
                                     head_dim=16, train_length=32)
    model = organism.build(config, seed=0).eval()
    documents = [f"def f{i}(x):\n    return x * {i} + 1\n" * 8 for i in range(3)]
    got = fig2.profiles(model, ByteTokenizer(), length=64, n_sequences=3, n_queries=4, n_bins=6, local_length=32,
                        seed=0, documents=documents, progress=False)
    n_bins, n_local = len(got.edges) - 1, len(got.local_edges) - 1
    assert got.mass.shape == (2, 3, 2, n_bins) and got.density.shape == got.mass.shape
    assert got.local.shape == (2, 3, 2, n_local) and got.local_edges[-1] == 32
    assert np.allclose(got.mass.sum(-1), 1)
    assert np.all(np.isfinite(got.density)) and np.all(got.density > 0)
    assert got.sink.shape == (2, 3, 2) and np.all((got.sink >= 0) & (got.sink <= 1))
    assert np.allclose(got.mass_no_sink.sum(-1), 1) and np.all(got.entropy_no_sink <= np.log(64))


def test_ratios_say_how_much_larger_the_leader_is():
    js = synthetic_js([0.0, 0.01, 0.2, 0.01, 0.02])
    assert verdicts.ratios(js, "PI (cpt-pi)", ["NTK (cpt-ntk)", "YaRN (cpt-yarn)"]) == \
        "20x NTK (cpt-ntk), 10x YaRN (cpt-yarn)"
    assert verdicts.ratios(js, "PI (cpt-pi)", ["RoPE (base)"]) == "infx RoPE (base)"


def test_only_the_models_a_row_compares_decide_its_testability(monkeypatch):
    monkeypatch.setattr(verdicts, "not_testable_reason",
                        lambda variants, role="retrieval": "native-4x is absent" if any("native-4x" in v for v in variants) else "")
    js, gap = synthetic_js([0.3, 0.05, 0.1, 0.1, 0.1]), synthetic_js([0.3, 0.25, 0.1, 0.1, 0.1])
    rows = {r["order"]: r["verdict"] for r in verdicts.glance_rows(js, gap, 1024, 256, "RoPE (base)",
                                                                  "RoPE (native-4x)", "t", SOURCES)}
    assert rows[1.3] == "partly"  # the gap (no native model) replicated, the JS part not testable: a part holds
    assert sorted(rows) == [1.3, 1.35]
    at_l0 = verdicts.glance_rows(synthetic_js([0.0, 0.01, 0.2, 0.01, 0.02]), None, 256, 256, "RoPE (base)",
                                 "RoPE (native-4x)", "t", SOURCES)
    assert at_l0[0]["verdict"] == "replicated"


def test_one_capture_is_one_claim_and_the_sink_free_js_is_shown_beside():
    js, gap = synthetic_js([0.3, 0.05, 0.1, 0.1, 0.1]), synthetic_js([0.3, 0.05, 0.1, 0.1, 0.1])
    free = synthetic_js([0.1, 0.05, 0.1, 0.1, 0.1])  # without the sink the ordering is gone
    rows = verdicts.glance_rows(js, gap, 1024, 256, "RoPE (base)", "RoPE (native-4x)", "t", SOURCES, js_free=free)
    assert [r["order"] for r in rows] == [1.3, 1.35]  # not 1.3 and 1.5 counted apart
    assert rows[0]["verdict"] == "replicated"  # the sink-free JS is shown, not judged
    assert "JS without the attention sink (shown, not judged): inconclusive" in rows[0]["details"]
