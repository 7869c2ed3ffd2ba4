"""benchmarks/real_scale.py: the --tiny run writes every section, refuses what cannot fit, and its
on-the-fly reduction of probe rows agrees with ropelib.core.metrics. No timing assertions."""

import importlib.util
import json
import subprocess
import sys

import torch

from ropelib.core import metrics
from ropelib.paths import ROOT

SCRIPT = ROOT / "benchmarks" / "real_scale.py"


def _module():
    spec = importlib.util.spec_from_file_location("real_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_writes_every_section(tmp_path):
    out = tmp_path / "real-scale.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--out", str(out), "--threads", "1"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["model"]["status"] == "ok" and report["model"]["parameters"] > 0
    for section in ("perplexity", "probe", "needle", "eager"):
        records = report[section]
        assert records, section
        measured = [r for r in records if r["status"] == "ok"]
        assert [r["length"] for r in measured] == [256, 512], (section, records)
        for record in measured:
            assert record["seconds"] > 0 and record["peak_gib"] > 0
            assert record["estimate"]["total"] > 0
    for record in report["probe"]:
        for case in ("sdpa", "probe", "probe_reduced"):
            assert record[case]["seconds"] > 0
        assert record["probe"]["kept_gib"] > record["probe_reduced"]["kept_gib"] > 0
        assert set(record["probe/sdpa"]) == {"seconds", "peak_gib", "extra_gib"}
    for record in report["needle"]:
        assert 0 < record["answer_entropy_nats"] <= record["uniform_entropy_nats"] + 1e-3
    refused = [r for r in report["eager"] if r["status"].startswith("refused: ")]
    assert [r["length"] for r in refused] == [1 << 20]
    assert "GiB is free" in refused[0]["status"] and "attention maps" in refused[0]["status"]
    layout = _module().probe_report(report)  # what results/probe-cuda.json gets on a GPU
    assert layout["summary"]["worst_probe/sdpa"]["time"] > 0 and len(layout["results"]) == 2


def test_reducer_matches_metrics_distance_profile():
    length, queries = 300, 16
    rows = torch.rand(1, 3, queries, length)
    positions = torch.arange(length - queries, length)
    rows = rows * (torch.arange(length)[None, :] <= positions[:, None])  # causal: no mass on future keys
    rows = rows / rows.sum(-1, keepdim=True)
    reduced = _module().reducer(length, queries, bins=64)(rows)
    edges = metrics.log_bins(length - 1, 64)
    expected = metrics.distance_profile(rows, positions, edges)  # (1, 3, B), mean over queries, renormalised
    mass = reduced["bins"].double().mean(-2)
    torch.testing.assert_close(mass / mass.sum(-1, keepdim=True), expected)
    torch.testing.assert_close(reduced["entropy"], metrics.entropy(rows))
