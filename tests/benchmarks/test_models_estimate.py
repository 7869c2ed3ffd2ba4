"""benchmarks/models_estimate.py: which measurements it compares its estimate with (no timing)."""

import json

import pytest

from ropelib.models import load as models
from ropelib.training import recipes
from ropelib.paths import ROOT


@pytest.fixture
def estimator(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import models_estimate

    return models_estimate


def test_every_committed_checkpoint_was_trained_with_its_current_recipe(estimator):
    """A recipe edited without retraining would leave the book describing a checkpoint it does not have."""
    for name, spec in recipes.SPECS.items():
        manifest = json.loads((models.organism_dir(name) / models.MANIFEST).read_text())
        assert manifest["tokens_by_length"] == estimator._keyed(spec.recipe.tokens_by_length), name


def test_measurements_of_another_recipe_are_not_compared(estimator, monkeypatch, tmp_path):
    results, checkpoints = tmp_path / "results", tmp_path / "models"
    results.mkdir()
    monkeypatch.setattr(estimator, "RESULTS", results)
    monkeypatch.setattr(models, "organism_dir", lambda name: checkpoints / name)
    current = estimator._keyed(recipes.SPECS["base"].recipe.tokens_by_length)
    record = {"checkpoints": {"base": {"wall_seconds": 100.0, "tokens_by_length": current},
                              "native-4x": {"wall_seconds": 50.0, "tokens_by_length": {"1024": 1}}}}
    (results / "models.json").write_text(json.dumps(record))
    measured = estimator.measured_walls(recipes.SPECS)
    assert measured == {"base": {"wall_seconds": 100.0, "record": "models.json"}}
    (checkpoints / "base").mkdir(parents=True)  # a committed manifest of the same recipe is newer: it wins
    (checkpoints / "base" / models.MANIFEST).write_text(json.dumps({"wall_seconds": 90.0, "tokens_by_length": current}))
    assert estimator.measured_walls(recipes.SPECS)["base"]["wall_seconds"] == 90.0
