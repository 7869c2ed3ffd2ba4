"""Finding 3 (ropelib.findings.cpt_length) and the shared length sweep summaries: the verdict
rules pinned on synthetic needle tables, the equal-token recipes, and the retrain path on a
micro organism in a tmp dir (a few seconds; never touches data/models)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from ropelib import models, organism, recipes, results, variants
from ropelib.findings import cpt_length, length_sweep
from ropelib.organism import OrganismConfig
from ropelib.training import Stage

LENGTHS = [256, 512, 1024, 2048]
DEPTHS = [0, 50, 100]


def synthetic_trials(spec: dict, needles: int = 2) -> pd.DataFrame:
    """``spec``: method -> f(length, depth, needle) -> (passed, entropy); rows like tasks.needle.needle_grid's."""
    rows = []
    for method, trial in spec.items():
        for length in LENGTHS:
            for depth in DEPTHS:
                for i in range(needles):
                    passed, entropy = trial(length, depth, i)
                    rows.append({"method": method, "length": length, "depth": float(depth), "trial": len(rows),
                                 "passed": bool(passed), "entropy": float(entropy), "needle_mass": 0.0})
    return pd.DataFrame(rows)


def noise(length, depth, i, scale=0.02):
    """A deterministic, cell-dependent wiggle so paired differences are not all identical."""
    return scale * math.sin(length * 0.37 + depth * 1.3 + i)


def base_like(length, depth, i):
    return length <= 256, math.log(length) - 0.5 + noise(length, depth, i)


def long_like(length, depth, i):  # passes everywhere, 1 nat sharper beyond 256
    return True, math.log(length) - 0.5 - (1.0 if length > 256 else 0.0) + noise(length, depth, i, 0.05)


# --- paired cells and the three rules --------------------------------------------------------------


def test_paired_cells_keep_lengths_beyond_and_subtract_first_from_second():
    trials = synthetic_trials({"short": base_like, "long": long_like})
    pairs = cpt_length.paired_cells(trials, "short", "long", beyond=256)
    assert sorted(pairs["length"].unique()) == [512, 1024, 2048]
    assert len(pairs) == 3 * len(DEPTHS)
    assert (pairs["d_pass"] == 1.0).all()
    assert pairs["d_entropy"].mean() == pytest.approx(-1.0, abs=0.06)


def test_long_model_that_is_sharper_and_passes_is_replicated_on_both_rules():
    trials = synthetic_trials({"base": base_like, "short": base_like, "long": long_like})
    table = cpt_length.comparisons(trials, "base", "short", "long", beyond=256)
    long_short = table.set_index("comparison").loc["long vs short"]
    assert long_short["p_entropy_lower"] < 0.01 and long_short["entropy_ci_high"] < 0
    assert long_short["pass_ci_low"] == long_short["pass_ci_high"] == 1.0  # a constant difference
    rows = cpt_length.glance_rows(table)
    assert list(table["comparison"]) == ["long vs short", "short vs base"]
    assert [r["order"] for r in rows] == [3.1, 3.2, 3.3]
    assert [r["verdict"] for r in rows] == ["replicated", "replicated", "replicated"]  # short == base exactly
    assert all(r["rule"] and r["chapter"] == "cpt-length" for r in rows)
    assert list(pd.DataFrame(rows, columns=results.GLANCE_COLUMNS).columns) == results.GLANCE_COLUMNS


@pytest.mark.parametrize("d_entropy, p, verdict", [
    (-0.5, 0.001, "replicated"),
    (-0.1, 0.001, "replicated"),  # the minimum drop itself counts
    (-0.05, 0.001, "partly"),  # significant but smaller than MIN_ENTROPY_DROP
    (-0.5, 0.2, "partly"),  # large but not significant
    (0.0, 1.0, "not replicated"),
    (0.3, 1.0, "not replicated"),
])
def test_lower_entropy_rule(d_entropy, p, verdict):
    assert cpt_length.verdict_lower_entropy({"d_entropy": d_entropy, "p_entropy_lower": p}) == verdict


@pytest.mark.parametrize("d_pass, low, verdict", [
    (0.4, 0.1, "replicated"), (0.4, -0.05, "partly"), (0.0, 0.0, "not replicated"), (-0.2, -0.4, "not replicated"),
])
def test_more_passes_rule(d_pass, low, verdict):
    assert cpt_length.verdict_more_passes({"d_pass": d_pass, "pass_ci_low": low}) == verdict


@pytest.mark.parametrize("d_pass, low, high, verdict", [
    (0.0, 0.0, 0.0, "replicated"),
    (0.05, -0.1, 0.15, "replicated"),  # the margin itself is inside
    (0.1, -0.05, 0.25, "partly"),
    (-0.3, -0.5, -0.1, "not replicated"),
])
def test_little_change_rule(d_pass, low, high, verdict):
    c = {"d_pass": d_pass, "pass_ci_low": low, "pass_ci_high": high}
    assert cpt_length.verdict_little_change(c) == verdict


def test_identical_models_give_no_effect_and_no_warning(recwarn):
    trials = synthetic_trials({"a": base_like, "b": base_like})
    c = cpt_length.compare(cpt_length.paired_cells(trials, "a", "b", beyond=256))
    assert c["d_entropy"] == 0 and c["p_entropy_lower"] == 1.0
    assert (c["pass_ci_low"], c["pass_ci_high"]) == (0.0, 0.0)
    assert cpt_length.verdict_lower_entropy(c) == "not replicated"
    assert not [w for w in recwarn if "wilcoxon" in str(w.message).lower()]


def test_wilcoxon_is_one_sided():
    assert cpt_length.wilcoxon_less([-1.0, -2.0, -0.5, -0.2, -0.1, -0.3]) < 0.05
    assert cpt_length.wilcoxon_less([1.0, 2.0, 0.5, 0.2, 0.1, 0.3]) > 0.95


# --- per-length summaries (length_sweep) -----------------------------------------------------------


def test_pass_and_entropy_by_length():
    trials = synthetic_trials({"base": base_like})
    passes = length_sweep.pass_by_length(trials).set_index("length")
    assert passes.loc[256, "pass_rate"] == 1.0 and passes.loc[512, "pass_rate"] == 0.0
    assert passes.loc[256, "trials"] == 2 * len(DEPTHS)
    assert 0 < passes.loc[512, "ci_high"] < 0.5 and passes.loc[256, "ci_low"] > 0.5  # Wilson, not [0, 0]
    entropy = length_sweep.entropy_by_length(trials).set_index("length")
    assert entropy.loc[1024, "ci_low"] <= entropy.loc[1024, "entropy"] <= entropy.loc[1024, "ci_high"]
    assert entropy.loc[1024, "entropy"] == pytest.approx(math.log(1024) - 0.5, abs=0.02)


def test_ppl_is_exp_of_mean_loss_and_wide_keeps_the_variant_order():
    ppl = pd.DataFrame([{"method": m, "length": L, "document": d, "loss": loss}
                        for m, loss in (("z-first", 2.0), ("a-second", 1.0)) for L in (256, 512) for d in "abc"])
    summary = length_sweep.ppl_by_length(ppl)
    assert summary["ppl"].iloc[0] == pytest.approx(math.exp(2.0))
    assert list(length_sweep.wide(summary, "ppl").index) == ["z-first", "a-second"]


# --- equal-token recipes and retraining ---------------------------------------------------------


def test_equal_token_recipes_reproduce_the_committed_pair():
    short, long = cpt_length.equal_token_recipes(256, 2048, 2_457_600)
    assert short == recipes.SHORT_8X and long == recipes.LONG_8X


@pytest.mark.parametrize("short_length, long_length, tokens", [(128, 1024, 1_000_000), (512, 8192, 3_000_000)])
def test_equal_token_recipes_spend_the_same_tokens(short_length, long_length, tokens):
    short, long = cpt_length.equal_token_recipes(short_length, long_length, tokens)
    assert short[0] == long[0] == recipes.CPT_WARMUP  # the same warm-up, then the compared tokens
    spent = [sum(s.length * s.steps * s.batch_size for s in stages[1:]) for stages in (short, long)]
    assert spent[0] == spent[1] and abs(spent[0] - tokens) <= max(4096, long_length) / 2
    assert short[-1].length == short_length and long[-1].length == long_length


@pytest.mark.parametrize("short_length, long_length, message", [
    (1024, 512, "must be below"), (384, 2048, "must divide"),
])
def test_equal_token_recipes_refuse_bad_pairs(short_length, long_length, message):
    with pytest.raises(ValueError, match=message):
        cpt_length.equal_token_recipes(short_length, long_length, 100_000)


MICRO = OrganismConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64,
                       head_dim=16)


def test_retrain_trains_both_models_into_the_given_directory_only(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    model_dir, out_dir = tmp_path / "models", tmp_path / "retrained"
    monkeypatch.setattr(models.paths, "MODELS", model_dir)
    monkeypatch.setitem(recipes.SIZES, "M", MICRO)  # the retrained specs are size M; make M tiny
    base = organism.build(MICRO, seed=0)
    models.save_organism(base, model_dir / "base", {
        "name": "base", "organism": MICRO.as_dict(),
        "rope": {"method": "rope", "factor": 1.0, "extra": {}, "pretrained_base": MICRO.rope_base,
                 "pretrained_length": MICRO.train_length, "rope_parameters": dict(base.config.rope_parameters),
                 "max_position_embeddings": base.config.max_position_embeddings}})

    warmup = Stage(32, 2, 4, needle_fraction=0.8)
    short, long = cpt_length.retrain(64, 256, 3 * 4096, factor=4.0, directory=out_dir, seed=0, warmup=warmup)

    assert sorted(p.name for p in model_dir.iterdir()) == ["base"]  # nothing new next to the committed models
    manifests = [json.loads((out_dir / name / models.MANIFEST).read_text()) for name in ("ntk4-short-64", "ntk4-long-256")]
    assert [m["tokens_seen"] for m in manifests] == [3 * 4096 + 256, 3 * 4096 + 256]
    assert [[s["length"] for s in m["recipe"]["stages"]] for m in manifests] == [[32, 64], [32, 128, 256]]
    assert all(m["rope"]["method"] == "ntk" and m["rope"]["factor"] == 4.0 and m["parent"] == "base" for m in manifests)
    parsed = variants.parse([short, long])
    assert [v.method for v in parsed] == ["ntk", "ntk"]
    assert cpt_length.cpt_length(parsed[1].source) == 256
    with pytest.raises(ValueError, match="long_length=2048"):
        cpt_length.check_cpt_length(parsed[1].source, 2048, "long_length")
    loaded = models.load(parsed[0].source)
    assert np.isfinite(loaded.model(torch.zeros(1, 8, dtype=torch.long)).logits.detach().numpy()).all()


def test_cells_keep_the_evaluation_order_of_methods():
    trials = synthetic_trials({"zeta": base_like, "alpha": long_like})
    cells = length_sweep.cells_in_order(trials)
    assert list(dict.fromkeys(cells["method"])) == ["zeta", "alpha"]
    assert len(cells) == 2 * len(LENGTHS) * len(DEPTHS)


def test_further_references_are_compared_with_the_short_model_but_not_judged():
    trials = synthetic_trials({"base": base_like, "short": base_like, "long": long_like, "rope": long_like})
    table = cpt_length.comparisons(trials, "base", "short", "long", beyond=256, references=("rope",))
    assert list(table["comparison"]) == ["long vs short", "short vs base", "short vs rope"]
    assert table.iloc[2]["d_pass"] == -1.0 and table.iloc[2]["first"] == "rope"
    assert len(cpt_length.glance_rows(table)) == 3
