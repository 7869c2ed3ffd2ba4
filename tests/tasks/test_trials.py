"""Trials kept on disk (``ropelib.tasks.trials``): a real model's page resumes where it stopped.

- a kept trial reads back equal (arrays bit for bit, records value for value); other inputs, another
  method or factor are another file; a compute that fails leaves no file behind;
- the perplexity and attention chapters on a (fake) real model: the second run computes nothing and
  gives the same tables; an interrupted run resumes (only the missing trials are computed);
- the organism keeps nothing (its pages recompute, so nbval checks the computation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ropelib import paths
from ropelib.core import extensions
from ropelib.tasks import trials
from ropelib.findings.attention_patterns import analysis as attention
from ropelib.findings.perplexity import analysis as perplexity
from ropelib.models import real, variants
from ropelib.text.corpus import Document, stdlib_documents

import hf_checkpoints
from manifest_fixtures import organisms


def test_a_kept_trial_reads_back_equal(tmp_path):
    store = trials.Store({"model": "m", "method": "rope"}, tmp_path)
    values = {"losses": np.random.default_rng(0).random(7).astype(np.float32)}
    first = store.arrays("losses", {"ids": trials.digest([1, 2, 3])}, lambda: values)
    again = store.arrays("losses", {"ids": trials.digest([1, 2, 3])}, lambda: pytest.fail("recomputed"))
    assert again["losses"].dtype == np.float32 and np.array_equal(first["losses"], again["losses"])
    rows = [{"passed": True, "entropy": 0.1 + 0.2, "answer": "12345", "n": np.int64(3), "x": float("nan")}]
    store.records("cell", {"depth": 10}, lambda: rows)
    back = store.records("cell", {"depth": 10}, lambda: pytest.fail("recomputed"))
    assert back[0]["entropy"] == 0.1 + 0.2 and back[0]["n"] == 3 and np.isnan(back[0]["x"])
    assert (store.hits, store.misses) == (2, 2)
    log = (tmp_path / "progress.log").read_text().splitlines()  # progress outside the page: one line a trial
    assert [line.split()[1:3] for line in log] == [["losses", "rope"], ["cell", "rope"]]
    # other inputs, another method: other files
    assert store.path("losses", {"ids": trials.digest([1, 2, 4])}, ".npz") != store.path(
        "losses", {"ids": trials.digest([1, 2, 3])}, ".npz")
    other = trials.Store({"model": "m", "method": "pi"}, tmp_path)
    assert other.path("losses", {"ids": "a"}, ".npz") != store.path("losses", {"ids": "a"}, ".npz")


def test_a_page_ledger_counts_computed_and_read_back_trials_with_their_seconds(tmp_path, monkeypatch):
    ledger = tmp_path / "ledger.jsonl"
    monkeypatch.setenv(trials.LEDGER_ENV, str(ledger))
    store = trials.Store({"model": "m", "method": "rope"}, tmp_path / "kept")
    store.arrays("losses", {"ids": "a"}, lambda: {"x": np.zeros(2)})
    store.records("cell", {"depth": 10}, lambda: [{"passed": True}])
    seconds = float(store.path("losses", {"ids": "a"}, ".npz").with_suffix(".seconds").read_text())
    assert seconds >= 0
    store.arrays("losses", {"ids": "a"}, lambda: pytest.fail("recomputed"))
    store.path("cell", {"depth": 10}, ".json").with_suffix(".seconds").unlink()  # kept before times were
    store.records("cell", {"depth": 10}, lambda: pytest.fail("recomputed"))
    summary = trials.summarize_ledger(ledger)
    assert (summary["computed"], summary["read_back"], summary["read_back_without_time"]) == (2, 2, 1)
    assert summary["read_back_seconds"] == round(seconds, 1)
    assert trials.summarize_ledger(tmp_path / "none.jsonl") is None


def test_a_failed_trial_leaves_nothing(tmp_path):
    store = trials.Store({"model": "m"}, tmp_path)

    def broken():
        raise KeyboardInterrupt  # the page was stopped mid-trial

    with pytest.raises(KeyboardInterrupt):
        store.arrays("losses", {"ids": "x"}, broken)
    with pytest.raises(TypeError, match="holds object"):
        store.records("cell", {"d": 1}, lambda: [{"bad": object()}])
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []


# ---------------------------------------------------------------------------------------------
# A (fake) real model's chapters resume from their kept trials


@pytest.fixture
def fake_real(tmp_path, monkeypatch):
    directory = hf_checkpoints.build("llama", tmp_path / "hf")
    organisms(monkeypatch, tmp_path)
    monkeypatch.setattr(paths, "CACHE", tmp_path / "cache")
    entry = real.RealModel("fake", "Fake", "A test's model.\n", lambda: "fake weights v1", find=lambda: directory,
                           verify=lambda: directory, directory=lambda: directory, prepare=lambda: directory)
    with real.registered(entry):
        yield tmp_path / "cache" / "trials"


def _documents():
    return [Document(d.name, d.text) for d in stdlib_documents("test")[:40]]


def test_perplexity_resumes_from_kept_documents(fake_real):
    parsed = variants.parse(["rope:fake", "yarn:fake", "dynamic_ntk:fake"])
    run = lambda: perplexity.evaluate(parsed, 2.0, [32, 64, 128], 3, documents=_documents(), progress=False)
    first = run()
    kept = sorted(fake_real.rglob("*.npz"))
    assert len(kept) == 3 + 3 + 3 * 3  # one forward per document for static methods, per length for dynamic
    kept[0].unlink()  # as if the page had been stopped before this trial
    second = run()
    pd.testing.assert_frame_equal(first, second)
    assert len(sorted(fake_real.rglob("*.npz"))) == len(kept)


def test_attention_resumes_from_kept_sequences(fake_real):
    parsed, reference, _ = attention.parse_models(["rope:fake", "pi:fake"], "rope:fake", "")
    run = lambda: attention.capture(parsed, reference, None, 2.0, 128, 64, n_sequences=2, n_queries=4, n_bins=6,
                                    seed=0, documents=_documents(), progress=False)
    first = run()
    assert len(sorted(fake_real.rglob("*.npz"))) == 2 * 3  # rope and pi at 128, rope at L0
    second = run()
    for label, profiles in first.at_length.items():
        assert np.array_equal(profiles.mass, second.at_length[label].mass)
        assert np.array_equal(profiles.entropy, second.at_length[label].entropy)


def test_the_organism_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE", tmp_path / "cache")
    loaded = type("Loaded", (), {"source": "base"})()
    assert variants.trial_store(loaded, variants.Variant("rope", "base", "RoPE (base)"), 4.0) is trials.NOTHING


def test_the_intervention_resumes_from_kept_settings(fake_real):
    from ropelib.findings.entropy_intervention import analysis as intervention

    parsed = variants.parse(["rope:fake"])
    run = lambda: intervention.run(parsed, 2.0, [64, 128], [50], 2, 1, 1, seed=0, fmt="compact")  # noqa: E731
    first = run()
    kept = len(sorted(fake_real.rglob("*.json")))
    # the fitted temperatures, then one file per (condition, length), but the temperature at L0 (64) is the
    # untouched model's trials (no temperature is applied at or below the training length)
    assert kept == 1 + 3 * 2 - 1
    trials_none, trials_temperature = (first[0][(first[0]["condition"] == c) & (first[0]["length"] == 64)]
                                       for c in ("none", "temperature"))
    assert trials_none.drop(columns="condition").values.tolist() == \
        trials_temperature.drop(columns="condition").values.tolist()
    second = run()
    for a, b in zip(first, second):
        pd.testing.assert_frame_equal(a, b)
    assert len(sorted(fake_real.rglob("*.json"))) == kept


def test_the_dose_scan_runs_on_dev_prompts_and_is_kept(fake_real):
    from ropelib.findings.entropy_intervention import analysis as intervention

    parsed = variants.parse(["rope:fake"])
    run = lambda: intervention.run(parsed, 2.0, [64, 128], [50], 2, 2, 1, seed=0, doses=(0.5, 1.0, 2.0))  # noqa: E731
    trials, _, _, scan = run()
    assert set(scan["condition"]) == {"log_scale", "temperature"} and set(scan["dose"]) == {0.5, 1.0, 2.0}
    assert (scan["length"] == 128).all() and len(scan) == 2 * 3 * 2  # arms x doses x dev prompts past L0
    assert scan.groupby("condition")["dose"].apply(lambda d: d[scan.loc[d.index, "chosen"]].nunique()).eq(1).all()
    assert set(trials["condition"]) == {"none", "log_scale", "temperature"}
    again = run()
    pd.testing.assert_frame_equal(scan, again[3])  # read back from the kept dev trials


def test_a_pooled_intervention_page_reads_back_what_the_one_arm_pages_computed(fake_real):
    """An intervention run split into pages of one arm each (with the untouched model): the pooled page
    computes nothing again, and its trials equal theirs."""
    from ropelib.findings.entropy_intervention import analysis as intervention

    parsed = variants.parse(["rope:fake"])

    def run(conditions):
        return intervention.run(parsed, 2.0, [64, 128], [50], 2, 2, 1, seed=0, doses=(0.5, 1.0),
                                conditions=conditions)

    alone = {arm: run(["none", arm]) for arm in ("log_scale", "temperature")}
    assert alone["log_scale"][2].empty and not alone["temperature"][2].empty  # fitted only for its own arm
    kept = sorted(fake_real.rglob("*.json"))
    pooled = run(["temperature", "none", "log_scale"])  # any order: run in the chapter's
    assert sorted(fake_real.rglob("*.json")) == kept
    assert list(dict.fromkeys(pooled[0]["condition"])) == ["none", "log_scale", "temperature"]
    for arm, (trials_alone, _, _, scan_alone) in alone.items():
        mine = pooled[0][pooled[0]["condition"].isin(["none", arm])].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, trials_alone)
        pd.testing.assert_frame_equal(pooled[3][pooled[3]["condition"] == arm].reset_index(drop=True), scan_alone)
    for conditions in (["log_scale", "temperature"], ["none"], ["none", "none"], ["none", "sharpen"]):
        with pytest.raises(ValueError, match=r"^conditions=.*expected 'none' and at least one of"):
            run(conditions)


def test_a_pooled_needle_page_reads_back_what_the_one_method_pages_computed(fake_real, monkeypatch):
    """A needle run split into pages of one method each: the pooled page computes nothing again. A real
    model's shared-haystack cells compute their prefix once, dynamic NTK's too (without the generation's
    cache for its teacher-forced rows)."""
    from ropelib.findings.needle_entropy import calibration
    from ropelib.tasks import needle

    cells, run_cell = [], needle.run_cell

    def spy(model, tokenizer, prompts, controls, length, answer_len, share_prefill=False, prefix=0):
        cells.append((extensions.describe(model)["method"], len(prompts), share_prefill, prefix > 0))
        return run_cell(model, tokenizer, prompts, controls, length, answer_len, share_prefill, prefix)

    monkeypatch.setattr(needle, "run_cell", spy)

    def run(labels):
        return calibration.run(variants.parse(labels), 2.0, [64, 128], [50], 1, [50], 5, n=1, seed=0,
                               fmt="compact", shared_haystack=True)

    labels = ("rope:fake", "yarn:fake", "dynamic_ntk:fake")
    alone = {label: run([label])[0] for label in labels}
    main_cells = {(method, share_prefill, prefixed) for method, n, share_prefill, prefixed in cells if n == 5}
    assert main_cells == {("rope", True, True), ("yarn", True, True), ("dynamic_ntk", False, True)}
    kept = sorted(fake_real.rglob("*.json"))
    pooled = run(list(labels))[0]
    assert sorted(fake_real.rglob("*.json")) == kept  # every cell read back
    for label, trials_alone in alone.items():
        method = variants.parse([label])[0].label
        mine = pooled[pooled["method"] == method].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine.drop(columns="trial"), trials_alone.reset_index(drop=True).drop(columns="trial"))
