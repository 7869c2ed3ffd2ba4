"""Appendix "Model size" (ropelib.findings.model_size.analysis): PI's gain over RoPE per size and the
registry's estimands 9.1 (needles, paired over prompts) and 9.2 (loss saved, paired over documents),
graded by the one rule on synthetic needle and perplexity tables, with tables that must NOT pass
(equal gains, noise, every difference 0, too few units, a size that misses the premise still graded
with a caveat); what the page states from the manifests (manifest-only checkpoints in a tmp folder)."""

import math

import numpy as np
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
DOCUMENTS = 10


def tables(pi_pass: dict, pi_loss_saved: dict, needles: int = 4, documents: int = DOCUMENTS,
           pi_at_L0: dict | None = None, noise: float = 0.01):
    """Trials and per-document losses: RoPE passes only at L0; PI (size s) passes each prompt beyond L0 with
    probability pi_pass[s] (a seeded draw per prompt and size) and at L0 with pi_at_L0[s] (default 1), and
    saves pi_loss_saved[s] nats per token beyond L0 (plus a seeded normal draw of sd ``noise`` per document
    and length)."""
    rng = np.random.default_rng(0)
    trials, ppl = [], []
    for size, (rope, pi) in PAIRS.items():
        for length in LENGTHS:
            for depth in DEPTHS:
                for i in range(needles):
                    share = (pi_at_L0 or {}).get(size, 1.0) if length == L0 else pi_pass[size]
                    trials.append({"method": rope, "length": length, "depth": float(depth), "passed": length == L0,
                                   "entropy": 5.0, "entropy_first": 5.0, "entropy_teacher": 5.0, "needle_mass": 0.0})
                    trials.append({"method": pi, "length": length, "depth": float(depth),
                                   "passed": bool(rng.random() < share), "entropy": 4.0, "entropy_first": 4.0,
                                   "entropy_teacher": 4.0, "needle_mass": 0.0})
            for d in range(documents):
                ppl.append({"method": rope, "length": length, "document": f"doc{d}",
                            "loss": 3.0 + 0.01 * math.sin(d + length)})
                saved = pi_loss_saved[size] if length > L0 else 0.0
                ppl.append({"method": pi, "length": length, "document": f"doc{d}",
                            "loss": 3.0 - saved + rng.normal(0.0, noise)})
    return pd.DataFrame(trials), pd.DataFrame(ppl)


def graded(pi_pass, pi_loss_saved, pairs=PAIRS, **kwargs):
    trials, ppl = tables(pi_pass, pi_loss_saved, **kwargs)
    return {r["order"]: r for r in model_size.glance_rows(trials, ppl, pairs, L0, model="organism")}


GROWING = ({"S": 0.1, "M": 0.5, "L": 0.9}, {"S": 0.1, "M": 0.2, "L": 0.4})


def test_gains_are_pi_minus_rope_per_prompt_and_document_beyond_L0():
    trials, ppl = tables({"S": 0.0, "M": 1.0, "L": 1.0}, {"S": 0.1, "M": 0.2, "L": 0.4})
    gains = model_size.gains(trials, ppl, PAIRS, beyond=L0).set_index(["size", "metric"])
    assert gains.loc[("S", "needle pass rate"), "gain"] == 0.0
    assert gains.loc[("M", "needle pass rate"), "gain"] == 1.0
    assert gains.loc[("L", "needle pass rate"), "n"] == 2 * len(DEPTHS) * 4  # prompts beyond L0 only
    assert gains.loc[("L", "loss saved (nats/token)"), "gain"] == pytest.approx(0.4, abs=0.02)
    assert gains.loc[("L", "loss saved (nats/token)"), "n"] == DOCUMENTS  # documents, lengths averaged
    assert model_size.needle_gain(trials, *PAIRS["M"], L0).index.names == ["length", "depth", "needle"]


def test_growing_gain_is_replicated_and_written_as_glance_rows():
    rows = graded(*GROWING)
    assert [rows[o]["verdict"] for o in (9.1, 9.2)] == ["replicated", "supported"]  # 9.2 is beyond the paper
    assert [rows[o]["kind"] for o in (9.1, 9.2)] == ["paper", "beyond"]
    assert (rows[9.1]["n_units"], rows[9.1]["unit"]) == (2 * len(DEPTHS) * 4, "prompt")
    assert (rows[9.2]["n_units"], rows[9.2]["unit"]) == (DOCUMENTS, "document")
    assert "PI - RoPE beyond L0 per size (prompts): S +" in rows[9.1]["details"]
    assert "monotone in size (shown, not graded)" in rows[9.1]["details"]
    assert rows[9.1]["caveats"] == "" and rows[9.1]["sensitivity"] == ""  # every model retrieves at L0
    frame = pd.DataFrame(list(rows.values()), columns=results.GLANCE_COLUMNS)
    assert list(frame.columns) == results.GLANCE_COLUMNS and set(frame["chapter"]) == {"model-size"}


def test_a_gain_equal_at_every_size_does_not_replicate():
    rows = graded({"S": 0.5, "M": 0.5, "L": 0.5}, {"S": 0.2, "M": 0.2, "L": 0.2})
    assert not {"replicated", "partly", "supported", "partly supported"} & {r["verdict"] for r in rows.values()}
    assert rows[9.2]["verdict"] == "not supported"  # CI inside +-0.05 nats: equivalence


def test_a_shrinking_gain_is_not_replicated():
    rows = graded({"S": 0.9, "M": 0.5, "L": 0.1}, {"S": 0.4, "M": 0.2, "L": 0.1})
    assert rows[9.1]["verdict"] == "not replicated" and rows[9.2]["verdict"] == "not supported"


def test_noise_is_inconclusive():
    rows = graded({"S": 0.5, "M": 0.5, "L": 0.55}, {"S": 0.2, "M": 0.2, "L": 0.25}, needles=2, noise=0.3)
    assert rows[9.1]["verdict"] == "inconclusive" and rows[9.2]["verdict"] == "inconclusive"


def test_every_paired_difference_zero_is_inconclusive():
    rows = graded({"S": 1.0, "M": 1.0, "L": 1.0}, {"S": 0.1, "M": 0.2, "L": 0.4})
    assert rows[9.1]["verdict"] == "inconclusive" and "zero-width" in rows[9.1]["parts"]


def test_too_few_units_are_inconclusive_whatever_the_gain():
    rows = graded(*GROWING, documents=4)
    assert rows[9.2]["verdict"] == "inconclusive" and rows[9.2]["n_units"] == 4
    assert "too few units" in rows[9.2]["parts"]


def test_a_size_that_misses_the_premise_is_still_graded_with_a_caveat():
    """PI (L) retrieves nothing at L0 on the page's trials: 9.1 is graded on every prompt, the caveat names
    it, and the sensitivity line is the same estimand between the sizes that meet the premise (M - S)."""
    rows = graded(*GROWING, pi_at_L0={"L": 0.0})
    row = rows[9.1]
    assert row["verdict"] == "replicated"
    assert row["caveats"] == ("PI (L) misses the premise 'retrieves at L0': pass rate 0 < 0.8 at L0 = 256 on "
                              "this page's trials")
    assert row["sensitivity"].startswith("on the units that meet the premises: ") and "M - S" in row["sensitivity"]
    assert rows[9.2]["caveats"] == ""  # the loss claim has no retrieval premise
    rows = graded(*GROWING, pi_at_L0={"L": 0.0, "M": 0.0})  # one size left: no units meet the premise
    assert rows[9.1]["sensitivity"].startswith("on the units that meet the premises: not testable")


def test_one_size_has_no_trend_and_is_not_testable():
    one = {"M": PAIRS["M"]}
    trials, ppl = tables(*GROWING)
    assert model_size.size_trend(trials, ppl, one, beyond=L0).empty
    rows = model_size.glance_rows(trials, ppl, one, L0, model="organism")
    assert [r["verdict"] for r in rows] == ["not testable", "not testable"]
    assert all(r["details"].startswith("only one size (M)") for r in rows)
    assert all(line.count("NOT TESTABLE") == 1 for line in model_size.verdict_lines(rows))


def test_size_table_reports_pass_rates_at_and_beyond_L0():
    trials, _ = tables({"S": 0.0, "M": 1.0, "L": 1.0}, {"S": 0, "M": 0, "L": 0})
    table = model_size.size_table(trials, {"RoPE (S)": 10, "RoPE (M)": 20, "RoPE (L)": 30}, PAIRS, L0)
    assert list(table["parameters"]) == [10, 20, 30]
    assert (table["RoPE pass at L0"] == 1.0).all() and (table["RoPE pass beyond L0"] == 0.0).all()
    assert list(table["PI pass beyond L0"]) == [0.0, 1.0, 1.0]


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
    assert model_size.missing_sizes(pairs) == ""


def test_unequal_tokens_are_said_plainly(three_sizes):
    write_checkpoint(three_sizes, "base-L", [(32, 100, 32), (256, 600, 8)], size="L")
    everything, pairs = model_size.size_pairs(*LISTS)
    assert "base models: NOT equal" in model_size.tokens_line(model_size.checkpoint_facts(everything, list(pairs)))


def test_a_missed_gate_is_shown_in_the_facts_and_leaves_the_claims_measurable(three_sizes):
    """Gates are information on the page; 9.1's premise is computed from the page's own trials."""
    write_checkpoint(three_sizes, "cpt-pi-L", [(128, 20, 16), (1024, 40, 4)], parent="base-L", method="pi",
                     factor=4.0, size="L", gate=False)
    everything, pairs = model_size.size_pairs(*LISTS)
    facts = model_size.checkpoint_facts(everything, list(pairs))
    assert facts.loc["L", "PI gate"].startswith("MISSED") and model_size.missing_sizes(pairs) == ""


def test_one_local_checkpoint_is_one_size(three_sizes, tmp_path):
    llama = huggingface_dir(tmp_path, "Llama-2-7b-hf", max_positions=4096)
    everything, pairs = model_size.size_pairs(*LISTS, model=str(llama))
    assert [v.method for v in everything] == ["rope", "pi"] and list(pairs) == ["Llama-2-7b-hf"]
    assert model_size.geometry(everything) == (4096, 0)
    assert model_size.grid_lengths([], 4096) == [4096, 8192, 16384, 32768]
    assert model_size.missing_sizes(pairs).startswith("only one size (Llama-2-7b-hf)")
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
