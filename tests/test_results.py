"""Where a page's tables go: the organism's names, and a real model's own (never over the organism's)."""

import pandas as pd
import pytest

from ropelib import results
from ropelib.models import lineup


@pytest.fixture(autouse=True)
def organism_again():
    yield
    results.measuring()  # the next test starts from the organism, as a fresh kernel does


def _row(order=1.1):
    return results.glance_row(order, "Finding 1", "claim", "paper", 0.5, "replicated", "rule", "chapter")


def test_the_organism_keeps_its_file_names(tmp_path):
    assert results.write_glance([_row()], "finding2", tmp_path).name == "glance-finding2.csv"
    assert results.write_csv(pd.DataFrame({"a": [1]}), "needle-trials", tmp_path).name == "needle-trials.csv"
    assert pd.read_csv(tmp_path / "glance-finding2.csv")["model"].tolist() == [results.ORGANISM]


def test_a_real_model_writes_its_own_files_and_rows(tmp_path):
    results.write_glance([_row()], "finding2", tmp_path)
    results.measuring("smollm2")
    assert results.write_glance([_row()], "finding2", tmp_path).name == "glance-finding2-smollm2.csv"
    assert results.write_csv(pd.DataFrame({"a": [1]}), "needle-trials", tmp_path).name == "needle-trials-smollm2.csv"
    # a name that already holds the model is kept
    assert results.write_csv(pd.DataFrame({"a": [1]}), "smollm2-perplexity", tmp_path).name == "smollm2-perplexity.csv"
    both = results.read_glance(tmp_path)
    assert sorted(both["model"]) == [results.ORGANISM, "smollm2"]  # the organism's row was not overwritten


def test_the_line_up_declares_the_model(monkeypatch):
    monkeypatch.setattr(lineup, "geometry", lambda source: lineup.Geometry(8192, 1e5, 8192))
    lineup.resolve("", ["rope:smollm2", "yarn:smollm2"])
    assert results.measured_model() == "smollm2"
    lineup.resolve("", ["rope:base", "pi:cpt-pi"])
    assert results.measured_model() == results.ORGANISM
