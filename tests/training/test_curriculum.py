"""ropelib.training.curriculum and recipes.train_one on a micro organism: the loss falls, the manifest is valid,
and the checkpoint loads back with identical logits. About ten seconds on one thread."""

import json

import pytest
import torch

from ropelib.models import load as models, organism
from ropelib.training import recipes, curriculum as training
from ropelib.models.organism import OrganismConfig
from ropelib.training.recipes import CheckpointSpec
from ropelib.training.curriculum import BatchSampler, Recipe, Stage, lr_schedule
from ropelib.text.tokenizer import ByteTokenizer

torch.set_num_threads(1)

LENGTH = 48  # room for the compact needle, its question and some haystack
MICRO = OrganismConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64,
                       head_dim=16, rope_base=100.0, train_length=LENGTH)
RECIPE = Recipe(stages=[Stage(LENGTH, 20, 8)], lr=3e-3, warmup_steps=2, eval_every=10)


def test_twenty_steps_decrease_the_loss():
    model = organism.build(MICRO, seed=0)
    before = training.dev_loss(model, LENGTH)
    log = training.train(model, RECIPE, eval_length=LENGTH, desc="micro")
    after = training.dev_loss(model, LENGTH)
    assert after < before - 0.5, (before, after)
    assert log.tokens_seen == RECIPE.tokens == 20 * 8 * LENGTH
    assert [p["step"] for p in log.curve] == [10, 20]
    assert log.curve[-1]["dev_loss"] == pytest.approx(after, abs=1e-3)
    assert not model.training


def test_train_one_writes_a_manifest_that_loads_back(tmp_path, monkeypatch):
    spec = CheckpointSpec("micro", "test", RECIPE, size="micro", pretrained_base=100.0, pretrained_length=LENGTH)
    monkeypatch.setitem(recipes.SPECS, "micro", spec)
    monkeypatch.setitem(recipes.SIZES, "micro", MICRO)
    monkeypatch.setattr(recipes, "organism_dir", lambda name: tmp_path / name)
    trained = {}
    real_save = recipes.save_organism

    def keep_model(model, directory, manifest):
        trained["model"] = model
        return real_save(model, directory, manifest)

    monkeypatch.setattr(recipes, "save_organism", keep_model)
    returned = recipes.train_one("micro", seed=0)

    directory = tmp_path / "micro"
    manifest = json.loads((directory / models.MANIFEST).read_text())
    assert manifest == returned
    assert manifest["weights_sha256"] == models.sha256_file(directory / models.WEIGHTS)
    assert manifest["tokens_seen"] == RECIPE.tokens and manifest["smoke_scale"] == 1.0
    assert manifest["organism"] == MICRO.as_dict()
    assert manifest["rope"]["pretrained_base"] == 100.0 and manifest["rope"]["method"] == "rope"
    assert manifest["recipe"]["tokens"] == RECIPE.tokens
    assert {"retrieval_at_L0", "dev_loss_at_L0"} <= set(manifest["final"])
    assert [row["length"] for row in manifest["gate"]] == [LENGTH] and manifest["trained_length"] == LENGTH
    assert {"hits", "needles", "rate", "ci_low", "ci_high", "passed"} <= set(manifest["gate"][0])
    assert len(manifest["curve"]) == 2 and manifest["corpus"]["train_sha256"]

    loaded = models.load(str(directory))
    assert loaded.kind == "organism" and loaded.manifest == manifest
    tokens = torch.randint(0, 256, (2, LENGTH))
    with torch.no_grad():
        assert torch.equal(loaded.model(tokens).logits, trained["model"].eval()(tokens).logits)


def test_batches_have_one_bos_at_the_front():
    sampler = BatchSampler("train", seed=0, needle_fraction=0.5, repeat_fraction=0.2)
    batch = sampler.batch(LENGTH, 16)
    assert batch.shape == (16, LENGTH + 1)
    bos = ByteTokenizer().bos_token_id
    assert (batch[:, 0] == bos).all() and ((batch == bos).sum(1) == 1).all()


def test_sampler_is_seeded():
    first = BatchSampler("train", seed=3, needle_fraction=0.5).batch(LENGTH, 4)
    assert torch.equal(first, BatchSampler("train", seed=3, needle_fraction=0.5).batch(LENGTH, 4))
    assert not torch.equal(first, BatchSampler("train", seed=4, needle_fraction=0.5).batch(LENGTH, 4))


def test_bad_mixture():
    with pytest.raises(ValueError, match="<= 1"):
        BatchSampler("train", seed=0, needle_fraction=0.8, repeat_fraction=0.3)


def test_smoke_scaling_shortens_stages_but_keeps_their_mixture():
    recipe = Recipe(stages=[recipes.CPT_WARMUP, Stage(1024, 400, 4)], warmup_steps=30, eval_every=50)
    scaled = recipes._scaled(recipe, 0.01)
    assert [s.steps for s in scaled.stages] == [2, 4]
    assert scaled.stages[0].needle_fraction == recipes.CPT_WARMUP.needle_fraction == 0.8
    assert [s.length for s in scaled.stages] == [128, 1024] and scaled.warmup_steps == 1


def test_every_continual_pretraining_starts_with_the_same_warmup():
    cpts = [spec for spec in recipes.SPECS.values() if spec.parent]
    assert cpts and all(spec.recipe.stages[0] == recipes.CPT_WARMUP for spec in cpts)
    four_x = [spec for spec in cpts if spec.factor == 4.0]
    assert len({spec.recipe.tokens for spec in four_x}) == 1  # same tokens for every method and size


def test_mixed_needle_lengths_pack_a_new_document_after_a_short_needle():
    sampler = BatchSampler("train", seed=0, needle_fraction=1.0)
    sampler.short_needles = 1.0
    bos = ByteTokenizer().bos_token_id
    rows = sampler.batch(256, 16)
    assert rows.shape == (16, 257) and (rows[:, 0] == bos).all()
    assert ((rows == bos).sum(1) == 2).sum() >= 12  # almost every needle is shorter; a new document follows it


def test_lr_schedule_restarts_only_where_a_stage_says_so():
    plain = Recipe(stages=[Stage(32, 100, 2), Stage(64, 100, 2)], lr=1e-3, warmup_steps=10)
    schedule = lr_schedule(plain)
    assert len(schedule) == 200 and max(schedule) == pytest.approx(1e-3)
    assert schedule[-1] == pytest.approx(1e-4, rel=0.01)  # one cosine down to min_lr_ratio * lr
    assert all(a >= b for a, b in zip(schedule[10:], schedule[11:]))  # never rises after the warmup
    restarted = Recipe(stages=[Stage(32, 100, 2), Stage(64, 100, 2, restart_lr=5e-4)], lr=1e-3, warmup_steps=10)
    again = lr_schedule(restarted)
    assert again[99] == pytest.approx(1e-4, rel=0.01)  # the first phase decays over its own 100 steps
    assert again[100] == pytest.approx(5e-4 / 10) and max(again[100:]) == pytest.approx(5e-4)  # new warmup
    assert again[-1] == pytest.approx(5e-5, rel=0.01)


def test_the_natively_long_reference_spends_most_of_its_tokens_at_4_l0():
    """Issue 12: >= 75% of native-4x's tokens at 4 L0, the short phase before it only, restarted there."""
    stages = recipes.SPECS["native-4x"].recipe.stages
    tokens = recipes.SPECS["native-4x"].recipe.tokens_by_length
    long = [i for i, s in enumerate(stages) if s.length == 4 * organism.L0]
    assert long == [len(stages) - 1] and tokens[4 * organism.L0] / sum(tokens.values()) >= 0.75
    assert all(s.length <= organism.L0 // 4 for s in stages[:-1])  # nothing between the short phase and 4 L0
    assert stages[-1].restart_lr is not None
    assert "native-4x" not in recipes.KNOWN_MISSES
