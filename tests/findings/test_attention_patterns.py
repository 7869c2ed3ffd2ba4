"""ropelib.findings.attention_patterns.analysis and verdicts: query positions, profiles, paired statistics, the
log-ratio estimands of claims 1.3, 1.35 and 1.4 and their rows by the registry's rule, on synthetic data,
including data that must not pass."""

import numpy as np
import pandas as pd
import pytest
import torch

from ropelib.findings import claims
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


LINEUP = [("RoPE (base)", "rope"), ("RoPE (cpt-rope)", "rope"), ("PI (cpt-pi)", "pi"), ("NTK (cpt-ntk)", "ntk"),
          ("YaRN (cpt-yarn)", "yarn")]


def synthetic_js(values):
    """A Table 1 of the default variants, JS values in the order base, cpt-rope, pi, ntk, yarn."""
    return table([(label, method, "target", js, js * 0.9, js * 1.1) for (label, method), js in zip(LINEUP, values)])


# ---- the log ratio and its paired bootstrap

def _profiles(label, method, values):
    """Profiles whose every field is ``values`` (layer, sequence, head, bin): enough for the statistics."""
    edges = np.arange(values.shape[-1] + 1.0)
    per_head = values[..., 0]
    return fig2.Profiles(label, method, 0, edges, edges, values, values, values, values, per_head, per_head, per_head)


def _curves(scale, n_sequences, noise=0.0, seed=0, n_bins=6):
    """(1, sequence, 1, bin) local curves: the reference's shape times 10**(scale + noise per sequence)."""
    rng = np.random.default_rng(seed)
    base = np.linspace(1.0, 0.1, n_bins)
    shift = scale + noise * rng.standard_normal(n_sequences)
    return base[None, None, None, :] * 10 ** shift[None, :, None, None] * np.ones((1, n_sequences, 1, n_bins))


def _noisy(n_sequences, seed, spread):
    """(1, sequence, 1, bin) distributions: a common shape, each sequence jittered."""
    rng = np.random.default_rng(seed)
    base = np.linspace(1.0, 0.1, 6)
    values = base * np.exp(spread * rng.standard_normal((1, n_sequences, 1, 6)))
    return values / values.sum(-1, keepdims=True)


def test_log_ratio_resamples_the_sequences_once_for_both_models():
    reference = _curves(0.0, 10)
    far, near = _curves(1.0, 10, noise=0.3, seed=1), _curves(0.25, 10, noise=0.3, seed=2)
    estimate, low, high, n = fig2.paired_log_ratio(fig2.log_gap, far, near, reference, n_boot=200)
    assert n == 10 and low < estimate < high
    assert estimate == pytest.approx(np.log(fig2.log_gap(far, reference) / fig2.log_gap(near, reference)))
    assert fig2.paired_log_ratio(fig2.log_gap, far, near, reference, n_boot=200)[1:3] == (low, high)  # seeded
    # the same model on both sides: every resample's ratio is 1, a zero-width interval at 0
    assert fig2.paired_log_ratio(fig2.log_gap, far, far.copy(), reference, n_boot=50)[:3] == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same sequences"):
        fig2.paired_log_ratio(fig2.log_gap, far, near[:, :9], reference)


def test_log_ratio_of_a_statistic_that_is_zero_has_no_interval():
    reference = _noisy(10, 0, 0.2)
    estimate, low, high, _ = fig2.paired_log_ratio(fig2.js_of_means, reference.copy(), _noisy(10, 1, 0.2), reference,
                                                   n_boot=50)
    assert np.isnan(estimate) and np.isnan(low) and np.isnan(high)  # JS 0 in the numerator: no log ratio
    assert fig2.paired_log_ratio(fig2.js_of_means, _noisy(1, 1, 0.2), _noisy(1, 2, 0.2), reference[:, :1])[3] == 1


def _capture(length, l0, n_sequences=10, rope=1.0, control=0.25, native=True):
    """A capture beyond (or at) L0: the original model and plain-RoPE CPT at gap scales ``rope`` and
    ``control`` (orders of magnitude), the extensions at 0.25 with per-sequence noise; JS on noisy distributions."""
    l0_curve = _curves(0.0, n_sequences)
    labels = [*LINEUP, ("NTK (cpt-ntk100)", "ntk100")]
    scales = {"RoPE (base)": rope, "RoPE (cpt-rope)": control}
    at_length = {}
    for i, (label, method) in enumerate(labels):
        local = _curves(scales.get(label, 0.25), n_sequences, noise=0.05, seed=i)
        mass = _noisy(n_sequences, 10 + i, 0.1 if label not in scales else 0.6)
        profiles = _profiles(label, method, mass)
        profiles.local = local
        at_length[label] = profiles
    if native:
        at_length["RoPE (native-4x)"] = _profiles("RoPE (native-4x)", "rope", _noisy(n_sequences, 99, 0.1))
    reference = _profiles("RoPE (base)", "rope", _noisy(n_sequences, 98, 0.1))
    reference.local, reference.length = l0_curve, l0
    capture = fig2.Capture(length, at_length, reference)
    gap = pd.DataFrame({"variant": [label for label, _ in labels], "method": [m for _, m in labels]})
    return capture, gap


def test_estimands_beyond_l0_pick_the_roles_and_statistics_of_each_claim():
    capture, gap = _capture(1024, 256)
    ratios = verdicts.estimands(capture, gap, "RoPE (base)", "RoPE (native-4x)", n_boot=100)
    extensions = ["PI (cpt-pi)", "NTK (cpt-ntk)", "YaRN (cpt-yarn)", "NTK (cpt-ntk100)"]
    for order, first in ((1.3, "RoPE (base)"), (1.35, "RoPE (cpt-rope)")):
        chosen = ratios[ratios["claim"] == order]
        assert set(chosen["first"]) == {first} and sorted(chosen["other"]) == sorted(extensions * 2)
        assert set(chosen["statistic"]) == {"gap", "JS to RoPE (native-4x)"}
        assert (chosen["n_units"] == 10).all()
    gap_rope = ratios[(ratios["claim"] == 1.3) & (ratios["statistic"] == "gap")]
    assert (gap_rope["estimate"] > np.log(3)).all()  # 1 vs ~0.25 orders of magnitude from the L0 curve
    free = verdicts.estimands(capture, gap, "RoPE (base)", "RoPE (native-4x)", n_boot=50, sink=False)
    assert set(free["statistic"]) == {"JS to RoPE (native-4x) without sink"}
    without = verdicts.estimands(capture, gap, "RoPE (base)", None, n_boot=50)
    assert set(without["statistic"]) == {"gap"}  # no natively long model: the JS parts are absent


def test_estimands_at_l0_compare_pi_with_the_other_extensions():
    capture, gap = _capture(256, 256)
    ratios = verdicts.estimands(capture, gap, "RoPE (base)", "RoPE (native-4x)", n_boot=50)
    assert set(ratios["claim"]) == {1.4} and set(ratios["first"]) == {"PI (cpt-pi)"}
    assert sorted(ratios["other"]) == ["NTK (cpt-ntk)", "NTK (cpt-ntk100)", "YaRN (cpt-yarn)"]
    assert set(ratios["statistic"]) == {"JS to RoPE (base)"}  # the original model at L0, never the native one
    assert verdicts.estimands(capture, gap[gap["method"] != "pi"], "RoPE (base)", None, n_boot=50).empty


# ---- rows, by the registry's rule

def ratio_rows(order, first, parts, n=10):
    """A synthetic estimands table: parts = [(statistic, other, estimate, low, high)]."""
    return pd.DataFrame([{"claim": order, "first": first, "other": other, "statistic": statistic, "estimate": est,
                          "ci_low": lo, "ci_high": hi, "n_units": n} for statistic, other, est, lo, hi in parts],
                        columns=["claim", "first", "other", "statistic", "estimate", "ci_low", "ci_high", "n_units"])


EXT = ["PI (cpt-pi)", "NTK (cpt-ntk)", "YaRN (cpt-yarn)"]
JS = "JS to RoPE (native-4x)"


def beyond(gap_parts, js_parts=None, control=None, n=10):
    """1.3 (and 1.35 with ``control``) parts: each a (estimate, low, high) per extension."""
    frames = [ratio_rows(1.3, "RoPE (base)", [("gap", e, *p) for e, p in zip(EXT, gap_parts)], n)]
    if js_parts:
        frames.append(ratio_rows(1.3, "RoPE (base)", [(JS, e, *p) for e, p in zip(EXT, js_parts)], n))
    if control:
        frames.append(ratio_rows(1.35, "RoPE (cpt-rope)", [("gap", e, *p) for e, p in zip(EXT, control)], n))
    return pd.concat(frames, ignore_index=True)


def rows_of(ratios, where="beyond L0", free=None):
    return {r["order"]: r for r in verdicts.glance_rows(ratios, where, model="organism", chapter="t", free=free)}


CLEAR = (1.0, 0.6, 1.4)  # RoPE about 2.7x further than the extension, CI wholly above 0


def test_every_part_above_zero_is_replicated_and_the_rule_is_the_registrys():
    rows = rows_of(beyond([CLEAR] * 3, js_parts=[CLEAR] * 3, control=[CLEAR] * 3))
    assert rows[1.3]["verdict"] == "replicated" and rows[1.3]["n_units"] == 10 and rows[1.3]["unit"] == "sequence"
    assert rows[1.35]["verdict"] == "supported" and rows[1.35]["kind"] == "control"
    assert rows[1.3]["rule"] == claims.claim(1.3).rule and rows[1.3]["sesoi"] == pytest.approx(np.log(1.25), abs=1e-4)
    assert rows[1.3]["parts"].count("replicated") == 6 and "gap, ln(RoPE (base) / PI (cpt-pi))" in rows[1.3]["parts"]
    assert rows[1.3]["caveats"] == "" and rows[1.3]["sensitivity"] == ""  # attention has no premises


def test_noise_is_inconclusive_and_one_clear_part_makes_partly():
    noisy = (0.1, -0.5, 0.7)  # the CI holds an effect of interest and its absence
    assert rows_of(beyond([noisy] * 3))[1.3]["verdict"] == "inconclusive"
    assert rows_of(beyond([CLEAR, noisy, noisy]))[1.3]["verdict"] == "partly"


def test_equivalence_or_the_other_side_is_not_replicated():
    equal = (0.0, -0.1, 0.1)  # inside +- ln 1.25: RoPE no further than the extension
    assert rows_of(beyond([equal] * 3, control=[(-0.5, -0.8, -0.2)] * 3))[1.3]["verdict"] == "not replicated"
    assert rows_of(beyond([CLEAR] * 3, control=[(-0.5, -0.8, -0.2)] * 3))[1.35]["verdict"] == "not supported"


def test_zero_width_intervals_and_too_few_sequences_are_inconclusive():
    assert rows_of(beyond([(0.8, 0.8, 0.8)] * 3))[1.3]["verdict"] == "inconclusive"  # identical sequences: no CI
    assert rows_of(beyond([(np.nan, np.nan, np.nan)] * 3))[1.3]["verdict"] == "inconclusive"  # a zero statistic
    few = rows_of(beyond([CLEAR] * 3, n=5))[1.3]
    assert few["verdict"] == "inconclusive" and "too few units" in few["parts"]


def test_without_a_native_model_the_js_parts_are_absent_and_said():
    row = rows_of(beyond([CLEAR] * 3))[1.3]
    assert row["verdict"] == "replicated"  # graded on the parts that exist: the gap
    assert "JS parts absent: no natively long model in this line-up" in row["details"]
    assert "JS parts absent" not in rows_of(beyond([CLEAR] * 3, js_parts=[CLEAR] * 3))[1.3]["details"]


def test_not_testable_only_when_no_part_can_be_computed():
    rows = rows_of(beyond([CLEAR] * 3))  # no plain-RoPE CPT in the line-up
    assert rows[1.35]["verdict"] == "not testable" and "no plain-RoPE CPT model" in rows[1.35]["details"]
    assert rows_of(beyond([CLEAR] * 3).iloc[:0])[1.3]["verdict"] == "not testable"
    at_l0 = rows_of(ratio_rows(1.4, "PI (cpt-pi)", [("JS to RoPE (base)", e, *CLEAR) for e in EXT[1:]]), "at L0")
    assert list(at_l0) == [1.4] and at_l0[1.4]["verdict"] == "replicated"
    assert rows_of(ratio_rows(1.4, "PI", []).iloc[:0], "at L0")[1.4]["verdict"] == "not testable"


def test_the_sink_free_js_is_shown_by_the_same_rule_not_judged():
    free = ratio_rows(1.3, "RoPE (base)", [(JS + " without sink", e, 0.0, -0.1, 0.1) for e in EXT])
    row = rows_of(beyond([CLEAR] * 3, js_parts=[CLEAR] * 3), free=free)[1.3]
    assert row["verdict"] == "replicated"
    assert "JS without the attention sink, same rule (shown, not part of the verdict): not replicated" in row["details"]
    numbers = verdicts.key_numbers([row], pd.DataFrame({"sink mass": [0.2, 0.5]}), free)
    assert numbers == {"att_sink_low": "0.2", "att_sink_high": "0.5", "att_verdicts": "1.3 replicated",
                       "att_js_free_verdict": "1.3 not replicated"}


def test_roles_at_and_beyond_l0():
    js = synthetic_js([0.0, 0.01, 0.2, 0.01, 0.02])
    assert verdicts.ordering_roles(js, 256, 256, "RoPE (base)") == ("PI (cpt-pi)", ["NTK (cpt-ntk)", "YaRN (cpt-yarn)"])
    assert verdicts.ordering_roles(js, 1024, 256, "RoPE (base)") == \
        ("RoPE (base)", ["PI (cpt-pi)", "NTK (cpt-ntk)", "YaRN (cpt-yarn)"])  # cpt-rope is not an extension
    assert verdicts.ordering_roles(js[js["method"] == "rope"], 1024, 256, "RoPE (base)") is None
    assert verdicts.control_roles(js, "RoPE (base)") == ("RoPE (cpt-rope)", ["PI (cpt-pi)", "NTK (cpt-ntk)",
                                                                             "YaRN (cpt-yarn)"])
    assert verdicts.control_roles(js[js["variant"] != "RoPE (cpt-rope)"], "RoPE (base)") is None


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
