"""The "Results at a glance" page: every chapter's glance rows, as one table.

Chapters write their rows with ``ropelib.results.write_glance`` (``data/results/glance-*.csv``:
claim, the paper's number, ours with its CI, a verdict computed by the rule in the row);
this module only reads, orders and formats them, so the page shows whatever findings have
been run so far:

  VERDICT_RULES       what each verdict means, in general (each row states its exact rule)
  glance_table(rows)  one row per claim: finding, claim, paper, ours [CI], verdict, rule, chapter
  verdict_counts(rows)  how many claims got each verdict
  to_markdown(table)  a Markdown table (full text, no truncation) for the page

Not here: any verdict rule (each chapter's findings module) or reading files other than
through ``ropelib.results``.
"""

from __future__ import annotations

import math

import pandas as pd

from ropelib.results import VERDICTS

VERDICT_RULES = {
    "replicated": "the organism shows the paper's effect, by the row's rule (typically: the ordering or "
                  "threshold holds and the 95% CIs separate)",
    "partly": "the effect points the paper's way but is weaker than the rule asks (e.g. point estimates "
              "ordered, CIs overlapping) or only some of the claim's parts hold",
    "not replicated": "the organism does not show the effect, or shows the opposite",
}
COLUMNS = ["finding", "claim", "paper", "ours", "verdict", "rule", "chapter"]


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
    """One row per claim, in the rows' ``order``; unknown verdicts raise (they are never typed)."""
    unknown = sorted(set(rows["verdict"]) - set(VERDICTS))
    if unknown:
        raise ValueError(f"glance rows with unknown verdict(s) {unknown}; expected one of {VERDICTS}")
    rows = rows.sort_values("order", kind="stable")
    return pd.DataFrame({
        "finding": rows["finding"].astype(str),
        "claim": rows["claim"].astype(str),
        "paper": rows["paper"].map(_number),
        "ours": [_ours(row) for _, row in rows.iterrows()],
        "verdict": rows["verdict"],
        "rule": rows["rule"].astype(str),
        "chapter": rows["chapter"].astype(str),
    }, columns=COLUMNS).reset_index(drop=True)


def verdict_counts(rows: pd.DataFrame) -> pd.Series:
    """Number of claims per verdict, in the order replicated, partly, not replicated."""
    return rows["verdict"].value_counts().reindex(list(VERDICTS), fill_value=0).rename("claims")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pd.DataFrame, bold: str = "verdict") -> str:
    """A Markdown table of ``table`` (every column, full text), the ``bold`` column in bold."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for _, row in table.iterrows():
        cells = [f"**{_cell(v)}**" if c == bold else _cell(v) for c, v in row.items()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
