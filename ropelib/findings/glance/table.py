"""The "Results at a glance" page: every chapter's glance rows, as verdicts a reader takes in at once.

Chapters write their rows with ``ropelib.results.write_glance`` (``data/results/glance-*.csv``:
one claim per row, the paper's number, ours with its CI, a verdict computed by the rule in
the row, the claim's ``kind`` and its sub-statistics in ``details``); this module only
reads, counts and formats them, so the page shows whatever findings have been run so far:

  normalise(rows)         the rows in order, old-format files (no kind/details) filled in, each
                          verdict in its kind's words (``results.worded``: a control or a result
                          beyond the paper is "supported", never "replicated")
  carry_premises(rows, premises)  each row resting on a premise chapter 0 found false gets it as a
                          ``caveat`` (a precondition not met in the organism), shown under the claim
  out_of_scope(row, runs) why the real model cannot test a claim here, or "": the declared scope
                          (:data:`OUT_OF_SCOPE_CHAPTERS`, :data:`OUT_OF_SCOPE_CLAIMS`: claims that need
                          continual pretraining; the real model is run training-free)
  with_scope(rows, runs)  the rows plus the real model's "not testable" row (its reason as its result) on
                          each claim out of its scope that it has no row for; counted like any other
  verdict_counts(rows, model)  one model's claims per kind (paper / control / beyond) and verdict
  legend_html()           the verdict words and their criteria in one line each, at the top
  items(text)             the models a result lists with their CIs (finding 1's attention), in order
  short_number(row)       the row's result as one short number with its CI, at 3 significant digits; a list of
                          models as the one the claim singles out against the closest, both named; a share
                          with its count ("0.333 (1 of 3)") with its Wilson interval
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

Not here: any verdict rule (each chapter's findings module), the forest plot
(``ropelib.findings.glance.plots``), finding a page's sections (``ropelib.publish.sections``), or
reading files other than through ``ropelib.results``.
"""

from __future__ import annotations

import html
import math
import re

import pandas as pd

from ropelib.core.stats import proportion_interval
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

VERDICT_RULES = {
    "replicated": "the organism shows the paper's effect, by the row's rule (typically: the ordering or "
                  "threshold holds and the 95% CIs separate)",
    "partly": "a significant part of the claim holds (that part's CI excludes its null) and another part "
              "does not; never a point estimate alone",
    "not replicated": "the organism shows the effect's absence or its opposite (CIs on the other side)",
    "inconclusive": "the CI includes both the claimed effect and its absence, or the test cannot separate "
                    "the claim from its baseline (e.g. length alone predicts as well)",
    "not testable": "the quantity the claim compares could not be measured here (e.g. a checkpoint whose "
                    "role needs retrieval missed its retrieval gate, or is absent); counted apart, never as "
                    "a failure",
    "supported": "controls and results beyond the paper (their own words, counted apart): the rule holds",
    "partly supported": "a significant part of the rule holds and another does not",
    "not supported": "the rule's CIs are on the other side",
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
           "caveat", "model"]
# the table's model columns, in order: each claim's answer per model, side by side ("not run" until its rows exist)
MODELS = {ORGANISM: "model organism", "smollm2": "real model (SmolLM2-135M)"}
MODEL_NAMES = {ORGANISM: "organism", "smollm2": "SmolLM2-135M"}  # the same, short: the counts' model column
NOT_RUN = "not run"
BOOK_ADDS = "What the book adds: controls and results beyond the paper"  # the last group, after the paper's
SIGNIFICANT = 3  # digits of the numbers the table shows
PLACEHOLDERS = {"", "-", "nan", "see details"}  # an ``ours`` that says nothing: the short number comes from details
# a number with a decimal point (integers such as 69, 4096 or L0's 256 are counts and lengths: kept as written)
DECIMAL = re.compile(r"(?<![\w.])(\d+\.\d+(?:[eE][+-]?\d+)?)(?![\d.])")
# one model's value in a list ("RoPE (base) 0.2926 [0.2551, 0.3348]; PI (cpt-pi) 0.1659 [...]"): name, value, CI
ITEM = re.compile(r"([A-Za-z][^;\[\]]*?)\s+([+-]?\d*\.?\d+(?:[eE][+-]?\d+)?)\s*\[\s*([^,\]]+),\s*([^\]]+)\]")
# a share with its count ("hit rate 0.333 (1 of 3)"): the share, then k of n
SHARE = re.compile(r"(?<![\w.])(\d*\.?\d+)(\s*\((\d+) of (\d+)\))")
MEASURED = "measured: "  # a not-testable row's details: the reason, then what was measured anyway
# What the real model cannot test here: it is run training-free (no continual pretraining), so a claim about
# continually pretrained models says nothing about it. Declared per chapter template (every claim of the page)
# and per claim order; "not testable" with the reason in that model's cell and counts (:func:`with_scope`).
TRAINING_FREE = "smollm2"
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
LEGEND = {"replicated": "the paper's effect holds by the row's rule (the 95% CIs separate)",
          "partly": "a significant part holds, another does not",
          "not replicated": "the effect is absent or reversed (CIs on the other side)",
          "inconclusive": "the CI includes both the effect and its absence",
          "not testable": "the quantity could not be measured here; counted apart"}


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
    rows["details"] = ["" if pd.isna(text) else str(text) for text in rows["details"]]
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
    """``rows`` with a ``caveat`` column: for each premise that does not hold (``results.read_premises``),
    "precondition not met in the organism (<chapter>): <premise>: <numbers>" on the rows it lists."""
    rows = rows.copy()
    caveats = {i: [] for i in rows.index}
    for _, premise in premises.iterrows():
        if str(premise["holds"]).lower() in ("true", "1"):
            continue
        orders = {float(o) for o in str(premise["claims"]).split()}
        text = f"precondition not met in the organism ({premise['chapter']}): {premise['premise']}: {premise['numbers']}"
        for i, order in rows["order"].items():
            if float(order) in orders:
                caveats[i].append(text)
    rows["caveat"] = ["; ".join(caveats[i]) for i in rows.index]
    return rows


SCOPE_RULE = "out of the real model's scope"  # how a row added by with_scope states its rule


def out_of_scope(row, runs=()) -> str:
    """Why the real model (:data:`TRAINING_FREE`) cannot test this claim here, or "": its page's template is in
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
    answered = set(rows.loc[rows["model"] == TRAINING_FREE, "order"].astype(float))
    added = []
    for order, claim in rows.groupby("order", sort=False):
        reason = out_of_scope(claim.iloc[0], runs)
        if reason and float(order) not in answered:
            added.append(claim.iloc[0].to_dict() | {
                "model": TRAINING_FREE, "verdict": "not testable", "ours": NEEDS_CPT, "details": reason,
                "ci_low": float("nan"), "ci_high": float("nan"), "caveat": "",
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


def items(text) -> list[tuple[str, float, float, float]]:
    """The (name, value, low, high) of each model a result lists with its CI, in order: the first measure (before
    any "(first = ..." or " | "), each of its "; "-separated parts one model ("RoPE (base) 0.2926 [0.2551, 0.3348]",
    the first after the measure's "label: "); [] unless every part is one and there are two or more. The first is
    the one the claim singles out (e.g. plain RoPE)."""
    parts = str(text).split(" (first =")[0].split(" | ")[0].split(";")
    found = [ITEM.fullmatch(part.strip()) for part in parts if part.strip()]
    if len(found) < 2 or not all(found):
        return []
    return [(m.group(1).rsplit(": ", 1)[-1].strip(), float(m.group(2)), float(m.group(3)), float(m.group(4)))
            for m in found]


def _listed(text: str) -> str | None:
    """A result listing models with CIs, shortened to the one the claim singles out (the first) and the other
    closest to it in value, both named, after the first word of the measure's label if it has one ("gap to the
    original L0 pattern (Fig. 2): RoPE ..." -> "gap: RoPE (base) 0.293 [0.255, 0.335] vs closest PI (cpt-pi)
    0.166 [0.141, 0.211]": the comparison the verdict rests on). None if ``text`` lists fewer than two."""
    measure = text.split(" | ")[0]
    found = items(measure)
    if not found:
        return None
    first, others = found[0], found[1:]
    closest = min(others, key=lambda item: abs(item[1] - first[1]))
    label = ITEM.fullmatch(measure.split(";")[0].strip()).group(1)  # "measure: name" of the first part
    prefix = label[: len(label) - len(first[0])].strip().split(" ")[0].rstrip(":")  # the measure's first word
    shown = [f"{name} {_significant(v)} [{_significant(lo)}, {_significant(hi)}]" for name, v, lo, hi in (first, closest)]
    return (prefix + ": " if prefix else "") + f"{shown[0]} vs closest {shown[1]}"


def _shares(text: str) -> str:
    """Each share given with its count ("hit rate 0.333 (1 of 3)") with its 95% Wilson interval after it
    ("hit rate 0.333 [0.0615, 0.792] (1 of 3)"), from the count; other numbers as written."""
    def with_ci(match):
        share, k, n = float(match.group(1)), int(match.group(3)), int(match.group(4))
        if not n or abs(share - k / n) > 0.006:  # not the share of its count (as rounded): kept as written
            return match.group(0)
        estimate = proportion_interval(k, n)
        return f"{_significant(share)} [{_significant(estimate.low)}, {_significant(estimate.high)}]{match.group(2)}"
    return SHARE.sub(with_ci, text)


def short_number(row) -> str:
    """One short number with its CI at 3 significant digits, never cut (a clause is whole or absent; the rest is
    in the unfolded part):

    - ``ours`` a number: it, with the row's CI;
    - ``ours`` listing models with CIs (finding 1's attention): the model the claim singles out and the one
      closest to it, both named (:func:`_listed`);
    - a "not testable" row whose ``ours`` is text: that text whole (its reason);
    - ``ours`` NaN (whatever the verdict): as if it said nothing, from ``details`` below;
    - else the first clause (up to ";") of ``ours`` (of ``details`` where ``ours`` says nothing: what was
      measured, after "measured: ", and its first part up to ","), its CI after its first number inside the
      CI, a share given with its count ("0.333 (1 of 3)") with its Wilson interval.
    """
    ci = _ci(row)
    try:
        value = float(row["ours"])
        if not math.isnan(value):  # NaN: no single number was measured; the details say why, below
            return _significant(value) + ci
    except (TypeError, ValueError):
        pass
    text = str(row["ours"]).strip()
    text = "-" if text.lower() == "nan" else text
    listed = _listed(text)
    if listed:
        return listed
    if row.get("verdict") == "not testable" and text.lower() not in PLACEHOLDERS:
        return round_numbers(text)
    if text.lower() in PLACEHOLDERS and str(row["details"]).strip():
        text = str(row["details"]).strip()
        if MEASURED in text:  # a not-testable row's measurement: its first part
            text = re.split(r";\s*", text.split(MEASURED, 1)[1])[0].split(", ")[0]
    first = _shares(round_numbers(re.split(r";\s*", text)[0].strip()))
    if not ci or "[" in first:
        return first
    low, high = float(row["ci_low"]), float(row["ci_high"])
    for match in re.finditer(r"[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", first):
        if low <= float(match.group(0)) <= high:
            return first[: match.end()] + ci + first[match.end():]
    return first + ci


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
        "caveat": rows["caveat"].fillna("").astype(str) if "caveat" in rows else "",
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


def _unfolded(claim: pd.DataFrame) -> str:
    """Every model's full result and details, never cut."""
    lines = []
    for _, row in claim.iterrows():
        label = html.escape(MODELS[row["model"]])
        lines.append(f"<p><b>{label}</b>: {badge(row['verdict'])} {html.escape(row['ours'])}</p>")
        if row["details"]:
            lines.append(f"<p><b>details</b>: {html.escape(row['details'])}</p>")
    return "".join(lines)


def _claim_cell(claim: pd.DataFrame) -> str:
    """The claim as a ``<details>`` summary; unfolded: its criterion, then every model's result in full with
    its sub-statistics (issue 28: the table's height goes to the claims). A caveat stays visible."""
    row = claim.iloc[0]
    kind = "" if row["kind"] == "paper" else f' <span class="glance-kind">{html.escape(row["kind"])}</span>'
    criterion = f'<div class="glance-criterion"><b>criterion</b>: {html.escape(row["rule"])}</div>'
    caveats = "; ".join(dict.fromkeys(c for c in claim["caveat"] if c))
    caveat = f'<div class="glance-caveat"><b>caveat</b>: {html.escape(caveats)}</div>' if caveats else ""
    summary = f"<summary>{html.escape(row['claim'])}{kind}</summary>"
    return f"<details>{summary}{criterion}{_unfolded(claim)}</details>{caveat}"


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
    real = [m for m in MODELS if m != ORGANISM]
    own = {m: (chapter_pages(table["chapter"], runs, m), chapter_sections(table["chapter"], runs, model=m))
           for m in real}
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
    lines.append("</tbody></table>")
    return "".join(lines)
