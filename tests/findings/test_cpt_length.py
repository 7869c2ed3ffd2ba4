"""Finding 3 (ropelib.findings.cpt_length.analysis, .verdicts) and the shared length-sweep summaries:
who is compared and the checks before any work (manifest-only checkpoints in a tmp folder), each
claim's estimand (registry 3.1, 3.2, 3.25, 3.3) and row on synthetic needle tables, with tables that
must NOT replicate (a level offset, noise, all-token entropy that reads errors, zero-width intervals,
too few prompts, a model that misses the premise still graded with a caveat), the equal-token
recipes, and the retrain path on a micro organism in a tmp dir (never data/models)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from manifest_fixtures import MICRO, huggingface_dir, organisms, write_checkpoint

from ropelib.models import load as models, organism, variants
from ropelib.training import recipes
from ropelib import results
from ropelib.findings.cpt_length import analysis as cpt_length
from ropelib.findings import sweep as length_sweep
from ropelib.findings.cpt_length import verdicts
from ropelib.training.curriculum import Stage

LENGTHS = [256, 512, 1024, 2048]
DEPTHS = [0, 50, 100]
SHORT = 256  # the short CPT length of the synthetic tables: the shortest length, inside both


def synthetic_trials(spec: dict, needles: int = 2) -> pd.DataFrame:
    """``spec``: method -> f(length, depth, needle) -> (passed, teacher-forced entropy[, all-token entropy]);
    rows like tasks.needle.needle_grid's (all-token entropy = teacher-forced unless given)."""
    rows = []
    for method, trial in spec.items():
        for length in LENGTHS:
            for depth in DEPTHS:
                for i in range(needles):
                    passed, teacher, *rest = trial(length, depth, i)
                    rows.append({"method": method, "length": length, "depth": float(depth), "trial": len(rows),
                                 "passed": bool(passed), "entropy": float(rest[0] if rest else teacher),
                                 "entropy_first": float(teacher), "entropy_teacher": float(teacher),
                                 "needle_mass": 0.0})
    return pd.DataFrame(rows)


def noise(length, depth, i, scale=0.02):
    """A deterministic, prompt-dependent wiggle (the same for every model: a prompt is shared)."""
    return scale * math.sin(length * 0.37 + depth * 1.3 + i)


def base_like(length, depth, i):  # uniform-attention growth: ln L
    return length <= SHORT, math.log(length) - 0.5 + noise(length, depth, i)


def flat_long(length, depth, i):  # passes everywhere; entropy rises half as fast as base_like past SHORT
    # (its own prompt noise on top of the shared one: paired differences that vary, a CI with width)
    return True, (math.log(SHORT) - 0.5 + 0.5 * math.log(length / SHORT) + noise(length, depth, i)
                  + noise(length, depth, i + 13, 0.05))


def offset_long(length, depth, i):  # 1 nat lower at EVERY length, inside both training lengths too: same slope
    return True, math.log(length) - 1.5 + noise(length, depth, i)


def judged(trials, short="short", long="long", base="base", long_length=2 * SHORT, pretrained_length=SHORT):
    """Roles-free judgement of a synthetic table: (rows by order, judgement)."""
    judgement = verdicts.judge_methods(trials, base, short, long, SHORT, long_length, pretrained_length)
    return {r["order"]: r for r in verdicts.glance_rows(judgement, model="organism")}, judgement


def rate(length, depth, i, share):
    """Deterministic pass/fail with a prompt-dependent pattern: a share ``share`` of prompts pass."""
    return (hash((length, depth, i)) % 1000) / 1000 < share


# --- 3.1: the slope difference, direction -1 ---------------------------------------------------------


def test_a_flatter_rise_replicates_with_a_paired_ci_below_zero():
    rows, j = judged(synthetic_trials({"base": base_like, "short": base_like, "long": flat_long}))
    s = j.slopes
    assert s["slope_short"] == pytest.approx(1.0, abs=0.02) and s["slope_long"] == pytest.approx(0.5, abs=0.05)
    assert s["d_slope_ci_high"] < -0.1 and s["prompts"] == len(LENGTHS) * len(DEPTHS) * 2
    row = rows[3.1]
    assert row["verdict"] == "replicated" and row["kind"] == "paper" and row["direction"] == -1
    assert row["estimate"] == pytest.approx(s["d_slope"], rel=1e-3) and row["n_units"] == s["prompts"]
    assert row["unit"] == "prompt" and "shown, not graded" in row["details"] and row["model"] == "organism"


def test_a_constant_offset_at_every_length_does_not_replicate():
    """Lower by the same 1 nat everywhere, inside both training lengths included: equal slopes, a level."""
    rows, j = judged(synthetic_trials({"base": base_like, "short": base_like, "long": offset_long}))
    assert j.slopes["d_slope"] == pytest.approx(0.0, abs=1e-9)
    assert j.slopes["gap_shortest"] == pytest.approx(-1.0) and j.slopes["shortest_length"] == SHORT  # shown ...
    assert j.table.set_index("comparison").loc["long vs short", "d_entropy"] == pytest.approx(-1.0)  # ... a level
    assert rows[3.1]["verdict"] == "inconclusive"  # ... not graded: equal slopes in every draw, a zero-width CI
    assert "zero-width" in rows[3.1]["parts"]
    wiggled = synthetic_trials({"base": base_like, "short": base_like,
                                "long": lambda L, d, i: (True, offset_long(L, d, i)[1] + noise(L, d, i + 7, 0.1))},
                               needles=8)
    assert judged(wiggled)[0][3.1]["verdict"] == "not replicated"  # same slope, noisy: CI inside +-0.1


def test_the_row_reads_teacher_forced_entropy_not_the_all_token_mean():
    """All-token entropy that flattens only because errors feed back (teacher-forced: the same slope + noise)."""
    def errors_feed_back(length, depth, i):
        teacher = offset_long(length, depth, i)[1] + noise(length, depth, i + 7, 0.1)
        return True, teacher, flat_long(length, depth, i)[1] - 1.0
    rows, j = judged(synthetic_trials({"base": base_like, "short": base_like, "long": errors_feed_back}, needles=8))
    assert j.all_token["d_slope"] < -0.4 and rows[3.1]["verdict"] == "not replicated"
    assert "Appendix C all-token entropy" in rows[3.1]["details"]


def test_a_noisy_slope_difference_is_inconclusive():
    def noisy(length, depth, i):  # slope 0.9 vs 1.0, with large prompt noise: the CI holds 0 and -0.1
        return True, math.log(SHORT) + 0.9 * math.log(length / SHORT) + noise(length, depth, i, 1.5)
    rows, _ = judged(synthetic_trials({"base": base_like, "short": base_like, "long": noisy}))
    assert rows[3.1]["verdict"] == "inconclusive"


def test_too_few_prompts_are_inconclusive_whatever_the_slopes():
    trials = synthetic_trials({"base": base_like, "short": base_like, "long": flat_long}, needles=1)
    trials = trials[trials["depth"] == 0]  # 4 lengths x 1 depth x 1 needle: 4 prompts < 8
    rows, j = judged(trials)
    assert j.slopes["prompts"] == 4 and rows[3.1]["verdict"] == "inconclusive"
    assert "too few units" in rows[3.1]["parts"]


def test_bootstrap_is_seeded_and_paired():
    trials = synthetic_trials({"short": base_like, "long": flat_long})
    first = verdicts.entropy_slopes(trials, "short", "long", SHORT, seed=3)
    assert first == verdicts.entropy_slopes(trials, "short", "long", SHORT, seed=3)
    same = verdicts.entropy_slopes(synthetic_trials({"short": base_like, "long": base_like}), "short", "long", SHORT)
    assert same["d_slope_ci_low"] == same["d_slope_ci_high"] == 0.0  # paired: identical models, no spread


# --- 3.2 / 3.25: pass-rate differences over prompts, direction +1, premise as a caveat ---------------


def test_passes_are_split_within_the_long_cpt_length_and_beyond_both():
    """A long model that passes more only at its own training length: 3.2 replicates, 3.25 does not."""
    def at_own_length(length, depth, i):
        return length <= 2 * SHORT or rate(length, depth, i, 0.0), flat_long(length, depth, i)[1]
    def short_model(length, depth, i):  # passes at L0, then half the prompts beyond it
        return length <= SHORT or rate(length, depth, i, 0.5), base_like(length, depth, i)[1]
    rows, j = judged(synthetic_trials({"base": base_like, "short": short_model, "long": at_own_length}, needles=4))
    assert rows[3.2]["verdict"] == "replicated" and rows[3.2]["n_units"] == len(DEPTHS) * 4  # prompts at 512
    assert rows[3.25]["verdict"] == "not replicated" and rows[3.25]["n_units"] == 2 * len(DEPTHS) * 4
    bands = j.table.set_index("comparison")
    assert bands.loc["long vs short, within the long CPT length", "upto"] == 2 * SHORT
    assert bands.loc["long vs short, beyond both", "beyond"] == 2 * SHORT
    assert rows[3.2]["caveats"] == "" and rows[3.2]["sensitivity"] == ""  # both retrieve at L0


def test_every_paired_difference_zero_is_inconclusive_not_absence():
    """3.25 as committed: neither model passes beyond both lengths, a [0, 0] bootstrap: not a CI."""
    def fails_beyond(length, depth, i):
        return length <= SHORT, flat_long(length, depth, i)[1]
    rows, j = judged(synthetic_trials({"base": base_like, "short": fails_beyond, "long": fails_beyond}))
    beyond = j.table.set_index("comparison").loc["long vs short, beyond both"]
    assert (beyond["d_pass"], beyond["pass_ci_low"], beyond["pass_ci_high"]) == (0.0, 0.0, 0.0)
    assert rows[3.25]["verdict"] == "inconclusive" and "zero-width" in rows[3.25]["parts"]


def test_a_long_model_that_passes_fewer_needles_does_not_replicate():
    def fails_beyond(length, depth, i):  # a fifth of the prompts beyond L0
        return length <= SHORT or rate(length, depth, i, 0.2), flat_long(length, depth, i)[1]
    def passes(length, depth, i):
        return True, base_like(length, depth, i)[1]
    rows, _ = judged(synthetic_trials({"base": base_like, "short": passes, "long": fails_beyond}, needles=4))
    assert rows[3.2]["verdict"] == "not replicated" and rows[3.1]["verdict"] == "replicated"


def test_noisy_pass_differences_are_inconclusive():
    def coin(seed):
        return lambda length, depth, i: (length <= SHORT or rate(length, depth, i + seed, 0.5),
                                         base_like(length, depth, i)[1])
    rows, _ = judged(synthetic_trials({"base": base_like, "short": coin(0), "long": coin(100)}, needles=2))
    assert rows[3.2]["verdict"] == "inconclusive"


def test_a_model_that_misses_the_premise_is_still_graded_with_a_caveat():
    """The long model retrieves nothing at L0 on the page's trials: 3.2 is graded on every prompt, the
    caveat names it, and the sensitivity line has no units (a compared model misses the premise)."""
    def no_L0(length, depth, i):
        return SHORT < length <= 2 * SHORT, flat_long(length, depth, i)[1]
    def short_model(length, depth, i):
        return length <= SHORT or rate(length, depth, i, 0.2), base_like(length, depth, i)[1]
    rows, j = judged(synthetic_trials({"base": base_like, "short": short_model, "long": no_L0}, needles=4))
    assert j.at_L0 == {"short": 1.0, "long": 0.0}
    assert rows[3.2]["verdict"] == "replicated"  # graded all the same
    assert rows[3.2]["caveats"].startswith("long misses the premise 'retrieves at L0': pass rate 0 < 0.8")
    assert rows[3.2]["sensitivity"].startswith("on the units that meet the premises: not testable")
    assert rows[3.1]["caveats"] == "" and rows[3.3]["caveats"] == ""  # entropy claims have no premise


def test_a_grid_without_L0_says_the_premise_was_not_checked():
    trials = synthetic_trials({"base": base_like, "short": base_like, "long": flat_long})
    rows, _ = judged(trials, pretrained_length=128)
    assert "not checked for short: no trials at L0 = 128" in rows[3.2]["caveats"]


# --- 3.3: short - base entropy, direction 0 (equivalence within +-0.1) -----------------------------


def test_a_short_cpt_that_changes_entropy_is_not_little_change():
    def lowered(length, depth, i):
        return length <= SHORT, base_like(length, depth, i)[1] - 0.5 + noise(length, depth, i + 3)
    rows, _ = judged(synthetic_trials({"base": base_like, "short": lowered, "long": flat_long}))
    assert rows[3.3]["verdict"] == "not replicated" and rows[3.3]["direction"] == 0


def test_little_change_is_graded_on_entropy_and_shows_the_pass_rate():
    def broken(length, depth, i):
        return False, base_like(length, depth, i)[1]
    def repaired(length, depth, i):  # passes more, nearly the same entropy: the paper's claim is about entropy
        return True, base_like(length, depth, i)[1] + noise(length, depth, i + 5)
    rows, _ = judged(synthetic_trials({"base": broken, "short": repaired, "long": flat_long}))
    assert rows[3.3]["verdict"] == "replicated" and "pass rate (shown, not graded) +1" in rows[3.3]["details"]


def test_identical_entropy_is_a_zero_width_interval_and_inconclusive():
    rows, _ = judged(synthetic_trials({"base": base_like, "short": base_like, "long": flat_long}))
    assert rows[3.3]["verdict"] == "inconclusive" and "zero-width" in rows[3.3]["parts"]


def test_noisy_entropy_differences_are_not_absence():
    def noisy(length, depth, i):
        return length <= SHORT, base_like(length, depth, i)[1] + noise(length, depth, i + 11, 0.8)
    rows, _ = judged(synthetic_trials({"base": base_like, "short": noisy, "long": flat_long}))
    assert rows[3.3]["verdict"] == "inconclusive"


# --- rows, not testable, tables ---------------------------------------------------------------


def test_without_a_pair_every_claim_is_not_testable_and_says_why():
    rows = verdicts.glance_rows(verdicts.Judgement(None, None, None), model="organism")
    assert [r["verdict"] for r in rows] == ["not testable"] * 4 and [r["order"] for r in rows] == [3.1, 3.2, 3.25, 3.3]
    assert all("nothing to compare" in r["details"] for r in rows)
    assert all(line.count("NOT TESTABLE") == 1 for line in verdicts.verdict_lines(rows))
    assert verdicts.tables_text(verdicts.Judgement(None, None, None)) == "no short/long CPT pair: nothing compared"


def test_rows_carry_the_registry_columns():
    rows, _ = judged(synthetic_trials({"base": base_like, "short": base_like, "long": flat_long}))
    frame = pd.DataFrame(list(rows.values()), columns=results.GLANCE_COLUMNS)
    assert list(frame.columns) == results.GLANCE_COLUMNS
    assert list(frame["direction"]) == [-1, 1, 1, 0] and set(frame["unit"]) == {"prompt"}
    assert all("one rule for every row" in r for r in frame["rule"])


def test_paired_prompts_keep_lengths_beyond_and_subtract_first_from_second():
    trials = synthetic_trials({"short": base_like, "long": flat_long})
    pairs = verdicts.paired_prompts(trials, "short", "long", beyond=SHORT)
    assert sorted(pairs["length"].unique()) == [512, 1024, 2048]
    assert len(pairs) == 3 * len(DEPTHS) * 2 and (pairs["d_pass"] == 1.0).all()
    upto = verdicts.paired_prompts(trials, "short", "long", beyond=SHORT, upto=1024)
    assert sorted(upto["length"].unique()) == [512, 1024]


def test_further_references_are_compared_with_the_short_model_but_not_graded():
    trials = synthetic_trials({"base": base_like, "short": base_like, "long": flat_long, "rope": flat_long})
    table = verdicts.comparisons(trials, "base", "short", "long", beyond=SHORT, long_length=2 * SHORT,
                                 references=("rope",))
    assert list(table["comparison"])[:3] == ["long vs short", "short vs base", "short vs rope"]
    assert table.iloc[2]["d_pass"] == -1.0 and table.iloc[2]["first"] == "rope"


# --- who is compared, checked before any work -------------------------------------------------------


@pytest.fixture
def pair(monkeypatch, tmp_path):
    root = organisms(monkeypatch, tmp_path)
    write_checkpoint(root, "base")
    write_checkpoint(root, "ntk8-short", [(128, 2, 4), (256, 4, 4)], "base", "ntk", 8.0)
    write_checkpoint(root, "ntk8-long", [(128, 2, 4), (1024, 2, 1), (2048, 2, 1)], "base", "ntk", 8.0)
    return root


def default_roles(**changes):
    kwargs = dict(model="", short_model="", long_model="", base_variant="ntk:base", short_variant="ntk:ntk8-short",
                  long_variant="ntk:ntk8-long", reference_variants=["rope:base"]) | changes
    return cpt_length.resolve_roles(**kwargs)


def test_the_organism_pair_is_resolved_with_L0_from_the_base(pair):
    roles = default_roles()
    assert [v.label for v in roles.evaluated] == ["RoPE (base)", "NTK (base)", "NTK (ntk8-short)", "NTK (ntk8-long)"]
    assert roles.has_pair and roles.pretrained_length == 256
    cpt_length.check_setup(roles, [256, 512, 1024], 256, 2048, retrain=False, train_tokens=4096, factor=8.0)


def test_a_model_without_a_pair_runs_the_base_sweep_only(pair, tmp_path):
    llama = huggingface_dir(tmp_path, "Llama-2-7b-hf", max_positions=4096)
    roles = default_roles(model=str(llama))
    assert [v.label for v in roles.evaluated] == ["RoPE (Llama-2-7b-hf)", "NTK (Llama-2-7b-hf)"]
    assert not roles.has_pair and roles.pretrained_length == 4096
    assert cpt_length.grid_lengths([], roles.pretrained_length) == [4096, 8192, 16384, 32768, 65536]
    assert "skipped" in cpt_length.setup_line(roles, 256, 2048, 8.0)
    cpt_length.check_setup(roles, [4096, 8192], 256, 2048, retrain=False, train_tokens=4096, factor=8.0)


def test_hugging_face_cpt_checkpoints_run_as_saved(pair, tmp_path):
    llama = huggingface_dir(tmp_path, "Llama-2-7b-hf")
    short = huggingface_dir(tmp_path, "cpt-4k", theta=80000.0)
    long = huggingface_dir(tmp_path, "cpt-32k", max_positions=32768, theta=80000.0)
    roles = default_roles(model=str(llama), short_model=str(short), long_model=str(long))
    assert roles.short.method == roles.long.method == "rope"  # their config.json holds the trained base
    assert roles.has_pair and cpt_length.marks(roles, 4096, 32768) == {"L0 = 4096": 4096, "long CPT = 32768": 32768}
    with pytest.raises(ValueError, match="both CPT checkpoints or neither"):
        default_roles(model=str(llama), short_model=str(short))


def test_missed_gates_are_shown_in_the_gate_table(pair):
    """Gates are information on the page; the rows' premise is computed from the page's own trials."""
    write_checkpoint(pair, "ntk8-long", [(128, 2, 4), (2048, 2, 1)], "base", "ntk", 8.0, gate=False)
    write_checkpoint(pair, "ntk8-short", [(128, 2, 4), (256, 4, 4)], "base", "ntk", 8.0, gate=None)  # smoke
    assert length_sweep.gate_table(default_roles().evaluated)["gate"].tolist() == ["passed", "passed", "missed",
                                                                                 "missed"]


@pytest.mark.parametrize("changes, message", [
    (dict(long_length=4096), "long_length=4096 but checkpoint 'ntk8-long'"),
    (dict(factor=4.0), "trained with ntk x8; set factor=8"),
    (dict(lengths=[128, 256]), "two lengths >= short_length"),
    (dict(short_length=2048), "must be below"),
])
def test_setup_checks_fail_before_any_work(pair, changes, message):
    kwargs = dict(lengths=[256, 512, 1024], short_length=256, long_length=2048, retrain=False, train_tokens=4096,
                  factor=8.0) | changes
    with pytest.raises(ValueError, match=message):
        cpt_length.check_setup(default_roles(), **kwargs)


def test_retraining_needs_the_organism_base(pair, tmp_path):
    roles = default_roles(model=str(huggingface_dir(tmp_path, "Llama-2-7b-hf")))
    with pytest.raises(ValueError, match="retrain=True trains the organism's pair"):
        cpt_length.check_setup(roles, [4096, 8192], 256, 2048, retrain=True, train_tokens=4096, factor=8.0)


# --- per-length summaries and slopes (length_sweep) ----------------------------------------------------


def test_pass_and_entropy_by_length():
    trials = synthetic_trials({"base": base_like})
    passes = length_sweep.pass_by_length(trials).set_index("length")
    assert passes.loc[256, "pass_rate"] == 1.0 and passes.loc[512, "pass_rate"] == 0.0
    assert 0 < passes.loc[512, "ci_high"] < 0.5 and passes.loc[256, "ci_low"] > 0.5  # Wilson, not [0, 0]
    entropy = length_sweep.entropy_by_length(trials, column="entropy_teacher").set_index("length")
    assert entropy.loc[1024, "ci_low"] <= entropy.loc[1024, "entropy"] <= entropy.loc[1024, "ci_high"]
    assert entropy.loc[1024, "entropy"] == pytest.approx(math.log(1024) - 0.5, abs=0.02)


def test_slope_fit_is_ols_against_ln_length_on_shared_prompts():
    trials = synthetic_trials({"zeta": base_like, "alpha": flat_long})
    prompts = length_sweep.prompt_table(trials, "entropy_teacher")
    assert list(prompts.columns) == ["zeta", "alpha"] and len(prompts) == len(LENGTHS) * len(DEPTHS) * 2
    fit = length_sweep.slope_fit(trials, ["zeta", "alpha"], 512, n_boot=50)
    assert fit.lengths == [512, 1024, 2048] and fit.boot_slopes.shape == (50, 2)
    assert fit.slopes["zeta"] == pytest.approx(1.0, abs=0.03) and fit.slopes["alpha"] == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ValueError, match="at least 2 lengths"):
        length_sweep.slope_fit(trials, ["zeta"], 2048)


def test_cells_keep_the_evaluation_order_and_show_the_chosen_entropy():
    def split(length, depth, i):
        return True, 1.0, 9.0
    cells = length_sweep.cells_in_order(synthetic_trials({"zeta": base_like, "alpha": split}), "entropy_teacher")
    assert list(dict.fromkeys(cells["method"])) == ["zeta", "alpha"]
    assert (cells[cells["method"] == "alpha"]["entropy"] == 1.0).all()


def test_ppl_is_exp_of_mean_loss_and_wide_keeps_the_variant_order():
    ppl = pd.DataFrame([{"method": m, "length": L, "document": d, "loss": loss}
                        for m, loss in (("z-first", 2.0), ("a-second", 1.0)) for L in (256, 512) for d in "abc"])
    summary = length_sweep.ppl_by_length(ppl)
    assert summary["ppl"].iloc[0] == pytest.approx(math.exp(2.0))
    assert list(length_sweep.wide(summary, "ppl").index) == ["z-first", "a-second"]


# --- equal-token recipes and retraining ---------------------------------------------------------


def test_the_committed_pair_spends_3072000_tokens_each_after_the_same_warm_up():
    mixed = {"short_needles": recipes.MIXED}
    assert recipes.SHORT_8X == (recipes.CPT_WARMUP, Stage(256, 750, 16, **mixed))
    assert recipes.LONG_8X == (recipes.CPT_WARMUP, Stage(2048, 750, 2, **mixed))
    assert cpt_length.equal_token_recipes is recipes.equal_token_recipes  # the chapter retrains with the same rule


@pytest.mark.parametrize("short_length, long_length, tokens", [(128, 1024, 1_000_000), (512, 8192, 3_000_000)])
def test_equal_token_recipes_spend_the_same_tokens(short_length, long_length, tokens):
    short, long = recipes.equal_token_recipes(short_length, long_length, tokens)
    assert short[0] == long[0] == recipes.CPT_WARMUP  # the same warm-up, then the compared tokens
    spent = [sum(s.length * s.steps * s.batch_size for s in stages[1:]) for stages in (short, long)]
    assert spent[0] == spent[1] and abs(spent[0] - tokens) <= max(4096, long_length) / 2
    assert short[-1].length == short_length and long[-1].length == long_length


@pytest.mark.parametrize("short_length, long_length, message", [
    (1024, 512, "must be below"), (384, 2048, "must divide"),
])
def test_equal_token_recipes_refuse_bad_pairs(short_length, long_length, message):
    with pytest.raises(ValueError, match=message):
        recipes.equal_token_recipes(short_length, long_length, 100_000)


def test_retrain_trains_both_models_into_the_given_directory_only(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    model_dir, out_dir = tmp_path / "models", tmp_path / "retrained"
    monkeypatch.setattr(models.paths, "MODELS", model_dir)
    monkeypatch.setitem(recipes.SIZES, "M", MICRO)  # the retrained specs are size M; make M tiny
    monkeypatch.setattr(recipes, "GATE_PER_DEPTH", 1)  # the gate's cost, not its rule, is shrunk
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
    assert [[s["length"] for s in m["recipe"]["stages"]] for m in manifests] == [[32, 64], [32, 256]]
    assert all(m["rope"]["method"] == "ntk" and m["rope"]["factor"] == 4.0 and m["parent"] == "base" for m in manifests)
    parsed = variants.parse([short, long])
    assert [v.method for v in parsed] == ["ntk", "ntk"]
    assert cpt_length.cpt_length(parsed[1].source) == 256
    with pytest.raises(ValueError, match="long_length=2048"):
        cpt_length.check_cpt_length(parsed[1].source, 2048, "long_length")
    loaded = models.load(parsed[0].source)
    assert np.isfinite(loaded.model(torch.zeros(1, 8, dtype=torch.long)).logits.detach().numpy()).all()


def test_the_chapter_takes_model_and_the_pair_and_derives_L0():
    from ropelib.publish import params
    from ropelib.paths import ROOT

    declared = params.declared(ROOT / "chapters" / "cpt-length.ipynb")
    assert {"model", "short_model", "long_model", "seed", "device", "short_length", "long_length"} <= set(declared)
    assert "pretrained_length" not in declared and declared["lengths"].default == []
