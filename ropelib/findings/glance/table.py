"""The "Results at a glance" page: every chapter's glance rows, as verdicts a reader takes in at once.

Chapters write their rows with ``ropelib.results.write_glance`` (``data/results/glance-*.csv``:
one claim per row, graded by the one rule of the claims registry, ``ropelib.findings.claims``,
with the structured columns ``estimate``, ``ci_low``, ``ci_high``, ``null``, ``sesoi``,
``direction``, ``n_units``, ``unit``, its parts, caveats and sensitivity line); this module only
reads, counts and formats them, so the page shows whatever findings have been run so far.
Numbers shown come from the structured columns, never parsed back out of prose:

  normalise(rows)         the rows in order, old-format files (no kind/details) filled in, each
                          verdict in its kind's words (``results.worded``: a control or a result
                          beyond the paper is "supported", never "replicated")
  carry_premises(rows, premises)  each row resting on a premise chapter 0 found false gets it among its
                          ``caveats`` (a precondition not met in the organism), shown under the claim
  out_of_scope(row, runs) why a real model cannot test a claim here, or "": the declared scope
                          (:data:`OUT_OF_SCOPE_CHAPTERS`, :data:`OUT_OF_SCOPE_CLAIMS`: claims that need
                          continual pretraining; the real model is run training-free)
  with_scope(rows, runs)  the rows plus each real model's "not testable" row (its reason as its result) on
                          each claim out of its scope that it has no row for; counted like any other
  verdict_counts(rows, model)  one model's claims per kind (paper / control / beyond) and verdict
  legend_html()           the verdict words and their criteria in one line each, at the top
  short_number(row)       the row's estimate with its CI and number of units, at 3 significant digits, from
                          the structured columns; a not-testable row's reason
  groups(table)           the claims' groups in reading order: findings 1-3, the model-size appendix, then
                          what the book adds (controls, beyond the paper)
  counts_html(counts)     the counts as two small tables, one line per kind and model: the paper's claims in
                          replication words, controls and results beyond the paper apart in their own; "not
                          testable" in a column apart
  verdict_rules_html()    what each verdict means, folded
  controls_html(rows)     what the controls show, one line each (verdict, ours), never folded
  (each row's ``chapter`` label -> its page: ``ropelib.publish.plan.chapter_pages``; -> the section of that
  page that computes the row: ``ropelib.publish.sections.chapter_sections``)
  glance_table(rows)      one row per claim and model as text (what the HTML table shows)
  claims_html(rows, runs) one row per claim (the scope applied: :func:`with_scope`): #, claim (unfolded: its
                          criterion, every model's full result and details), paper, then per model
                          (:data:`MODELS`) the verdict badge and the short number ("not run" where that
                          model has no row), a link to the section of the chapter's page that computes it;
                          a row whose chapter names no page raises
  VERDICT_COLOURS         one colour per verdict: the badges (book/_static/ropebook.css)
                          and the forest plot (``glance_plots``) use the same

Not here: any verdict rule (``ropelib.findings.claims`` and each chapter's estimands), the forest plot
(``ropelib.findings.glance.plots``), finding a page's sections (``ropelib.publish.sections``), or
reading files other than through ``ropelib.results``.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping

import pandas as pd

from ropelib.models import real
from ropelib.publish.plan import chapter_page, chapter_pages
from ropelib.publish.sections import chapter_sections
from ropelib.results import (
    ALL_VERDICTS,
    GLANCE_COLUMNS,
    KINDS,
    ORGANISM,
    OWN_VERDICTS,
    VERDICTS,
    worded,
)

VERDICT_RULES = {  # the one rule of chapters/claims.yml (ropelib.findings.claims.grade), in words
    "replicated": "the 95% CI of the claim's estimand lies wholly on the claimed side of its null (a claim "
                  "of no effect: inside null +- sesoi)",
    "partly": "a claim of several parts: at least one part replicated, not every part",
    "not replicated": "the CI lies inside null +- sesoi (an effect of interest is excluded) or wholly on the "
                      "other side of the null; never from an interval that could not have shown the effect",
    "inconclusive": "the CI holds both an effect of interest and its absence, or fewer units than the registry "
                    "asks for (8), or an interval of zero width (not a CI)",
    "not testable": "the quantity cannot be measured at all (a claim about continual pretraining on a model "
                    "run training-free; no natively long model); a failed premise is a caveat, never this",
    "supported": "controls and results beyond the paper (their own words, counted apart): as replicated",
    "partly supported": "as partly",
    "not supported": "as not replicated",
}
# badge and marker colours; book/_static/ropebook.css repeats them (tests/findings/test_glance.py keeps them equal)
VERDICT_COLOURS = {"replicated": "#1a7f37", "partly": "#b35900", "not replicated": "#c62828",
                   "inconclusive": "#8250df", "not testable": "#6e7781", "supported": "#1a7f37",
                   "partly supported": "#b35900", "not supported": "#c62828"}
KIND_LABELS = {"paper": "the paper's claims", "control": "controls the paper lacks",
               "beyond": "results beyond the paper"}
TESTED = [v for v in ALL_VERDICTS if v != "not testable"]
# the counts: the paper's claims in its words; controls and results beyond it apart, in theirs
COUNT_TABLES = ((("paper",), VERDICTS), (("control", "beyond"), OWN_VERDICTS))
COLUMNS = ["order", "finding", "claim", "kind", "paper", "ours", "short", "verdict", "chapter", "rule", "details",
           "caveats", "sensitivity", "model"]
# the table's model columns, in order: each claim's answer per model, side by side ("not run" until its rows exist)
class _Models(Mapping):
    """model -> label, from the real-model registry (``ropelib.models.real``) each time it is read: the organism
    first, then each real model, in the registry's order."""

    def __init__(self, organism: str, label_of):
        self.organism, self.label_of = organism, label_of

    def _table(self) -> dict:
        return {ORGANISM: self.organism, **{m.name: self.label_of(m) for m in real.MODELS.values()}}

    def __getitem__(self, model):
        return self._table()[model]

    def __iter__(self):
        return iter(self._table())

    def __len__(self):
        return len(self._table())


MODELS = _Models("model organism", lambda m: m.column)
MODEL_NAMES = _Models("organism", lambda m: m.label)  # the same, short: the counts' model column
NOT_RUN = "not run"
# a row's sensitivity line as ``claims.row`` writes it: "on the units that meet the premises: WORD
# (the same|differs from all units): part; part"; the headline stays visible, the parts unfold with the claim
SENSITIVITY = re.compile(r"(?P<head>.*?\((?:the same|differs from all units)\))(?:: (?P<parts>.*))?$", re.S)
BOOK_ADDS = "What the book adds: controls and results beyond the paper"  # the last group, after the paper's
SIGNIFICANT = 3  # digits of the numbers the table shows
# a number with a decimal point (integers such as 69, 4096 or L0's 256 are counts and lengths: kept as written)
DECIMAL = re.compile(r"(?<![\w.])(\d+\.\d+(?:[eE][+-]?\d+)?)(?![\d.])")
# What a real model cannot test here: it is run training-free (no continual pretraining), so a claim about
# continually pretrained models says nothing about it. Declared per chapter template (every claim of the page)
# and per claim order; "not testable" with the reason in that model's cell and counts (:func:`with_scope`).
NEEDS_CPT = "needs continual pretraining; the real model is run training-free"
OUT_OF_SCOPE_CHAPTERS = {
    "cpt-length": NEEDS_CPT + " (finding 3 compares short- and long-context CPT)",
    "model-size": NEEDS_CPT + " at one size (the appendix compares PI CPT across model sizes)",
}
OUT_OF_SCOPE_CLAIMS = {  # claims of pages the real model runs, whose comparison is between CPT models
    1.2: NEEDS_CPT + " (the paper's limits are after CPT)",
    1.25: NEEDS_CPT + " (the control is plain-RoPE CPT)",
    1.35: NEEDS_CPT + " (the control is plain-RoPE CPT)",
    1.65: NEEDS_CPT + " (the control is plain-RoPE CPT)",
}
# the legend at the top: each word and its criterion in one line (the full rules fold under it)
LEGEND = {"replicated": "the 95% CI lies on the claimed side of the null",
          "partly": "some parts of the claim replicated, not all",
          "not replicated": "the CI excludes every effect of interest (inside null +- sesoi) or lies on the other side",
          "inconclusive": "the CI holds an effect of interest and its absence, or fewer than 8 units",
          "not testable": "the quantity cannot be measured on this model at all"}


def normalise(rows: pd.DataFrame) -> pd.DataFrame:
    """Every glance column present, in ``order``; a missing kind is "paper", missing details "", a missing
    model the organism.

    Glance files written before ``kind``, ``details`` and ``model`` existed are read as the organism's
    paper claims.
    Unknown verdicts or kinds raise: they are never typed by hand.
    """
    rows = rows.copy()
    for column in GLANCE_COLUMNS:
        if column not in rows:
            rows[column] = None
    rows["kind"] = rows["kind"].where(rows["kind"].notna() & (rows["kind"].astype(str) != ""), "paper")
    for column in ("details", "parts", "caveats", "sensitivity", "unit"):
        rows[column] = ["" if pd.isna(text) else str(text) for text in rows[column]]
    rows["model"] = rows["model"].where(rows["model"].notna() & (rows["model"].astype(str) != ""), ORGANISM)
    unknown = sorted(set(rows["model"].astype(str)) - set(MODELS))
    if unknown:
        raise ValueError(f"glance rows of unknown model(s) {unknown}; expected one of {list(MODELS)} (table.MODELS)")
    for column, allowed in (("verdict", ALL_VERDICTS), ("kind", KINDS)):
        unknown = sorted(set(rows[column].astype(str)) - set(allowed))
        if unknown:
            raise ValueError(f"glance rows with unknown {column}(s) {unknown}; expected one of {allowed}")
    rows["verdict"] = [worded(v, k) for v, k in zip(rows["verdict"], rows["kind"])]
    return rows.sort_values("order", kind="stable").reset_index(drop=True)


def carry_premises(rows: pd.DataFrame, premises: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with chapter 0's premises added to their ``caveats``: for each premise that does not hold
    (``results.read_premises``), "precondition not met in the organism (<chapter>): <premise>: <numbers>" on the
    organism's rows it lists (a caveat, never a switch: the verdict stands as graded)."""
    rows = rows.copy()
    caveats = {i: [c] if isinstance(c, str) and c else [] for i, c in rows["caveats"].items()} \
        if "caveats" in rows else {i: [] for i in rows.index}
    for _, premise in premises.iterrows():
        if str(premise["holds"]).lower() in ("true", "1"):
            continue
        orders = {float(o) for o in str(premise["claims"]).split()}
        text = f"precondition not met in the organism ({premise['chapter']}): {premise['premise']}: {premise['numbers']}"
        for i, order in rows["order"].items():
            if float(order) in orders and rows.at[i, "model"] == ORGANISM:
                caveats[i].append(text)
    rows["caveats"] = ["; ".join(caveats[i]) for i in rows.index]
    return rows


SCOPE_RULE = "out of the real model's scope"  # how a row added by with_scope states its rule


def out_of_scope(row, runs=()) -> str:
    """Why a real model (``real.MODELS``, run training-free) cannot test this claim here, or "": its page's template is in
    :data:`OUT_OF_SCOPE_CHAPTERS` (the row's ``chapter`` label as a template name, or the page it names in
    ``runs``), or its order in :data:`OUT_OF_SCOPE_CLAIMS`."""
    label = str(row["chapter"])
    run = chapter_page(label, runs) if runs else None
    chapter = run.chapter if run is not None else label
    return OUT_OF_SCOPE_CHAPTERS.get(chapter) or OUT_OF_SCOPE_CLAIMS.get(round(float(row["order"]), 4), "")


def with_scope(rows: pd.DataFrame, runs=()) -> pd.DataFrame:
    """``rows`` (normalised) with a "not testable" row for the real model on each claim it cannot test
    (:func:`out_of_scope`) and has no row for: its ``ours`` :data:`NEEDS_CPT` (the cell), its ``details`` and
    rule the full reason; the claim's own columns from the claim's first row. A row that model wrote itself is
    kept."""
    rows = normalise(rows)
    added = []
    for model in real.names():
        answered = set(rows.loc[rows["model"] == model, "order"].astype(float))
        for order, claim in rows.groupby("order", sort=False):
            reason = out_of_scope(claim.iloc[0], runs)
            if reason and float(order) not in answered:
                added.append(claim.iloc[0].to_dict() | {
                    "model": model, "verdict": "not testable", "ours": NEEDS_CPT, "details": reason,
                    "estimate": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n_units": 0,
                    "caveats": "", "sensitivity": "", "parts": "",
                    "rule": f"{SCOPE_RULE} (glance.table.OUT_OF_SCOPE_*): {reason}"})
    return normalise(pd.concat([rows, pd.DataFrame(added)], ignore_index=True)) if added else rows


def verdict_counts(rows: pd.DataFrame, model: str = ORGANISM) -> pd.DataFrame:
    """``model``'s claims per kind (rows, in :data:`KINDS` order) and verdict (columns, in ``ALL_VERDICTS`` order)."""
    rows = normalise(rows)
    rows = rows[rows["model"] == model]
    table = pd.crosstab(rows["kind"], rows["verdict"]) if len(rows) else pd.DataFrame()
    return table.reindex(index=list(KINDS), columns=list(ALL_VERDICTS), fill_value=0).fillna(0).astype(int)


def badge(verdict: str) -> str:
    """The verdict as a coloured badge (``span.verdict.verdict-<name>``, styled by ropebook.css)."""
    return f'<span class="verdict verdict-{verdict.replace(" ", "-")}">{html.escape(verdict)}</span>'


def controls_html(rows: pd.DataFrame) -> str:
    """What the controls show, plainly: one line per control row (its claim, verdict badge and ours)."""
    table = glance_table(rows)
    controls = table[(table["kind"] == "control") & (table["model"] == ORGANISM)]
    if controls.empty:
        return ""
    items = "".join(f"<li>{row['order']} {html.escape(row['claim'])}: {badge(row['verdict'])} "
                    f"{html.escape(row['ours'])}</li>" for _, row in controls.iterrows())
    return f'<div class="glance-controls"><p><b>What the controls show</b></p><ul>{items}</ul></div>'


def verdict_rules_html() -> str:
    """What each verdict means in general, folded in a ``<details>`` block (each row states its exact rule)."""
    items = "".join(f"<li>{badge(v)} {html.escape(meaning)}</li>" for v, meaning in VERDICT_RULES.items())
    return (f'<details class="glance-rules"><summary>What the verdicts mean, in full</summary><ul>{items}</ul>'
            "<p>Each claim states its exact rule: click the claim.</p></details>")


def legend_html() -> str:
    """The verdict words and their criteria, one short line each, never folded (:data:`LEGEND`)."""
    items = "".join(f"<li>{badge(v)} {html.escape(meaning)}</li>" for v, meaning in LEGEND.items())
    own = " / ".join(badge(v) for v in OWN_VERDICTS[:3])
    return (f'<div class="glance-legend"><ul>{items}</ul><p>Controls and results beyond the paper, which the paper '
            f"never claimed, read {own} by the same criteria, and are counted apart.</p></div>")


def counts_html(counts) -> str:
    """The counts as HTML tables (:data:`COUNT_TABLES`): the paper's claims in replication words, then
    controls and results beyond the paper in their own words; "not testable" in a column set apart.
    ``counts``: one model's (:func:`verdict_counts`), or model -> its counts: per kind one line per model, the
    model in a column of its own (a model with no claim counted is left out)."""
    if isinstance(counts, pd.DataFrame):
        counts, labelled = {ORGANISM: counts}, False
    else:
        counts = {m: c for m, c in counts.items() if c.to_numpy().sum() or m == ORGANISM}
        labelled = len(counts) > 1
    lines = []
    for kinds, words in COUNT_TABLES:
        tested = [v for v in words if v != "not testable"]
        head = "".join(f"<th>{badge(v)}</th>" for v in tested)
        model = "<th>model</th>" if labelled else ""
        lines.append(f'<table class="glance-counts"><thead><tr><th>claims</th>{model}{head}<th>tested</th>'
                     f'<th class="glance-untestable">{badge("not testable")}</th></tr></thead><tbody>')
        for kind in kinds:
            for i, (model, table) in enumerate(counts.items()):
                row = table.loc[kind]
                label = f"<th>{html.escape(KIND_LABELS[kind])}</th>" if not labelled else (
                    f'<th rowspan="{len(counts)}">{html.escape(KIND_LABELS[kind])}</th>' if i == 0 else "")
                label += f'<td class="glance-count-model">{html.escape(MODEL_NAMES[model])}</td>' if labelled else ""
                cells = "".join(f"<td>{int(row[v])}</td>" for v in tested)
                lines.append(f"<tr>{label}{cells}<td><b>{int(row[tested].sum())}</b>"
                             f'</td><td class="glance-untestable">{int(row["not testable"])}</td></tr>')
        lines.append("</tbody></table>")
    return "".join(lines)


def _significant(value: float) -> str:
    """``value`` at :data:`SIGNIFICANT` digits, never in exponent form above 1000 (lengths, counts)."""
    if math.isnan(value):
        return "nan"
    return f"{value:.0f}" if abs(value) >= 10 ** SIGNIFICANT else f"{value:.{SIGNIFICANT}g}"


def _number(x) -> str:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return str(x)
    return _significant(value)


def round_numbers(text: str) -> str:
    """Every number with a decimal point in ``text`` at 3 significant digits ("0.2926 [0.2551, 0.3348]" ->
    "0.293 [0.255, 0.335]"); integers (counts, lengths, "4x") are kept."""
    return DECIMAL.sub(lambda m: _significant(float(m.group(1))), str(text))


def _ci(row) -> str:
    low, high = (pd.to_numeric(pd.Series([row.get("ci_low"), row.get("ci_high")]), errors="coerce")).tolist()
    return "" if math.isnan(low) or math.isnan(high) else f" [{_significant(low)}, {_significant(high)}]"


def _ours(row) -> str:
    """``ours`` in full, with ``[ci_low, ci_high]`` appended when the row has a CI, numbers at 3 digits."""
    return round_numbers(_number(row["ours"])) + _ci(row)


def short_number(row) -> str:
    """The row's estimate with its CI and units, at 3 significant digits, from the structured columns
    ("0.672 [0.611, 0.733], n = 40 prompts"); a row without an estimate: its ``ours`` if that is text, else
    the first clause of its details (a not-testable row's reason)."""
    estimate = pd.to_numeric(pd.Series([row.get("estimate")]), errors="coerce").iloc[0]
    if not math.isnan(estimate):
        n = pd.to_numeric(pd.Series([row.get("n_units")]), errors="coerce").iloc[0]
        units = "" if math.isnan(n) else f", n = {int(n)} {row.get('unit') or 'units'}" + ("s" if int(n) != 1 else "")
        return _significant(estimate) + _ci(row) + units
    text = str(row.get("ours") or "").strip()
    if text and text.lower() not in ("-", "nan"):
        return round_numbers(text)
    return round_numbers(re.split(r";\s*", str(row.get("details") or "").strip())[0]) or "-"


def glance_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per claim and model, as text, in the rows' ``order`` (``ours`` in full with its CI, ``short``:
    :func:`short_number`; numbers at 3 significant digits)."""
    rows = normalise(rows)
    return pd.DataFrame({
        "order": rows["order"].map(lambda x: f"{float(x):g}"),
        "finding": rows["finding"].astype(str),
        "claim": rows["claim"].astype(str),
        "kind": rows["kind"].astype(str),
        "paper": rows["paper"].map(_number),
        "ours": [_ours(row) for _, row in rows.iterrows()],
        "short": [short_number(row) for _, row in rows.iterrows()],
        "verdict": rows["verdict"].astype(str),
        "chapter": rows["chapter"].astype(str),
        "rule": rows["rule"].astype(str),
        "details": [round_numbers(d) for d in rows["details"]],
        "caveats": rows["caveats"].fillna("").astype(str),
        "sensitivity": rows["sensitivity"].fillna("").astype(str),
        "model": rows["model"].astype(str),
    }, columns=COLUMNS)


def groups(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The claims' groups in reading order: the paper's claims by finding (findings 1-3, then the model-size
    appendix: by their first claim's number), then :data:`BOOK_ADDS` (every control and result beyond the
    paper, whatever its finding)."""
    group = table["finding"].where(table["kind"] == "paper", BOOK_ADDS)
    first = table["order"].astype(float).groupby(group).min()
    names = sorted(first.index, key=lambda name: (name == BOOK_ADDS, first[name]))
    return [(name, table[group == name]) for name in names]


def _group_counts(table: pd.DataFrame) -> str:
    """One line per model of the group's verdict counts over its claims ("model organism: 2 replicated, 1
    partly"; "real model (SmolLM2-135M): 1 not testable, 3 not run")."""
    parts, claims = [], table["order"].nunique()
    for model, label in MODELS.items():
        answers = table.loc[table["model"] == model]
        counts = answers["verdict"].value_counts()
        words = [f"{counts[v]} {v}" for v in ALL_VERDICTS if v in counts]
        missing = claims - answers["order"].nunique()
        words = ", ".join(words + ([f"{missing} {NOT_RUN}"] if missing and words else []))
        parts.append(f"{html.escape(label)}: {html.escape(words or NOT_RUN)}")
    return " · ".join(parts)


def sensitivity_parts(text: str) -> tuple[str, str]:
    """(headline, parts) of a sensitivity line: "on the units that meet the premises: inconclusive (the same)"
    and its graded parts ("" when none); a line of another shape is all headline."""
    match = SENSITIVITY.match(text or "")
    return (match["head"], match["parts"] or "") if match else (text or "", "")


def _unfolded(claim: pd.DataFrame) -> str:
    """Every model's full result and details, never cut, with the parts of its sensitivity line."""
    lines = []
    for _, row in claim.iterrows():
        label = html.escape(MODELS[row["model"]])
        lines.append(f"<p><b>{label}</b>: {badge(row['verdict'])} {html.escape(row['short'])}</p>")
        if row["details"]:
            lines.append(f"<p><b>details</b>: {html.escape(row['details'])}</p>")
        parts = sensitivity_parts(row["sensitivity"])[1]
        if parts:
            lines.append(f"<p><b>on the units that meet the premises</b>: {html.escape(parts)}</p>")
    return "".join(lines)


def _claim_cell(claim: pd.DataFrame) -> str:
    """The claim as a ``<details>`` summary; unfolded: its criterion, then every model's result in full with
    its sub-statistics (issue 28: the table's height goes to the claims)."""
    row = claim.iloc[0]
    kind = "" if row["kind"] == "paper" else f' <span class="glance-kind">{html.escape(row["kind"])}</span>'
    criterion = f'<div class="glance-criterion"><b>criterion</b>: {html.escape(row["rule"])}</div>'
    summary = f"<summary>{html.escape(row['claim'])}{kind}</summary>"
    return f"<details>{summary}{criterion}{_unfolded(claim)}</details>"


def _caveat(claim: pd.DataFrame) -> str:
    """Caveats (failed premises) and the verdict on the units that meet them, always visible ("" when none);
    that verdict's parts unfold with the claim (:func:`_unfolded`)."""
    caveats = "; ".join(dict.fromkeys(f"{MODEL_NAMES[m]}: {c}" for m, c in zip(claim["model"], claim["caveats"]) if c))
    sensitivity = "; ".join(f"{MODEL_NAMES[m]}: {sensitivity_parts(t)[0]}"
                            for m, t in zip(claim["model"], claim["sensitivity"]) if t)
    if not caveats and not sensitivity:
        return ""
    return (f'<div class="glance-caveat"><b>caveat</b>: {html.escape(caveats)}'
            + (f"<br><b>sensitivity</b>: {html.escape(sensitivity)}" if sensitivity else "") + "</div>")


def _model_cells(claim: pd.DataFrame, links: dict | None = None) -> str:
    """Per model of :data:`MODELS`: the verdict badge and the short number, or "not run"; a "not testable" row's
    (its reason, or what was measured anyway) in small grey type (``span.glance-reason``); ``links``: model ->
    the link to the section of that model's own page, under its number (the real model's pages)."""
    links = links or {}
    cells = []
    for model in MODELS:
        answer = claim[claim["model"] == model]
        if answer.empty:
            cells.append(f'<td class="glance-model glance-not-run">{NOT_RUN}</td>')
            continue
        row = answer.iloc[0]
        shown = "glance-reason" if row["verdict"] == "not testable" else "glance-number"  # why, in small type
        link = f"<br>{links[model]}" if links.get(model) else ""
        cells.append(f'<td class="glance-model">{badge(row["verdict"])}<br>'
                     f'<span class="{shown}">{html.escape(row["short"])}</span>{link}</td>')
    return "".join(cells)


def _own_links(claim: pd.DataFrame, own: dict) -> dict[str, str]:
    """model -> the link to the section of that model's own page computing its row (rows it wrote itself)."""
    links = {}
    for model, (pages, sections) in own.items():
        answer = claim[(claim["model"] == model) & ~claim["rule"].astype(str).str.startswith(SCOPE_RULE)]
        if len(answer) and str(answer.iloc[0]["chapter"]) in pages:
            links[model] = _link(str(answer.iloc[0]["chapter"]), answer.iloc[0]["order"], pages, sections)
    return links


def _link(label: str, order: str, pages: dict, sections: dict) -> str:
    """The link to the section of the chapter's page that computes the row (``publish.sections``), to the page
    where that section is not known; a label that names no page of the plan raises."""
    if label not in pages:
        raise ValueError(f"glance row {order}: chapter {label!r} names no page of book/runs.yml "
                         "(use the page's output name, template name or title)")
    page, title = pages[label]
    target = f"{page}.html" + (f"#{sections[label]}" if label in sections else "")
    return f'<a href="{html.escape(target)}" title="{html.escape(title)}">{html.escape(page)}</a>'


def claims_html(rows: pd.DataFrame, runs) -> str:
    """One row per claim, grouped (:func:`groups`) with each group's counts in its header; the models
    side by side (:data:`MODELS`); ``runs`` (book/runs.yml) for the chapter links, which every row has."""
    table = glance_table(with_scope(rows, runs))
    # the chapter column links the organism's page (any page where it has none); a real model's own page
    # is linked in its cell, under its number
    pages = chapter_pages(table["chapter"], runs) | chapter_pages(table["chapter"], runs, ORGANISM)
    sections = chapter_sections(table["chapter"], runs) | chapter_sections(table["chapter"], runs, model=ORGANISM)
    reals = [m for m in MODELS if m != ORGANISM]
    own = {m: (chapter_pages(table["chapter"], runs, m), chapter_sections(table["chapter"], runs, model=m))
           for m in reals}
    models = "".join(f"<th>{html.escape(label)}</th>" for label in MODELS.values())
    width = 4 + len(MODELS)
    lines = ['<table class="glance-claims"><thead><tr><th>#</th><th>claim <small>(click for its criterion '
             f'and every number)</small></th><th>paper</th>{models}<th>chapter</th></tr></thead><tbody>']
    for name, group in groups(table):
        lines.append(f'<tr class="glance-finding"><th colspan="{width}">{html.escape(name)}'
                     f'<div class="glance-group-counts">{_group_counts(group)}</div></th></tr>')
        for order, claim in group.groupby("order", sort=False):
            row = claim.iloc[0]
            lines.append(f'<tr class="glance-{row["kind"]}"><td>{order}</td><td>{_claim_cell(claim)}</td>'
                         f"<td>{html.escape(row['paper'])}</td>{_model_cells(claim, _own_links(claim, own))}"
                         f"<td>{_link(row['chapter'], order, pages, sections)}</td></tr>")
            caveat = _caveat(claim)
            if caveat:  # under the claim, across the table: the claim column alone made it many lines tall
                lines.append(f'<tr class="glance-caveat-row"><td></td><td colspan="{width - 1}">{caveat}</td></tr>')
    lines.append("</tbody></table>")
    return "".join(lines)
