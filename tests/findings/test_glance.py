"""The "Results at a glance" page: reading whatever glance CSVs exist, counting, badges, links, the forest plot."""

import re
from html import escape as html_escape

import matplotlib
import pandas as pd
import pytest

from ropelib import results
from ropelib.core import stats
from ropelib.findings.glance import table as glance, plots as glance_plots
from ropelib.paths import ROOT
from ropelib.publish import plan, sections
from ropelib.publish.plan import Run

matplotlib.use("Agg")


def row(order, verdict, ours=0.5, ci=(None, None), claim="a claim", kind="paper", chapter="needle-entropy",
        paper="paper says so", details="", model=results.ORGANISM, n=None, null=0.0, sesoi=0.1, direction=1):
    """A glance row; with ``n`` the structured columns a graded row carries (estimate = ours)."""
    entry = results.glance_row(order, f"Finding {int(order)}", claim, paper, ours, verdict, "replicated if ...",
                               chapter, *ci, kind=kind, details=details, model=model)
    if n is not None:
        entry.update(estimate=ours, null=null, sesoi=sesoi, direction=direction, n_units=n, unit="prompt")
    return entry


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
    Run("entropy-intervention", "entropy-intervention.ipynb", "Does lowering attention entropy fix retrieval?", {}),
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
    assert rows["model"].tolist() == [results.ORGANISM] * 2  # written before the model column: the organism's
    assert "<details>" in glance.claims_html(rows, RUNS)


def test_the_committed_glance_files_render():
    rows = results.read_glance()  # data/results/glance-*.csv, in whatever format they were written
    runs = plan.load()
    html = glance.claims_html(rows, runs)  # every row's chapter names a page of the plan
    shown = glance.with_scope(rows, runs)  # and the real model's "not testable" on the claims that need CPT
    assert len(shown) > len(rows)
    assert html.count('<span class="verdict verdict-') == 2 * len(shown)  # each badge in its cell and unfolded
    assert "…" not in html
    links = re.findall(r'<a href="([^"#]+)#([^"]+)"', html)
    # every claim links to a section of its chapter; a real model's own row to its own page's, in its cell
    normal = glance.normalise(rows)
    own = normal.loc[normal["model"] != results.ORGANISM, "order"].nunique()
    assert len(links) == html.count('<a href="') == rows["order"].nunique() + own
    assert len(re.findall(r'<td><a href="[^"]+" title="[^"]*">[^<]+</a></td></tr>', html)) == rows["order"].nunique()
    for page, anchor in links:  # the id Sphinx gives a heading of that page (publish.sections)
        headings = sections.headings(ROOT / "book" / page.replace(".html", ".ipynb"))
        assert anchor in [a for _, _, a in headings], (page, anchor)


def test_no_glance_files_gives_an_empty_page(tmp_path):
    rows = results.read_glance(tmp_path)
    assert glance.glance_table(rows).empty
    assert glance.verdict_counts(rows).to_numpy().sum() == 0
    assert "<tbody></tbody>" in glance.claims_html(rows, RUNS)
    assert glance_plots.forest_plot(rows) is None


def test_the_table_has_badges_links_and_folded_rules(tmp_path):
    long_ours = "RoPE (base) 0.4501 [0.4173, 0.485]; " * 5
    results.write_glance([
        row(1.1, "partly", chapter="Perplexity beyond the pretrained length", details="limits: RoPE 2x"),
        row(1.3, "replicated", ours=long_ours, chapter="Attention patterns (1024 tokens)"),
        row(1.4, "not testable", chapter="Attention patterns (256 tokens)", kind="control"),
        row(2.1, "not replicated", claim="a <b>bold</b> & claim", chapter="needle-entropy"),
        row(4.1, "replicated", chapter="Does lowering attention entropy fix retrieval?", kind="beyond"),
    ], "finding", tmp_path)
    html = glance.claims_html(results.read_glance(tmp_path), RUNS)
    cells = re.findall(r'<td class="glance-model">(.*?)</td>', html)
    assert [re.search(r'verdict-([a-z-]+)"', c).group(1) for c in cells] == [
        "partly", "replicated", "not-replicated", "not-testable", "supported"]  # the book's rows last, own words
    links = re.findall(r'<a href="([^"#]+)#([^"]+)" title="[^"]+">([^<]+)</a>', html)
    assert [(page, name) for page, _, name in links] == [
        ("perplexity-cpt.html", "perplexity-cpt"), ("attention-patterns-1024.html", "attention-patterns-1024"),
        ("needle-entropy.html", "needle-entropy"), ("attention-patterns-256.html", "attention-patterns-256"),
        ("entropy-intervention.html", "entropy-intervention")]  # a title ending in "?" links too
    for page, anchor, _ in links:  # to the section of the executed page whose cell computes the rows
        assert anchor == sections.glance_section(ROOT / "book" / page.replace(".html", ".ipynb")), page
    assert html.count("<details>") == 5 and html.count("<b>criterion</b>: replicated if ...") == 5
    assert re.search(r"<details><summary>a claim</summary><div class=\"glance-criterion\">", html)  # unfolded
    assert "<b>details</b>: limits: RoPE 2x" in html
    assert "a &lt;b&gt;bold&lt;/b&gt; &amp; claim" in html  # text is escaped, never markup
    assert "…" not in html and html.count("RoPE (base) 0.45 [0.417, 0.485]") == 5 + 5  # never cut: cell, unfolded
    assert '<span class="glance-kind">control</span>' in html
    assert html.count('class="glance-finding"') == 3  # Finding 1, Finding 2, what the book adds


def test_each_model_links_its_own_page(tmp_path):
    # the organism and the real model answer one claim from pages with the same label: the chapter column
    # links the organism's page, the real model's cell its own page
    runs = RUNS + [Run("needle-entropy", "smollm2-needle-entropy.ipynb", "SmolLM2: retrieval errors",
                       {"variants": ["rope:smollm2", "yarn:smollm2"]})]
    results.write_glance([row(2.1, "replicated")], "finding2", tmp_path)
    results.write_glance([row(2.1, "inconclusive", model="smollm2")], "finding2-smollm2", tmp_path)
    html = glance.claims_html(results.read_glance(tmp_path), runs)
    real_cell = re.findall(r'<td class="glance-model">(.*?)</td>', html)[1]
    assert "verdict-inconclusive" in real_cell and 'href="smollm2-needle-entropy.html' in real_cell
    chapter_cell = html.rsplit("<td>", 1)[1]
    assert 'href="needle-entropy.html' in chapter_cell and "smollm2" not in chapter_cell
    assert plan.chapter_page("needle-entropy", runs, "smollm2").output == "smollm2-needle-entropy.ipynb"
    assert plan.chapter_page("needle-entropy", runs, results.ORGANISM).output == "needle-entropy.ipynb"
    # a real page's title need not start like the organism's: the label's template finds it
    runs.append(Run("perplexity", "smollm2-perplexity.ipynb", "SmolLM2-135M: perplexity beyond L0",
                    {"variants": ["rope:smollm2"], "glance": True}))
    label = "Perplexity beyond the pretrained length"
    assert plan.chapter_page(label, runs, "smollm2").output == "smollm2-perplexity.ipynb"
    assert plan.chapter_page(label, runs, results.ORGANISM).output == "perplexity-cpt.ipynb"


def test_a_row_without_a_chapter_page_fails(tmp_path):
    results.write_glance([row(3.1, "replicated", chapter="a chapter not in the plan")], "f", tmp_path)
    with pytest.raises(ValueError, match="3.1.*a chapter not in the plan"):
        glance.claims_html(results.read_glance(tmp_path), RUNS)


def test_models_side_by_side_and_not_run_until_a_real_model_page_writes_rows(tmp_path):
    results.write_glance([row(1.1, "replicated"), row(2.1, "partly")], "finding", tmp_path)
    html = glance.claims_html(results.read_glance(tmp_path), RUNS)
    assert "<th>model organism</th><th>real model (SmolLM2-135M)</th>" in html
    assert html.count('<td class="glance-model glance-not-run">not run</td>') == 2
    results.write_glance([row(1.1, "not replicated", ours=0.25, model="smollm2")], "finding1-smollm2", tmp_path)
    rows = results.read_glance(tmp_path)
    html = glance.claims_html(rows, RUNS)
    assert html.count("<tr class=\"glance-paper\">") == 2  # one row per claim, not per model
    first = html.split('<tr class="glance-paper">')[1]
    assert re.findall(r'verdict-([a-z-]+)">[^<]*</span><br><span class="glance-number">([^<]+)', first) == [
        ("replicated", "0.5"), ("not-replicated", "0.25")]
    assert html.count("not run") == 1 + 1  # 2.1 has no real-model row; its group's counts say so
    assert glance.verdict_counts(rows).loc["paper"].sum() == 2  # counts are the organism's
    assert glance.verdict_counts(rows, "smollm2").loc["paper", "not replicated"] == 1
    with pytest.raises(ValueError, match="model"):
        glance.normalise(pd.DataFrame([row(1.1, "replicated", model="gpt-9")]))


def test_groups_read_findings_then_model_size_then_what_the_book_adds():
    rows = pd.DataFrame([row(9.1, "partly"), row(1.25, "replicated", kind="control"), row(3.1, "replicated"),
                         row(1.1, "replicated"), row(4.1, "replicated", kind="beyond"), row(2.1, "partly")])
    rows["finding"] = ["Model size", "Finding 1", "Finding 3", "Finding 1", "Beyond the paper", "Finding 2"]
    names = [name for name, _ in glance.groups(glance.glance_table(rows))]
    assert names == ["Finding 1", "Finding 2", "Finding 3", "Model size", glance.BOOK_ADDS]
    html = glance.claims_html(rows, RUNS)
    assert "model organism: 2 supported" in html  # the book's group counts in its own words
    assert "model organism: 1 replicated · real model (SmolLM2-135M): not run" in html


def test_the_legend_states_each_verdict_word_unfolded():
    legend = glance.legend_html()
    assert "<details" not in legend
    assert re.findall(r'verdict-([a-z-]+)"', legend) == [v.replace(" ", "-") for v in results.VERDICTS] + [
        "supported", "partly-supported", "not-supported"]


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
    assert [bool(c) for c in rows["caveats"]] == [True, True, False]  # the premise that holds is not carried
    assert "perplexity fails beyond L0: base: x1.56 at 4 L0" in rows.loc[0, "caveats"]
    assert rows["verdict"].tolist() == ["replicated"] * 3  # a caveat, never a switch
    html = glance.claims_html(rows, RUNS)
    assert html.count('class="glance-caveat"') == 2 and "precondition not met in the organism" in html
    assert glance.glance_table(rows)["caveats"].tolist()[2] == ""


def test_the_sensitivity_verdict_stays_visible_and_its_parts_unfold_with_the_claim(tmp_path):
    from ropelib.findings import claims

    claim = claims.load()[2.1]
    graded = [claims.part(claim, "first answer token", 0.7, 0.6, 0.8, 20)]
    entry = claims.row(claim, graded, model=results.ORGANISM, caveats=["a premise fails: 0.7 < 0.8"],
                       sensitivity=[claims.part(claim, "first answer token", 0.65, 0.12, 0.93, 9)])
    head, parts = glance.sensitivity_parts(entry["sensitivity"])
    assert head.startswith("on the units that meet the premises: ") and head.endswith(")") and "0.12" in parts
    results.write_glance([entry], "s", tmp_path)
    html = glance.claims_html(glance.normalise(results.read_glance(tmp_path)), RUNS)
    visible = html.split("</details>")[1]  # after the claim's unfolding: the caveat div
    assert head in visible and "0.12" not in visible  # the verdict word shown, its numbers folded
    assert "0.12" in html.split("</details>")[0]
    assert glance.sensitivity_parts("a line of another shape") == ("a line of another shape", "")

def test_the_controls_are_stated_plainly(tmp_path):
    results.write_glance([row(1.2, "replicated"), row(1.25, "not replicated", kind="control", ours="cpt-rope 8x"),
                          row(1.65, "replicated", kind="control", ours="cpt-rope 0.27 vs 0.9-0.97")], "c", tmp_path)
    html = glance.controls_html(glance.normalise(results.read_glance(tmp_path)))
    assert html.count("<li>") == 2 and "verdict-not-supported" in html and "verdict-supported" in html
    assert "cpt-rope 0.27 vs 0.9-0.97" in html
    assert glance.controls_html(glance.normalise(results.read_glance(tmp_path / "none"))) == ""


def test_the_real_model_cannot_test_claims_that_need_continual_pretraining(tmp_path):
    runs = RUNS + [Run("cpt-length", "cpt-length.ipynb", "Longer training contexts lower attention uncertainty", {}),
                   Run("model-size", "model-size.ipynb", "Model size", {})]
    results.write_glance([row(1.1, "replicated", chapter="Perplexity beyond the pretrained length"),
                          row(1.2, "partly", chapter="Perplexity beyond the pretrained length"),
                          row(2.1, "replicated", chapter="needle-entropy"),
                          row(3.1, "replicated", chapter="Longer training contexts"),  # cpt-length by its title
                          row(9.2, "not supported", chapter="model-size", kind="beyond")], "finding", tmp_path)
    # the real model's own rows (glance-*-smollm2.csv) are written by its pages; here synthetic, in tmp_path
    results.write_glance([row(1.1, "not replicated", ours=0.25, model="smollm2",
                              chapter="Perplexity beyond the pretrained length")], "finding1-smollm2", tmp_path)
    rows = glance.with_scope(results.read_glance(tmp_path), runs)
    real = rows[rows["model"] == "smollm2"].set_index("order")
    assert real["verdict"].to_dict() == {1.1: "not replicated", 1.2: "not testable", 3.1: "not testable",
                                         9.2: "not testable"}  # 2.1 can be tested: "not run" until its row exists
    assert (real.loc[[1.2, 3.1, 9.2], "ours"] == glance.NEEDS_CPT).all()  # the cell; the specifics unfolded:
    assert real.loc[3.1, "details"] == glance.OUT_OF_SCOPE_CHAPTERS["cpt-length"]
    assert real.loc[9.2, "kind"] == "beyond" and real.loc[3.1, "claim"] == "a claim"  # the claim's own columns
    assert glance.with_scope(rows, runs).equals(rows)  # once only
    counts = glance.verdict_counts(rows, "smollm2")
    assert counts.loc["paper", "not testable"] == 2 and counts.loc["beyond", "not testable"] == 1
    assert counts.loc["paper", "not replicated"] == 1 and glance.verdict_counts(rows).loc["paper"].sum() == 4
    html = glance.claims_html(results.read_glance(tmp_path), runs)  # the table applies the scope itself
    cells = re.findall(r'<td class="glance-model[^"]*">(.*?)</td>', html)
    assert len(cells) == 2 * 5
    assert cells[3] == ('<span class="verdict verdict-not-testable">not testable</span><br><span class="glance-reason">'
                        f'{glance.NEEDS_CPT}</span>')  # 1.2's real model: the reason, whole
    assert "needs continual pretraining; the real model is run training-free" in cells[3]
    assert html_escape(glance.OUT_OF_SCOPE_CLAIMS[1.2]) in html  # unfolded: why, for this claim
    assert cells[5] == "not run"  # 2.1's real model
    assert "real model (SmolLM2-135M): 1 not replicated, 1 not testable" in html  # finding 1's counts
    assert "real model (SmolLM2-135M): not run" in html  # finding 2: nothing yet
    table = glance.counts_html({m: glance.verdict_counts(rows, m) for m in glance.MODELS})
    assert re.search(r'<th rowspan="2">the paper&#x27;s claims</th><td class="glance-count-model">organism</td>'
                     r'(<td>\d+</td>){4}<td><b>4</b></td><td class="glance-untestable">0</td></tr><tr><td class='
                     r'"glance-count-model">SmolLM2-135M</td>(<td>\d+</td>){4}<td><b>1</b></td><td '
                     r'class="glance-untestable">2</td>', table)  # per kind, one line per model
    empty = glance.counts_html({m: glance.verdict_counts(rows.iloc[:0], m) for m in glance.MODELS})
    assert "SmolLM2" not in empty and "glance-count-model" not in empty  # nothing counted for it: the organism alone


def test_group_counts_say_how_many_claims_a_model_has_not_run():
    rows = pd.DataFrame([row(1.1, "replicated"), row(1.3, "partly"), row(1.4, "replicated"),
                         row(1.1, "replicated", model="smollm2")])
    html = glance.claims_html(rows, RUNS)
    assert "model organism: 2 replicated, 1 partly · real model (SmolLM2-135M): 1 replicated, 2 not run" in html


def test_short_numbers_come_from_the_structured_columns_never_from_prose():
    rows = pd.DataFrame([row(2.1, "replicated", ours=0.6723, ci=(0.6114, 0.7331), n=40,
                             details="first answer token: 0.1 [0.2, 0.3]"),
                         row(3.2, "inconclusive", ours=0.0, ci=(0.0, 0.0), n=1),
                         row(1.2, "not testable", ours="-", details="needs continual pretraining; more")])
    assert glance.glance_table(rows)["short"].tolist() == [  # in order: 1.2, 2.1, 3.2
        "needs continual pretraining", "0.672 [0.611, 0.733], n = 40 prompts", "0 [0, 0], n = 1 prompt"]


def test_the_figure_puts_every_graded_claim_on_the_sesoi_scale_with_its_band():
    rows = pd.DataFrame([row(2.1, "replicated", ours=0.67, ci=(0.61, 0.73), n=40, null=0.5, sesoi=0.05),
                         row(3.1, "replicated", ours=-0.5, ci=(-0.7, -0.3), n=30, sesoi=0.1, direction=-1),
                         row(3.3, "inconclusive", ours=0.0, ci=(-0.3, 0.2), n=30, sesoi=0.1, direction=0),
                         row(1.2, "not testable", ours="-"),  # no interval: in the table, not in the figure
                         row(2.1, "not replicated", ours=0.5, ci=(0.47, 0.53), n=20, null=0.5, sesoi=0.05,
                             model="smollm2")])
    points = glance_plots.standardised(rows)
    assert points["order"].tolist() == [2.1, 2.1, 3.1, 3.3]
    assert points[["z", "z_low", "z_high"]].round(6).values.tolist() == [
        [3.4, 2.2, 4.6], [0.0, -0.6, 0.6], [5.0, 3.0, 7.0], [0.0, -3.0, 2.0]]  # claimed side to the right
    figure = glance_plots.forest_plot(rows)
    ax = figure.axes[0]
    band = [p for p in ax.patches if p.get_x() == -1 and abs(p.get_width() - 2) < 1e-9]
    assert band, "null +- sesoi drawn as a band"
    markers = sorted(line.get_marker() for line in ax.lines if line.get_marker() in ("o", "s"))
    assert markers == ["o", "o", "o", "s"]  # the organism a dot, the real model a square
    assert glance_plots.forest_plot(rows.iloc[[3]]) is None
