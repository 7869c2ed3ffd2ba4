"""The real-model pages' provenance, checked without re-executing them (``make test-real`` does).

Re-executing the SmolLM2 pages under nbval takes about as long as executing them, more
than ``make test`` may spend, so here each committed ``book/smollm2-*.ipynb`` must:
carry the cache key its run-plan entry has now (template, parameters, the GGUF's pinned
sha256, the ropelib version: a page executed from anything else fails here), name the real
model and nothing else in its model parameters, and hold complete outputs (every code cell
executed, in order, none with an error). ``make test`` leaves these pages out of nbval.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from ropelib.models import smollm2
from ropelib.publish import plan, runner

LAYOUT = plan.default_layout()
RUNS = plan.load(LAYOUT)
RESOLVED = plan.check(RUNS, LAYOUT)
REAL = [r for r in RUNS if runner.is_real_model_page(RESOLVED[r.output])]
PREFIX = re.search(r"^REAL_PAGES := (\S+)$", (LAYOUT.root / "Makefile").read_text(), re.M).group(1)


def _job(run):
    return runner.Job(run.chapter, RESOLVED[run.output], LAYOUT.book / run.output, run.title, reads=run.reads,
                      results=LAYOUT.root / "data" / "results")


def test_make_test_leaves_out_of_nbval_exactly_the_real_model_pages():
    assert all(r.output.startswith(PREFIX) for r in REAL), "make test leaves out of nbval only book/<prefix>*"
    assert not [r.output for r in RUNS if r.output.startswith(PREFIX) and r not in REAL]


@pytest.mark.parametrize("run", REAL, ids=lambda r: r.output)
def test_real_model_page_is_the_current_execution_of_its_entry(run):
    page = LAYOUT.book / run.output
    assert page.is_file(), f"{run.output} is in the plan but not executed (ropebook run --pages '{PREFIX}*')"
    assert runner.stored_key(page) == runner.job_key(_job(run), LAYOUT), (
        f"{run.output} was executed from another template, parameters, GGUF or ropelib version: re-execute it")


@pytest.mark.parametrize("run", REAL, ids=lambda r: r.output)
def test_real_model_page_outputs_are_complete(run):
    notebook = nbformat.read(LAYOUT.book / run.output, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert None not in counts and counts == sorted(counts), "a code cell was not executed, or out of order"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert notebook.metadata["ropebook"]["parameters"] == RESOLVED[run.output]


def test_a_page_naming_an_organism_is_not_a_real_model_page():
    assert runner.is_real_model_page({"model": smollm2.NAME, "variants": []})
    assert not runner.is_real_model_page({"model": "", "variants": ["rope:smollm2", "pi:cpt-pi"]})
    assert not runner.is_real_model_page({"model": "base"})


def test_the_real_model_key_follows_the_gguf_not_the_organism(tmp_path, monkeypatch):
    template = LAYOUT.template("perplexity")
    job = runner.Job("perplexity", {"model": smollm2.NAME}, tmp_path / "page.ipynb")
    key = runner.job_key(job, LAYOUT)
    assert runner.input_files(job, LAYOUT) == ()  # no organism manifest: retraining leaves the page current
    monkeypatch.setattr(smollm2, "GGUF_SHA256", "0" * 64)
    assert runner.job_key(job, LAYOUT) != key
    assert key != runner.cache_key(template, {"model": smollm2.NAME})


def test_pages_globs_select_and_leave_out():
    from ropelib.publish.cli import _selected

    assert _selected("smollm2-perplexity.ipynb", "smollm2-*")
    assert not _selected("glance.ipynb", "smollm2-*")
    assert _selected("glance.ipynb", "!smollm2-*") and not _selected("smollm2-perplexity.ipynb", "!smollm2-*")
    assert _selected("perplexity-cpt.ipynb", "perplexity-*,!*-training-free*")
    assert not _selected("perplexity-training-free.ipynb", "perplexity-*,!*-training-free*")


def test_queued_pages_are_valid_entries_of_the_real_model_waiting_to_run():
    """book/queued.yml: pages planned but not yet executed; each would pass the plan's checks when moved."""
    import yaml

    from ropelib.publish import params

    entries = yaml.safe_load((LAYOUT.book / "queued.yml").read_text()) or []
    outputs = {r.output for r in RUNS}
    for entry in entries:
        assert entry["output"] not in outputs, f"{entry['output']} is both queued and in the run plan"
        assert entry["output"].startswith(PREFIX)
        parameters = params.validate(params.declared(LAYOUT.template(entry["chapter"])), entry["parameters"],
                                     entry["output"])
        assert runner.is_real_model_page(parameters)
