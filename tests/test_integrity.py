"""Nothing but the run plan rewrites the published book: one-off runs, nbval, bad input.

These tests run against the real repository: a one-off run of a cheap chapter and the
nbval re-execution of a committed page must leave ``git status --porcelain`` empty, and
bad sources must be refused with exit status 2 before papermill starts a kernel.
"""

import json
import shutil
import subprocess
import sys

import pytest

from ropelib import paths, results
from ropelib.models import sources
from ropelib.paths import ROOT


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout


def _ropebook(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "ropelib", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def clean_checkout():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    before = _git_status()
    yield before
    assert _git_status() == before, "the run changed tracked or unignored files"


@pytest.mark.parametrize("spec, expected", [
    (["-p", "variants", '["foo:base"]'], "method 'foo'"),
    (["-p", "variants", '["rope:/nonexistent/model"]'], "/nonexistent/model does not exist"),
    (["-p", "model", "/nonexistent/model"], "/nonexistent/model does not exist"),
    (["-p", "model", "no-such-organism"], "is not an organism checkpoint"),
    (["-p", "model", "/etc"], "has no config.json"),
])
def test_bad_sources_fail_before_a_kernel_starts(spec, expected, clean_checkout):
    result = _ropebook("run", "perplexity", *spec)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "parameter" in result.stderr  # no kernel, no traceback: refused while checking parameters (not timed:
    # a wall-clock bound fails on a loaded machine; the time is a benchmark's business)
    assert "Kernel" not in result.stderr and "Traceback" not in result.stderr


def test_pickle_only_and_tampered_checkpoints_are_refused(tmp_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(sources.SourceError, match="pickle weights only"):
        sources.check_source(str(pickled), "parameter model")
    models = tmp_path / "models"
    shutil.copytree(paths.MODELS / "base", models / "base")
    weights = models / "base" / sources.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    env = {**__import__("os").environ, "ROPEBOOK_MODELS": str(models)}
    result = _ropebook("run", "perplexity", "-p", "model", "base", env=env)
    assert result.returncode == 2 and "sha256" in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_results_go_where_the_run_says(tmp_path, monkeypatch):
    frame = __import__("pandas").DataFrame({"x": [1 / 3, 2.0 / 3e-7]})
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path / "here"))
    written = results.write_csv(frame, "probe")
    assert written == tmp_path / "here" / "probe.csv"
    assert written.read_text() == "x\n0.3333\n6.667e+06\n"  # 4 significant digits: stable across machines
    monkeypatch.delenv(results.RESULTS_ENV)
    assert results.results_dir() == ROOT / "_build" / "results"  # ignored by git, never data/results


def test_one_off_run_writes_beside_its_page_and_leaves_git_clean(tmp_path, clean_checkout):
    output = tmp_path / "rescaling.ipynb"
    published = {p: p.read_bytes() for p in (ROOT / "data" / "results").glob("*.csv")}
    result = _ropebook("run", "rope-rescaling", "-p", "factor", "8", "-o", str(output), timeout=300)
    assert result.returncode == 0, result.stderr
    assert output.exists()
    assert {p: p.read_bytes() for p in (ROOT / "data" / "results").glob("*.csv")} == published
    nb = json.loads(output.read_text())
    assert nb["metadata"]["orphan"] is True


def test_nbval_of_a_page_leaves_git_clean(tmp_path, clean_checkout):
    page = ROOT / "book" / "rope-rescaling-organism.ipynb"
    env = {**__import__("os").environ, results.RESULTS_ENV: str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                             "--nbval-current-env", "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
                             str(page)], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-2000:]


def test_no_published_page_prints_where_its_tables_went():
    """A page that prints a results path shows a machine's folder, and nbval (which writes the
    tables to a temporary folder) then fails on it: the CI failure of stop 17."""
    pages = sorted((ROOT / "book").glob("*.ipynb"))
    assert pages, "no executed pages in book/"
    for page in pages:
        for index, cell in enumerate(json.loads(page.read_text())["cells"]):
            for output in cell.get("outputs", []):
                text = "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
                assert "data/results" not in text and "PosixPath(" not in text, f"{page.name} cell {index}: {text[:120]}"
