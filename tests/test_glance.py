"""The "Results at a glance" page: reading whatever glance CSVs exist, ordering and formatting them."""

import pandas as pd
import pytest

from ropelib import results
from ropelib.findings import glance


def row(order, verdict, ours=0.5, ci=(None, None), claim="a claim"):
    return results.glance_row(order, f"Finding {int(order)}", claim, "paper says so", ours, verdict,
                              "replicated if ...", "chapter", *ci)


def test_reads_every_glance_file_in_order(tmp_path):
    results.write_glance([row(3.1, "partly"), row(3.2, "replicated")], "finding3", tmp_path)
    results.write_glance([row(1.2, "not replicated", ours="PI 8x, NTK >= 32x"), row(1.1, "replicated", ci=(0.4, 0.6))],
                         "finding1-perplexity", tmp_path)
    (tmp_path / "finding1-table.csv").write_text("not,a,glance,file\n")  # other result tables are ignored
    rows = results.read_glance(tmp_path)
    shown = glance.glance_table(rows)
    assert shown["finding"].tolist() == ["Finding 1", "Finding 1", "Finding 3", "Finding 3"]
    assert shown["ours"].tolist() == ["0.5 [0.4, 0.6]", "PI 8x, NTK >= 32x", "0.5", "0.5"]
    assert glance.verdict_counts(rows).to_dict() == {"replicated": 2, "partly": 1, "not replicated": 1}


def test_no_glance_files_gives_an_empty_page(tmp_path):
    rows = results.read_glance(tmp_path)
    shown = glance.glance_table(rows)
    assert shown.empty and list(shown.columns) == glance.COLUMNS
    assert glance.verdict_counts(rows).sum() == 0
    assert glance.to_markdown(shown).count("\n") == 1  # header and rule only


def test_markdown_keeps_full_text_and_escapes_pipes(tmp_path):
    long_claim = "x" * 300 + " | y"
    results.write_glance([row(2.1, "partly", claim=long_claim)], "finding2", tmp_path)
    text = glance.to_markdown(glance.glance_table(results.read_glance(tmp_path)))
    assert "x" * 300 + " \\| y" in text and "**partly**" in text


def test_a_typed_verdict_is_refused(tmp_path):
    frame = pd.DataFrame([row(1.1, "replicated")]).assign(verdict="looks good")
    with pytest.raises(ValueError, match="looks good"):
        glance.glance_table(frame)
    with pytest.raises(ValueError, match="verdict"):
        results.glance_row(1.1, "Finding 1", "c", "p", 1.0, "maybe", "r", "ch")
