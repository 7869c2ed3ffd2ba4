"""ropelib.models.lineup (one parameter -> a line-up), ropelib.findings.verdicts (gates, as information),
ropelib.progress (bars never in a notebook's outputs) and ropelib.prose (glued numbers)."""

import io
import json
import sys

import pytest

from ropelib.models import lineup, sources
from ropelib import paths, progress, prose
from ropelib.findings import verdicts


def _organism(directory, gate_rows, trained_length=256, pretrained_length=256):
    directory.mkdir(parents=True)
    (directory / sources.WEIGHTS).write_bytes(b"weights")
    manifest = {"rope": {"pretrained_length": pretrained_length, "pretrained_base": 663.0},
                "trained_length": trained_length, "gate": gate_rows,
                "weights_sha256": sources.sha256_file(directory / sources.WEIGHTS)}
    (directory / sources.MANIFEST).write_text(json.dumps(manifest))


PASS = [{"length": 256, "rate": 0.99, "ci_low": 0.96, "ci_high": 1.0, "passed": True}]
MISS = [{"length": 1024, "rate": 0.5, "ci_low": 0.43, "ci_high": 0.57, "passed": False}]


@pytest.fixture
def models(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "MODELS", tmp_path)
    _organism(tmp_path / "base", PASS)
    _organism(tmp_path / "cpt", PASS + MISS, trained_length=1024)
    _organism(tmp_path / "smoke", [])
    return tmp_path


def test_model_parameter_replaces_the_line_up(models):
    setup = lineup.resolve("base", ["rope:cpt"], "rope:cpt")
    assert setup.variants == [f"{m}:base" for m in lineup.TRAINING_FREE] and setup.reference == "rope:base"
    assert (setup.pretrained_length, setup.cpt_length, setup.long_reference) == (256, 0, "")
    assert setup.lengths([]) == [128, 256, 512, 1024, 2048, 4096, 8192] and setup.lengths([300]) == [300]
    explicit = lineup.resolve("", ["rope:base", "pi:cpt"], "rope:base", "rope:cpt")
    assert explicit.cpt_length == 1024 and explicit.long_reference == "rope:cpt"


def test_gate_misses_are_information_never_a_verdict(models):
    assert verdicts.gate_misses(["base"]) == []
    assert any("cpt retrieves 0.50 [0.43, 0.57] at 1024" in note for note in verdicts.gate_misses(["base", "cpt"]))
    assert any("no retrieval gate recorded" in note for note in verdicts.gate_misses(["smoke"]))
    assert not hasattr(verdicts, "not_testable_reason") and not hasattr(verdicts, "graded")


def test_progress_bars_go_to_the_kernels_own_stderr(monkeypatch):
    captured, real = io.StringIO(), io.StringIO()
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    monkeypatch.setattr(sys, "stderr", captured)  # what a notebook cell's output captures
    monkeypatch.setattr(sys, "__stderr__", real)
    for _ in progress.progress(range(3), desc="work", disable=False):
        pass
    assert captured.getvalue() == "" and "work" in real.getvalue()


def test_glued_numbers_are_rounded_text(monkeypatch):
    glued = {}
    monkeypatch.setitem(sys.modules, "myst_nb", type("M", (), {"glue": staticmethod(
        lambda name, value, display: glued.update({name: (repr(value), display)}))}))
    assert prose.glue_numbers(auroc=0.734567, label="4x") == {"auroc": "0.735", "label": "4x"}
    assert glued == {"auroc": ("0.735", False), "label": ("4x", False)}  # no quotes in text/plain


def test_a_pages_verdicts_are_glued_in_row_order(monkeypatch):
    glued = {}
    monkeypatch.setitem(sys.modules, "myst_nb", type("M", (), {"glue": staticmethod(
        lambda name, value, display: glued.update({name: str(value)}))}))
    rows = [{"verdict": "not testable", "ours": "not testable", "details": "gate missed"},
            {"verdict": "partly", "ours": 0.123456, "details": ""}]
    prose.glue_verdicts("f3", rows)
    assert glued == {"f3_1_verdict": "not testable", "f3_1_ours": "not testable", "f3_1_details": "gate missed",
                     "f3_2_verdict": "partly", "f3_2_ours": "0.123", "f3_2_details": "no details"}
