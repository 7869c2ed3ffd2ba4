"""The "Results at a glance" page: reading whatever glance CSVs exist, counting, badges, links, the forest plot."""

import re

import matplotlib
import pandas as pd
import pytest

from ropelib import results
from ropelib.findings.glance import table as glance, plots as glance_plots
from ropelib.paths import ROOT
from ropelib.publish import plan
from ropelib.publish.plan import Run

matplotlib.use("Agg")


def row(order, verdict, ours=0.5, ci=(None, None), claim="a claim", kind="paper", chapter="chapter", paper="paper says so",
        details=""):
    return results.glance_row(order, f"Finding {int(order)}", claim, paper, ours, verdict, "replicated if ...",
                              chapter, *ci, kind=kind, details=details)


RUNS = [
    Run("perplexity", "perplexity-training-free.ipynb", "Perplexity beyond the pretrained length: training-free",
        {"glance": False, "lengths": [128, 256]}),
    Run("perplexity", "perplexity-cpt.ipynb", "Perplexity beyond the pretrained length: continual pretraining",
        {"glance": True, "lengths": [128, 256]}),
    Run("attention-patterns", "attention-patterns-256.ipynb", "Attention patterns inside the pretrained length",
        {"length": 256, "glance": True}),
    Run("attention-patterns", "attention-patterns-1024.ipynb", "Attention patterns beyond the pretrained length",
        {"length": 1024, "glance": True}),
    Run("needle-entropy", "needle-entropy.ipynb", "Attention uncertainty and retrieval errors", {}),
    Run("glance", "glance.ipynb", "Results at a glance", {}, reads=("data/results/glance-*.csv",)),
]


def test_reads_every_glance_file_in_order(tmp_path):
    results.write_glance([row(3.1, "partly"), row(3.2, "replicated")], "finding3", tmp_path)
    results.write_glance([row(1.2, "not replicated", ours="PI 8x, NTK >= 32x"), row(1.1, "replicated", ci=(0.4, 0.6))],
                         "finding1-perplexity", tmp_path)
    (tmp_path / "finding1-table.csv").write_text("not,a,glance,file\n")  # other result tables are ignored
    shown = glance.glance_table(results.read_glance(tmp_path))
    assert shown["order"].tolist() == ["1.1", "1.2", "3.1", "3.2"]
    assert shown["ours"].tolist() == ["0.5 [0.4, 0.6]", "PI 8x, NTK >= 32x", "0.5", "0.5"]


def test_counts_are_over_claims_with_kinds_and_not_testable_apart(tmp_path):
    results.write_glance([row(1.1, "replicated"), row(1.2, "partly"), row(1.25, "replicated", kind="control"),
                          row(1.3, "not testable"), row(2.1, "not replicated"), row(2.5, "not testable", kind="control"),
                          row(2.6, "inconclusive"), row(4.1, "replicated", kind="beyond")], "mixed", tmp_path)
    counts = glance.verdict_counts(results.read_glance(tmp_path))
    assert list(counts.index) == list(results.KINDS) and list(counts.columns) == list(results.ALL_VERDICTS)
    paper = counts.loc["paper", list(results.VERDICTS)].to_dict()
    assert paper == {"replicated": 1, "partly": 1, "not replicated": 1, "inconclusive": 1, "not testable": 1}
    assert counts.loc["paper", list(results.OWN_VERDICTS[:3])].sum() == 0
    # a control or a result beyond the paper is never "replicated": it is worded in its own words
    assert counts.loc["control"].to_dict()["supported"] == 1 and counts.loc["control", "replicated"] == 0
    assert counts.loc["control", "not testable"] == 1
    assert counts.loc["beyond"].to_dict()["supported"] == 1 and counts.loc["beyond", "replicated"] == 0
    html = glance.counts_html(counts)
    assert html.count('<table class="glance-counts">') == 2  # the paper's claims, then the rest apart
    assert html.count('class="glance-untestable"') == 5  # per table: the header and one cell per kind
    assert "<td><b>4</b></td>" in html  # tested claims of the paper, without the untestable one
    paper_table, own_table = html.split("</table>")[:2]
    assert "verdict-replicated" in paper_table and "verdict-supported" not in paper_table
    assert "verdict-supported" in own_table and "verdict-replicated" not in own_table


def test_beyond_and_control_rows_are_worded_apart(tmp_path):
    """A beyond-the-paper row a rule graded "replicated" reads "supported"; a word of the wrong vocabulary is refused."""
    assert results.glance_row(4.1, "F", "c", "p", 1, "replicated", "r", "ch", kind="beyond")["verdict"] == "supported"
    assert results.glance_row(4.1, "F", "c", "p", 1, "partly", "r", "ch", kind="control")["verdict"] == \
        "partly supported"
    with pytest.raises(ValueError, match="paper"):
        results.glance_row(1.1, "F", "c", "p", 1, "supported", "r", "ch")  # the paper's claims are replicated or not
    with pytest.raises(ValueError, match="rule"):
        results.glance_row(1.1, "F", "c", "p", 1, "replicated", " ", "ch")  # every row states its criterion
    old = pd.DataFrame([row(4.1, "replicated", kind="beyond")]).assign(verdict="replicated")  # a file written before
    assert glance.normalise(old)["verdict"].tolist() == ["supported"]


def test_old_format_files_are_read_as_paper_claims_without_details(tmp_path):
    old_columns = ["order", "finding", "claim", "paper", "ours", "ci_low", "ci_high", "verdict", "rule", "chapter"]
    pd.DataFrame([row(2.0, "replicated"), row(9.1, "not replicated", ci=(-0.6, -0.2))])[old_columns].to_csv(
        tmp_path / "glance-old.csv", index=False)
    rows = glance.normalise(results.read_glance(tmp_path))
    assert rows["kind"].tolist() == ["paper", "paper"] and rows["details"].tolist() == ["", ""]
    assert glance.verdict_counts(rows).loc["paper", "replicated"] == 1
    assert "<details>" in glance.claims_html(rows)


def test_the_committed_glance_files_render():
    rows = results.read_glance()  # data/results/glance-*.csv, in whatever format they were written
    html = glance.claims_html(rows)
    assert html.count('<span class="verdict verdict-') == len(rows)


def test_no_glance_files_gives_an_empty_page(tmp_path):
    rows = results.read_glance(tmp_path)
    assert glance.glance_table(rows).empty
    assert glance.verdict_counts(rows).to_numpy().sum() == 0
    assert "<tbody></tbody>" in glance.claims_html(rows)
    assert glance_plots.forest_plot(rows) is None


def test_the_table_has_badges_links_and_folded_rules(tmp_path):
    long_ours = "RoPE (base) 0.4501 [0.4173, 0.485]; " * 5
    results.write_glance([
        row(1.1, "partly", chapter="Perplexity beyond the pretrained length", details="limits: RoPE 2x"),
        row(1.3, "replicated", ours=long_ours, chapter="Attention patterns (1024 tokens)"),
        row(1.4, "not testable", chapter="Attention patterns (256 tokens)", kind="control"),
        row(2.1, "not replicated", claim="a <b>bold</b> & claim", chapter="needle-entropy"),
        row(3.1, "replicated", chapter="a chapter not in the plan"),
    ], "finding", tmp_path)
    html = glance.claims_html(results.read_glance(tmp_path), RUNS)
    assert re.findall(r'class="verdict verdict-([a-z-]+)"', html) == [
        "partly", "replicated", "not-testable", "not-replicated", "replicated"]  # 1.4 is a control: not testable
    assert re.findall(r'<a href="([^"]+)" title="[^"]+">([^<]+)</a>', html) == [
        ("perplexity-cpt.html", "perplexity-cpt"), ("attention-patterns-1024.html", "attention-patterns-1024"),
        ("attention-patterns-256.html", "attention-patterns-256"), ("needle-entropy.html", "needle-entropy")]
    assert ">a chapter not in the plan</td>" in html  # no page: plain text, no broken link
    assert html.count("<details>") == 5 and html.count("<b>criterion</b>: replicated if ...") == 5  # never folded
    assert "<b>details</b>: limits: RoPE 2x" in html
    assert "a &lt;b&gt;bold&lt;/b&gt; &amp; claim" in html  # text is escaped, never markup
    assert f"<b>ours</b>: {long_ours}" in html and " …</td>" in html  # long results shortened, in full when unfolded
    assert '<span class="glance-kind">control</span>' in html
    assert html.count('class="glance-finding"') == 3  # one header row per finding


def test_chapter_labels_name_pages():
    page = lambda label: getattr(plan.chapter_page(label, RUNS), "output", None)  # noqa: E731
    assert page("needle-entropy") == "needle-entropy.ipynb"  # a template name
    assert page("perplexity-training-free") == "perplexity-training-free.ipynb"  # an output name
    assert page("Perplexity beyond the pretrained length") == "perplexity-cpt.ipynb"  # glance: false skipped
    assert page("Attention patterns (256 tokens)") == "attention-patterns-256.ipynb"
    assert page("Attention patterns (1024 tokens)") == "attention-patterns-1024.ipynb"
    assert page("Atten") is None  # the words of a title match whole
    assert page("model-size") is None


def test_badge_colours_match_the_stylesheet():
    css = (ROOT / "book" / "_static" / "ropebook.css").read_text().lower()
    for verdict, colour in glance.VERDICT_COLOURS.items():
        assert re.search(rf"\.verdict-{verdict.replace(' ', '-')}\s*{{[^}}]*{colour.lower()}", css), verdict
    assert glance.badge("not replicated") == '<span class="verdict verdict-not-replicated">not replicated</span>'


def test_forest_plot_has_one_row_per_numeric_claim(tmp_path):
    results.write_glance([row(2.1, "replicated", ours=0.92, ci=(0.9, 0.94), paper="0.5"),
                          row(2.2, "partly", ours="see details"),
                          row(3.1, "not replicated", ours=-0.4, ci=(-0.6, -0.2)),
                          row(3.2, "not testable", ours=1.0),
                          row(3.3, "partly", ours="+0.312 pass rate (long - short), 20 cells", ci=(0.125, 0.5)),
                          row(3.4, "partly", ours="12 cells beyond 256 tokens", ci=(0.125, 0.5)),  # not the CI's
                          row(3.5, "partly", ours="0.3x L0, NTK 8x")], "plot", tmp_path)
    rows = results.read_glance(tmp_path)
    points = glance_plots.plottable(rows)
    assert points["order"].tolist() == [2.1, 3.1, 3.2, 3.3]
    assert points["ours"].tolist() == [0.92, -0.4, 1.0, 0.312]
    assert points["paper"].notna().tolist() == [True, False, False, False]
    figure = glance_plots.forest_plot(rows)
    assert len(figure.axes) == 4
    first = figure.axes[0]
    assert first.get_xlim()[0] < 0.5 and first.get_xlim()[1] > 0.94  # paper's value and CI on the row's own scale
    colours = [ax.lines[0].get_color() for ax in figure.axes]
    assert colours == [glance.VERDICT_COLOURS[v] for v in ("replicated", "not replicated", "not testable", "partly")]


def test_a_typed_verdict_or_kind_is_refused(tmp_path):
    frame = pd.DataFrame([row(1.1, "replicated")]).assign(verdict="looks good")
    with pytest.raises(ValueError, match="looks good"):
        glance.glance_table(frame)
    with pytest.raises(ValueError, match="kind"):
        glance.normalise(pd.DataFrame([row(1.1, "replicated")]).assign(kind="vibes"))
    with pytest.raises(ValueError, match="verdict"):
        results.glance_row(1.1, "Finding 1", "c", "p", 1.0, "maybe", "r", "ch")


def test_a_failed_premise_is_carried_on_the_rows_resting_on_it(tmp_path):
    results.write_glance([row(1.1, "replicated"), row(1.3, "replicated"), row(2.1, "replicated")], "f", tmp_path)
    assert results.read_premises(tmp_path).empty  # chapter 0 not run: nothing carried
    results.write_csv(pd.DataFrame({"premise": ["perplexity fails beyond L0", "retrieval fails beyond L0"],
                                    "holds": [False, True], "numbers": ["base: x1.56 at 4 L0", "0.96 -> 0"],
                                    "claims": ["1.1 1.3", "2.1"], "chapter": "model-organism"}),
                      results.PREMISES, tmp_path)
    rows = glance.carry_premises(glance.normalise(results.read_glance(tmp_path)), results.read_premises(tmp_path))
    assert [bool(c) for c in rows["caveat"]] == [True, True, False]  # the premise that holds is not carried
    assert "perplexity fails beyond L0: base: x1.56 at 4 L0" in rows.loc[0, "caveat"]
    html = glance.claims_html(rows)
    assert html.count('class="glance-caveat"') == 2 and "precondition not met in the organism" in html
    assert glance.glance_table(rows)["caveat"].tolist()[2] == ""


def test_the_controls_are_stated_plainly(tmp_path):
    results.write_glance([row(1.2, "replicated"), row(1.25, "not replicated", kind="control", ours="cpt-rope 8x"),
                          row(1.65, "replicated", kind="control", ours="cpt-rope 0.27 vs 0.9-0.97")], "c", tmp_path)
    html = glance.controls_html(glance.normalise(results.read_glance(tmp_path)))
    assert html.count("<li>") == 2 and "verdict-not-supported" in html and "verdict-supported" in html
    assert "cpt-rope 0.27 vs 0.9-0.97" in html
    assert glance.controls_html(glance.normalise(results.read_glance(tmp_path / "none"))) == ""
