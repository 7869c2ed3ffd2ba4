"""Where a page's tables go: the organism's names, and a real model's own (never over the organism's)."""

import pandas as pd

from ropelib import results
from ropelib.models import lineup


def _row(order=1.1):
    return results.glance_row(order, "Finding 1", "claim", "paper", 0.5, "replicated", "rule", "chapter")


def test_the_organism_keeps_its_file_names(tmp_path):
    assert results.write_glance([_row()], "finding2", tmp_path).name == "glance-finding2.csv"
    assert results.write_csv(pd.DataFrame({"a": [1]}), "needle-trials", tmp_path).name == "needle-trials.csv"
    assert pd.read_csv(tmp_path / "glance-finding2.csv")["model"].tolist() == [results.ORGANISM]


def test_a_real_model_writes_its_own_files_and_rows(tmp_path):
    results.write_glance([_row()], "finding2", tmp_path)
    assert results.named("needle-trials", "smollm2") == "needle-trials-smollm2"
    assert results.write_glance([_row()], "finding2", tmp_path, model="smollm2").name == "glance-finding2-smollm2.csv"
    assert (results.write_csv(pd.DataFrame({"a": [1]}), "needle-trials", tmp_path, model="smollm2").name
            == "needle-trials-smollm2.csv")
    # a name that already holds the model is kept
    assert (results.write_csv(pd.DataFrame({"a": [1]}), "smollm2-perplexity", tmp_path, model="smollm2").name
            == "smollm2-perplexity.csv")
    both = results.read_glance(tmp_path)
    assert sorted(both["model"]) == [results.ORGANISM, "smollm2"]  # the organism's row was not overwritten


def test_no_module_level_switch():
    """The measured model is passed, never held: ``results`` keeps no state that a page could leave behind."""
    for name in ("measuring", "measured_model", "_measured"):
        assert not hasattr(results, name)
    assert results.named("needle-trials") == "needle-trials"  # no model given: the organism's name


def test_the_line_up_carries_the_model(monkeypatch):
    monkeypatch.setattr(lineup, "geometry", lambda source: lineup.Geometry(8192, 1e5, 8192))
    assert lineup.resolve("", ["rope:smollm2", "yarn:smollm2"]).model == "smollm2"
    assert lineup.resolve("", ["rope:base", "pi:cpt-pi"]).model == results.ORGANISM


def test_two_resolves_in_one_process_do_not_leak(tmp_path, monkeypatch):
    """A real model's line-up, then an organism one: each page's tables are named by its own line-up's model."""
    monkeypatch.setattr(lineup, "geometry", lambda source: lineup.Geometry(8192, 1e5, 8192))
    real_setup = lineup.resolve(model="smollm2")
    organism_setup = lineup.resolve("", ["rope:base", "pi:cpt-pi"])
    assert (real_setup.model, organism_setup.model) == ("smollm2", results.ORGANISM)
    frame = pd.DataFrame({"a": [1]})
    assert results.write_csv(frame, "needle-trials", tmp_path, model=organism_setup.model).name == "needle-trials.csv"
    assert results.write_glance([_row()], "finding2", tmp_path, model=organism_setup.model).name == "glance-finding2.csv"
    # and the real model's page, resolved first, still writes its own names
    assert (results.write_csv(frame, "needle-trials", tmp_path, model=real_setup.model).name
            == "needle-trials-smollm2.csv")
    assert (results.write_glance([_row()], "finding2", tmp_path, model=real_setup.model).name
            == "glance-finding2-smollm2.csv")
    # a page that never names a model (organism-only chapters) writes the organism's tables after either resolve
    lineup.resolve(model="smollm2")
    assert results.write_csv(frame, "model-size-gains", tmp_path).name == "model-size-gains.csv"
    assert sorted(results.read_glance(tmp_path)["model"]) == [results.ORGANISM, "smollm2"]
