"""Appendix "Model size" (ropelib.findings.model_size.analysis): PI's gain over RoPE per size and the
"PI helps the larger model more" rule, pinned on synthetic needle and perplexity tables (each rule
with a table that must NOT replicate); what the page states from the manifests (manifest-only
checkpoints in a tmp folder): parameters, tokens, gates, "not testable"."""

import math

import pandas as pd
import pytest
from manifest_fixtures import huggingface_dir, organisms, write_checkpoint

from ropelib.models import organism
from ropelib import results
from ropelib.findings.model_size import analysis as model_size

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
                                   "entropy": 5.0, "entropy_first": 5.0, "entropy_teacher": 5.0, "needle_mass": 0.0})
                    trials.append({"method": pi, "length": length, "depth": float(depth),
                                   "passed": length == L0 or i < share, "entropy": 4.0, "entropy_first": 4.0,
                                   "entropy_teacher": 4.0, "needle_mass": 0.0})
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
    rows = model_size.glance_rows(model_size.gains(trials, ppl, PAIRS, beyond=L0), trend)
    assert [r["verdict"] for r in rows] == ["replicated", "supported"]  # 9.2 is beyond the paper: its own words
    assert [r["order"] for r in rows] == [9.1, 9.2] and all(r["chapter"] == "model-size" for r in rows)
    assert [r["kind"] for r in rows] == ["paper", "beyond"]  # one row per claim: the paper's, and ours
    assert rows[0]["details"].startswith("PI - RoPE beyond L0 per size: S +0 ") and "monotone" in rows[0]["details"]
    assert list(pd.DataFrame(rows, columns=results.GLANCE_COLUMNS).columns) == results.GLANCE_COLUMNS


def test_a_gain_equal_at_every_size_does_not_replicate():
    trials, ppl = tables({"S": 0.5, "M": 0.5, "L": 0.5}, {"S": 0.2, "M": 0.2, "L": 0.2})
    trend = model_size.size_trend(trials, ppl, PAIRS, beyond=L0)
    rows = model_size.glance_rows(model_size.gains(trials, ppl, PAIRS, beyond=L0), trend)
    assert not {"replicated", "partly", "supported", "partly supported"} & {r["verdict"] for r in rows}


def test_a_reason_makes_every_row_not_testable_and_says_why():
    trials, ppl = tables({"S": 0.0, "M": 0.5, "L": 1.0}, {"S": 0.1, "M": 0.2, "L": 0.4})
    trend = model_size.size_trend(trials, ppl, PAIRS, beyond=L0)
    rows = model_size.glance_rows(model_size.gains(trials, ppl, PAIRS, beyond=L0), trend,
                                  reason="retrieval gate not passed by cpt-pi-L")
    assert [r["verdict"] for r in rows] == ["not testable", "not testable"]
    assert all(r["details"].startswith("retrieval gate not passed by cpt-pi-L") and r["ci_low"] is None for r in rows)
    # a retrieval-gate miss touches the needles only: the loss row (perplexity) is still graded
    rows = model_size.glance_rows(model_size.gains(trials, ppl, PAIRS, beyond=L0), trend,
                                  reason={"needle pass rate": "retrieval gate not passed by cpt-pi-L"})
    assert [r["verdict"] for r in rows] == ["not testable", "supported"]


def test_one_size_has_no_trend_and_is_not_testable():
    one = {"M": PAIRS["M"]}
    trials, ppl = tables({"S": 0.0, "M": 0.5, "L": 1.0}, {"S": 0.1, "M": 0.2, "L": 0.4})
    trend = model_size.size_trend(trials, ppl, one, beyond=L0)
    assert trend.empty
    rows = model_size.glance_rows(model_size.gains(trials, ppl, one, beyond=L0), trend, reason="only one size (M)")
    assert [r["verdict"] for r in rows] == ["not testable", "not testable"]
    assert model_size.verdict(None) == "not testable"


@pytest.mark.parametrize("pi_pass, verdict", [
    ({"S": 0.5, "M": 0.0, "L": 1.0}, "partly"),  # largest gains most, but not monotone
    ({"S": 1.0, "M": 0.5, "L": 0.0}, "not replicated"),
    ({"S": 0.0, "M": 0.0, "L": 0.0}, "not replicated"),  # no gain anywhere: nothing grows
])
def test_needle_rule(pi_pass, verdict):
    trials, ppl = tables(pi_pass, {"S": 0.1, "M": 0.1, "L": 0.1})
    trend = model_size.size_trend(trials, ppl, PAIRS, beyond=L0).set_index("metric")
    assert model_size.verdict(trend.loc["needle pass rate"].to_dict()) == verdict


@pytest.mark.parametrize("largest_gain, difference, low, high, monotone, verdict", [
    (0.5, 0.3, 0.1, 0.5, True, "replicated"),
    (0.5, 0.3, -0.1, 0.6, True, "inconclusive"),  # the old rule's "partly": a CI over 0 is noise, not a part
    (0.5, -0.017, -0.18, 0.15, True, "inconclusive"),  # 9.1 as committed: the CI spans both answers
    (0.5, 0.3, 0.1, 0.5, False, "partly"),  # significant growth, not monotone
    (0.0, 0.0, 0.0, 0.0, True, "not replicated"), (0.1, -0.2, -0.4, -0.05, False, "not replicated"),
    (0.0, 0.1, 0.05, 0.2, True, "not replicated"),  # the largest size loses less, but PI helps no one
])
def test_rule_on_a_trend_row(largest_gain, difference, low, high, monotone, verdict):
    row = {"largest_gain": largest_gain, "difference": difference, "ci_low": low, "ci_high": high,
           "monotone": monotone}
    assert model_size.verdict(row) == verdict


def test_size_table_reports_pass_rates_at_and_beyond_L0():
    trials, _ = tables({"S": 0.0, "M": 0.5, "L": 1.0}, {"S": 0, "M": 0, "L": 0})
    table = model_size.size_table(trials, {"RoPE (S)": 10, "RoPE (M)": 20, "RoPE (L)": 30}, PAIRS, L0)
    assert list(table["parameters"]) == [10, 20, 30]
    assert (table["RoPE pass at L0"] == 1.0).all() and (table["RoPE pass beyond L0"] == 0.0).all()
    assert list(table["PI pass beyond L0"]) == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("rope, pi, sizes, message", [
    (["rope:a", "rope:b"], ["pi:a"], ["S", "L"], "same length"),
    ([], [], [], "same length >= 1"),
    (["rope:a", "rope:b"], ["pi:a", "pi:b"], ["S", "S"], "duplicates"),
])
def test_size_pairs_fail_before_loading_anything(rope, pi, sizes, message):
    with pytest.raises(ValueError, match=message):
        model_size.size_pairs(rope, pi, sizes)


# --- what the page states from the manifests ----------------------------------------------------------


@pytest.fixture
def three_sizes(monkeypatch, tmp_path):
    root = organisms(monkeypatch, tmp_path)
    configs = {"S": organism.OrganismConfig(hidden_size=32, num_layers=1, num_heads=1, num_kv_heads=1,
                                            intermediate_size=64),
               "M": organism.OrganismConfig(hidden_size=64, num_layers=1, num_heads=1, num_kv_heads=1,
                                            intermediate_size=128),
               "L": organism.OrganismConfig(hidden_size=64, num_layers=2, num_heads=1, num_kv_heads=1,
                                            intermediate_size=128)}
    for size, suffix in (("S", "-S"), ("M", ""), ("L", "-L")):
        write_checkpoint(root, f"base{suffix}", [(32, 100, 32), (256, 300, 8)], size=size, config=configs[size])
        write_checkpoint(root, f"cpt-pi{suffix}", [(128, 20, 16), (1024, 40, 4)], parent=f"base{suffix}",
                         method="pi", factor=4.0, size=size, config=configs[size])
    return root


LISTS = (["rope:base-S", "rope:base", "rope:base-L"], ["pi:cpt-pi-S", "pi:cpt-pi", "pi:cpt-pi-L"], ["S", "M", "L"])


def test_facts_state_parameters_and_equal_tokens_from_the_manifests(three_sizes):
    everything, pairs = model_size.size_pairs(*LISTS)
    assert model_size.geometry(everything) == (256, 1024)
    facts = model_size.checkpoint_facts(everything, list(pairs))
    assert facts["parameters"].is_monotonic_increasing and len(set(facts["parameters"])) == 3
    assert set(facts["base tokens"]) == {32 * 100 * 32 + 256 * 300 * 8}
    line = model_size.tokens_line(facts)
    assert "base models: 716,800 tokens each, equal across 3 sizes" in line and "PI CPTs: 204,800 tokens each" in line
    assert model_size.testability(everything, pairs) == ""


def test_unequal_tokens_are_said_plainly(three_sizes):
    write_checkpoint(three_sizes, "base-L", [(32, 100, 32), (256, 600, 8)], size="L")
    everything, pairs = model_size.size_pairs(*LISTS)
    assert "base models: NOT equal" in model_size.tokens_line(model_size.checkpoint_facts(everything, list(pairs)))


def test_a_missed_gate_makes_the_size_claim_not_testable(three_sizes):
    write_checkpoint(three_sizes, "cpt-pi-L", [(128, 20, 16), (1024, 40, 4)], parent="base-L", method="pi",
                     factor=4.0, size="L", gate=False)
    everything, pairs = model_size.size_pairs(*LISTS)
    reason = model_size.testability(everything, pairs)
    assert reason.startswith("retrieval gate not passed: cpt-pi-L retrieves 0.50") and "base" not in reason
    assert model_size.reasons(everything, pairs) == {"needle pass rate": reason, "loss saved (nats/token)": ""}


def test_one_local_checkpoint_is_one_size(three_sizes, tmp_path):
    llama = huggingface_dir(tmp_path, "Llama-2-7b-hf", max_positions=4096)
    everything, pairs = model_size.size_pairs(*LISTS, model=str(llama))
    assert [v.method for v in everything] == ["rope", "pi"] and list(pairs) == ["Llama-2-7b-hf"]
    assert model_size.geometry(everything) == (4096, 0)
    assert model_size.grid_lengths([], 4096) == [4096, 8192, 16384, 32768]
    assert model_size.testability(everything, pairs).startswith("only one size (Llama-2-7b-hf)")
    facts = model_size.checkpoint_facts(everything, list(pairs))
    assert facts.loc["Llama-2-7b-hf", "PI"].startswith("training-free") and "not gated" in facts.loc["Llama-2-7b-hf", "PI gate"]
    assert model_size.tokens_line(facts) == ("training tokens: base models: none recorded (Hugging Face checkpoints, or "
                                             "training-free PI); PI CPTs: none recorded (Hugging Face checkpoints, or "
                                             "training-free PI)")


def test_sizes_with_different_pretraining_lengths_are_refused(three_sizes):
    write_checkpoint(three_sizes, "base-L", [(512, 10, 4)], size="L", pretrained_length=512)
    everything, _ = model_size.size_pairs(*LISTS)
    with pytest.raises(ValueError, match="different pretraining lengths"):
        model_size.geometry(everything)


def test_the_chapter_takes_model_and_derives_L0():
    from ropelib.publish import params
    from ropelib.paths import ROOT

    declared = params.declared(ROOT / "chapters" / "model-size.ipynb")
    assert {"model", "seed", "device"} <= set(declared)
    assert not {"pretrained_length", "cpt_length"} & set(declared) and declared["lengths"].default == []
