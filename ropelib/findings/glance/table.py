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
  verdict_counts(rows)    claims per kind (paper / control / beyond) and verdict
  counts_html(counts)     the counts as two small tables: the paper's claims in replication words,
                          controls and results beyond the paper apart in their own; "not
                          testable" in a column apart
  verdict_rules_html()    what each verdict means, folded
  controls_html(rows)     what the controls show, one line each (verdict, ours), never folded
  (each row's ``chapter`` label -> its page: ``ropelib.publish.plan.chapter_pages``)
  glance_table(rows)      one row per claim as text (what the HTML table shows)
  claims_html(rows, runs) the compact table: #, claim (its criterion printed under it, details folded),
                          paper, ours, verdict badge, link to the chapter's page (its name;
                          its title on hover)
  VERDICT_COLOURS         one colour per verdict: the badges (book/_static/ropebook.css)
                          and the forest plot (``glance_plots``) use the same

Not here: any verdict rule (each chapter's findings module), the forest plot
(``ropelib.findings.glance.plots``), or reading files other than through ``ropelib.results``.
"""

from __future__ import annotations

import html
import math

import pandas as pd

from ropelib.publish.plan import chapter_pages
from ropelib.results import ALL_VERDICTS, GLANCE_COLUMNS, KINDS, OWN_VERDICTS, VERDICTS, worded

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
COLUMNS = ["order", "finding", "claim", "kind", "paper", "ours", "verdict", "chapter", "rule", "details", "caveat"]
SHORT_OURS = 70  # characters of ``ours`` shown in the table; the full text is under the claim


def normalise(rows: pd.DataFrame) -> pd.DataFrame:
    """Every glance column present, in ``order``; a missing kind is "paper", missing details "".

    Glance files written before ``kind`` and ``details`` existed are read as paper claims.
    Unknown verdicts or kinds raise: they are never typed by hand.
    """
    rows = rows.copy()
    for column in GLANCE_COLUMNS:
        if column not in rows:
            rows[column] = None
    rows["kind"] = rows["kind"].where(rows["kind"].notna() & (rows["kind"].astype(str) != ""), "paper")
    rows["details"] = ["" if pd.isna(text) else str(text) for text in rows["details"]]
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


def verdict_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Claims per kind (rows, in :data:`KINDS` order) and verdict (columns, in ``ALL_VERDICTS`` order)."""
    rows = normalise(rows)
    table = pd.crosstab(rows["kind"], rows["verdict"]) if len(rows) else pd.DataFrame()
    return table.reindex(index=list(KINDS), columns=list(ALL_VERDICTS), fill_value=0).fillna(0).astype(int)


def badge(verdict: str) -> str:
    """The verdict as a coloured badge (``span.verdict.verdict-<name>``, styled by ropebook.css)."""
    return f'<span class="verdict verdict-{verdict.replace(" ", "-")}">{html.escape(verdict)}</span>'


def controls_html(rows: pd.DataFrame) -> str:
    """What the controls show, plainly: one line per control row (its claim, verdict badge and ours)."""
    table = glance_table(rows)
    controls = table[table["kind"] == "control"]
    if controls.empty:
        return ""
    items = "".join(f"<li>{row['order']} {html.escape(row['claim'])}: {badge(row['verdict'])} "
                    f"{html.escape(row['ours'])}</li>" for _, row in controls.iterrows())
    return f'<div class="glance-controls"><p><b>What the controls show</b></p><ul>{items}</ul></div>'


def verdict_rules_html() -> str:
    """What each verdict means in general, folded in a ``<details>`` block (each row states its exact rule)."""
    items = "".join(f"<li>{badge(v)} {html.escape(meaning)}</li>" for v, meaning in VERDICT_RULES.items())
    return (f'<details class="glance-rules"><summary>What the verdicts mean</summary><ul>{items}</ul>'
            "<p>Each claim states its exact rule: click the claim.</p></details>")


def counts_html(counts: pd.DataFrame) -> str:
    """The counts as HTML tables (:data:`COUNT_TABLES`): the paper's claims in replication words, then
    controls and results beyond the paper in their own words; "not testable" in a column set apart."""
    lines = []
    for kinds, words in COUNT_TABLES:
        tested = [v for v in words if v != "not testable"]
        head = "".join(f"<th>{badge(v)}</th>" for v in tested)
        lines.append(f'<table class="glance-counts"><thead><tr><th>claims</th>{head}<th>tested</th>'
                     f'<th class="glance-untestable">{badge("not testable")}</th></tr></thead><tbody>')
        for kind in kinds:
            row = counts.loc[kind]
            cells = "".join(f"<td>{int(row[v])}</td>" for v in tested)
            lines.append(f"<tr><th>{html.escape(KIND_LABELS[kind])}</th>{cells}<td><b>{int(row[tested].sum())}</b>"
                         f'</td><td class="glance-untestable">{int(row["not testable"])}</td></tr>')
        lines.append("</tbody></table>")
    return "".join(lines)


def _number(x) -> str:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "nan" if math.isnan(value) else f"{value:.4g}"


def _ours(row) -> str:
    """``ours``, with ``[ci_low, ci_high]`` appended when the row has a CI."""
    text = _number(row["ours"])
    if pd.notna(row.get("ci_low")) and pd.notna(row.get("ci_high")):
        text += f" [{_number(row['ci_low'])}, {_number(row['ci_high'])}]"
    return text


def glance_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per claim, as text, in the rows' ``order`` (``ours`` with its CI, numbers at 4 digits)."""
    rows = normalise(rows)
    return pd.DataFrame({
        "order": rows["order"].map(lambda x: f"{float(x):g}"),
        "finding": rows["finding"].astype(str),
        "claim": rows["claim"].astype(str),
        "kind": rows["kind"].astype(str),
        "paper": rows["paper"].map(_number),
        "ours": [_ours(row) for _, row in rows.iterrows()],
        "verdict": rows["verdict"].astype(str),
        "chapter": rows["chapter"].astype(str),
        "rule": rows["rule"].astype(str),
        "details": rows["details"].astype(str),
        "caveat": rows["caveat"].fillna("").astype(str) if "caveat" in rows else "",
    }, columns=COLUMNS)


def _shorten(text: str, limit: int = SHORT_OURS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + " …"


def _claim_cell(row) -> str:
    """The claim as a ``<details>`` summary, its criterion printed under it (never folded away);
    unfolded: the sub-statistics and ours in full."""
    kind = "" if row["kind"] == "paper" else f' <span class="glance-kind">{html.escape(row["kind"])}</span>'
    folded = []
    if row["details"]:
        folded.append(f"<p><b>details</b>: {html.escape(row['details'])}</p>")
    if len(row["ours"]) > SHORT_OURS:
        folded.append(f"<p><b>ours</b>: {html.escape(row['ours'])}</p>")
    criterion = f'<div class="glance-criterion"><b>criterion</b>: {html.escape(row["rule"])}</div>'
    caveat = f'<div class="glance-caveat"><b>caveat</b>: {html.escape(row["caveat"])}</div>' if row["caveat"] else ""
    return (f"<details><summary>{html.escape(row['claim'])}{kind}</summary>{''.join(folded)}</details>"
            + caveat + criterion)


def claims_html(rows: pd.DataFrame, runs=()) -> str:
    """The compact table of every claim, grouped by finding; ``runs`` (book/runs.yml) for the chapter links."""
    table = glance_table(rows)
    pages = chapter_pages(table["chapter"], runs)
    lines = ['<table class="glance-claims"><thead><tr><th>#</th><th>claim and criterion <small>(click for '
             'details)</small></th><th>paper</th><th>ours</th><th>verdict</th><th>chapter</th></tr></thead><tbody>']
    finding = None
    for _, row in table.iterrows():
        if row["finding"] != finding:
            finding = row["finding"]
            lines.append(f'<tr class="glance-finding"><th colspan="6">{html.escape(finding)}</th></tr>')
        page, title = pages.get(row["chapter"], (None, None))
        link = (f'<a href="{page}.html" title="{html.escape(title)}">{html.escape(page)}</a>' if page
                else html.escape(row["chapter"]))
        lines.append(f'<tr class="glance-{row["kind"]}"><td>{row["order"]}</td><td>{_claim_cell(row)}</td>'
                     f"<td>{html.escape(row['paper'])}</td><td>{html.escape(_shorten(row['ours']))}</td>"
                     f"<td>{badge(row['verdict'])}</td><td>{link}</td></tr>")
    lines.append("</tbody></table>")
    return "".join(lines)
