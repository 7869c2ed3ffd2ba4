"""The figure of the "Results at a glance" page: every claim with a number, one small panel per claim family.

A claim family is the quantity its number measures (:data:`FAMILIES`: an AUROC, a needle pass-rate
difference, a difference in nats, else the row's own units); the claims of one family share their
panel's x scale, labelled with that quantity, with its null (chance, no difference) dotted. Each
claim is one line of its panel: each model's estimate (:data:`MODEL_MARKERS`: the organism a dot,
the real model a square) with its 95% CI (bar), coloured by its verdict (``glance.VERDICT_COLOURS``),
and the paper's value (open diamond) where the paper gives a number. A claim whose result lists
several models with CIs (finding 1's attention: "RoPE (base) 0.29 [0.26, 0.33]; PI ...") shows the
one it singles out, the first, as the estimate and the others in grey on its line (:func:`items`). A claim's label is its number
and its words, wrapped, never cut.

Not here: reading or counting the rows (``glance.table``); a ratio to the paper's value (the paper
gives numbers for none of the plotted claims: its values are by eye).
"""

from __future__ import annotations

import re
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ropelib.findings.glance.table import MODELS, VERDICT_COLOURS, normalise

# (family, pattern searched in ours, then the claim, then the rule; x label; null or None), first match wins
FAMILIES = (
    ("AUROC", r"AUROC", "AUROC (0.5: chance)", 0.5),
    ("pass rate", r"pass[ -]rate|needles", "needle pass-rate difference (0: none)", 0.0),
    ("nats", r"\bnats\b", "difference in nats: entropy slope or loss (0: none)", 0.0),
    ("gap", r"\bgap\b", "attention gap to the original model at L0 (mean |log10| ratio; 0: the same)", 0.0),
    ("JS", r"\bJS\b", "JS divergence of attention by distance (bits; 0: the same)", 0.0),
)
OTHER = ("other", "each claim's own units (see its row)", None)
MODEL_MARKERS = {"organism": "o", "smollm2": "s"}
MODEL_OFFSET = 0.18  # vertical offset between models on one claim's line
LABEL_WIDTH = 72  # characters per line of a claim's label (wrapped, never cut)
LINE_INCHES = 0.2  # height of one line of a claim's label
PANEL_INCHES = 0.75  # each panel's x axis and its label
LEGEND_INCHES = 0.9
# one model's value in a list ("RoPE (base) 0.2926 [0.2551, 0.3348]; PI (cpt-pi) 0.1659 [...]"): name, value, CI
ITEM = re.compile(r"([A-Za-z][^;\[\]]*?)\s+([+-]?\d*\.?\d+(?:[eE][+-]?\d+)?)\s*\[\s*([^,\]]+),\s*([^\]]+)\]")
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.])")


def _number_in_ci(text, low: float, high: float) -> float:
    """The first number of ``text`` inside [low, high] (the number the row's CI is about), else NaN."""
    for match in NUMBER.finditer(str(text)):
        if low <= float(match.group(0)) <= high:
            return float(match.group(0))
    return float("nan")


def items(text) -> list[tuple[str, float, float, float]]:
    """The (name, value, low, high) of each model a result lists with its CI (before any "(first = ..."), in
    order; [] when it lists fewer than two. The first is the one the claim singles out (e.g. plain RoPE)."""
    found = [(name.strip(), float(v), float(lo), float(hi))
             for name, v, lo, hi in ITEM.findall(str(text).split(" (first =")[0])]
    return found if len(found) >= 2 else []


def family(row) -> tuple[str, str, float | None]:
    """The row's claim family: (name, x label, null) of :data:`FAMILIES`, searched in ours, claim, rule."""
    for text in (row["ours"], row["claim"], row["rule"]):
        for name, pattern, label, null in FAMILIES:
            if re.search(pattern, str(text)):
                return name, label, null
    return OTHER[0], OTHER[1], OTHER[2]


def plottable(rows: pd.DataFrame) -> pd.DataFrame:
    """The claims with a number, per model: order, model, label, family, ours, ci_low, ci_high, paper (NaN if
    not a number), verdict.

    ``ours`` is a number, or a text holding the number its CI is about ("+0.083 pass rate" with CI
    [0.025, 0.134]): a number in the text counts only when the row's CI contains it.
    """
    rows = normalise(rows)
    low = pd.to_numeric(rows["ci_low"], errors="coerce")
    high = pd.to_numeric(rows["ci_high"], errors="coerce")
    ours = pd.to_numeric(rows["ours"], errors="coerce")
    inside = pd.Series([_number_in_ci(t, lo, hi) for t, lo, hi in zip(rows["ours"], low, high)], index=rows.index)
    ours = ours.where(ours.notna(), inside)
    listed = [items(text) if pd.isna(value) else [] for text, value in zip(rows["ours"], ours)]
    first = pd.Series([found[0] if found else (None, np.nan, np.nan, np.nan) for found in listed], index=rows.index)
    ours = ours.where(ours.notna(), first.map(lambda f: f[1]))
    low = low.where(low.notna(), first.map(lambda f: f[2]))
    high = high.where(high.notna(), first.map(lambda f: f[3]))
    families = [family(row) for _, row in rows.iterrows()]
    rows = rows.assign(ours=ours, ci_low=low, ci_high=high, paper=pd.to_numeric(rows["paper"], errors="coerce"),
                       family=[f[0] for f in families], axis_label=[f[1] for f in families],
                       null=[f[2] for f in families], others=[found[1:] for found in listed],
                       first=[found[0][0] if found else "" for found in listed])[ours.notna().to_numpy()]
    labels = [f"{float(o):g}  " + textwrap.fill(str(c), LABEL_WIDTH) + (f"\n(dot: {f}; grey: the others)" if f else "")
              for o, c, f in zip(rows["order"], rows["claim"], rows["first"])]
    return rows.assign(label=labels)[["order", "model", "label", "family", "axis_label", "null", "ours", "ci_low",
                                      "ci_high", "paper", "verdict", "others"]]


def _limits(values: np.ndarray) -> tuple[float, float]:
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    pad = (high - low) * 0.12 or abs(high) * 0.1 or 1.0
    return low - pad, high + pad


def _panel(ax, points: pd.DataFrame) -> None:
    """One family's claims on one shared x scale: each model's estimate and CI, the paper's value, the null."""
    claims = list(dict.fromkeys(points["order"]))
    models = list(MODELS)
    for _, point in points.iterrows():
        y = -claims.index(point["order"]) - MODEL_OFFSET * (models.index(point["model"]) - (len(models) - 1) / 2)
        colour = VERDICT_COLOURS[point["verdict"]]
        if pd.notna(point["ci_low"]) and pd.notna(point["ci_high"]):
            ax.hlines(y, point["ci_low"], point["ci_high"], color=colour, linewidth=3, alpha=0.8)
        for _, value, other_low, other_high in point["others"]:
            ax.hlines(y, other_low, other_high, color="0.6", linewidth=1.5)
            ax.plot(value, y, "|", color="0.4", markersize=10)
        ax.plot(point["ours"], y, MODEL_MARKERS[point["model"]], color=colour, markersize=8, zorder=3)
        if pd.notna(point["paper"]):
            ax.plot(point["paper"], -claims.index(point["order"]), "D", markerfacecolor="none",
                    markeredgecolor="black", markersize=8, zorder=4)
    null = points["null"].iloc[0]
    values = points[["ours", "ci_low", "ci_high", "paper"]].to_numpy(dtype=float).ravel()
    values = np.append(values, [x for others in points["others"] for item in others for x in item[1:]])
    low, high = _limits(np.append(values, np.nan if null is None or pd.isna(null) else null))
    if null is not None and pd.notna(null):
        ax.axvline(null, color="0.5", linestyle=":", linewidth=1)
    ax.set_xlim(low, high)
    ax.set_ylim(-len(claims) + 0.5, 0.5)
    ax.set_yticks([-i for i in range(len(claims))],
                  [points.loc[points["order"] == o, "label"].iloc[0] for o in claims], fontsize=9)
    ax.set_xlabel(points["axis_label"].iloc[0], fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="0.92")
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)


def _legend(figure, points: pd.DataFrame) -> None:
    handles = [Line2D([], [], marker="o", linestyle="-", color=VERDICT_COLOURS[v], label=v)
               for v in VERDICT_COLOURS if v in set(points["verdict"])]
    handles += [Line2D([], [], marker=MODEL_MARKERS[m], linestyle="none", color="0.3", label=MODELS[m])
                for m in MODELS if m in set(points["model"])]
    if points["paper"].notna().any():
        handles.append(Line2D([], [], marker="D", linestyle="none", markerfacecolor="none", markeredgecolor="black",
                              label="paper's value"))
    figure.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 7), frameon=False, fontsize=9,
                  title="each claim with a number: the estimate with its 95% CI, coloured by its verdict; "
                        "one panel per quantity, its claims on one scale", title_fontsize=10)


def forest_plot(rows: pd.DataFrame):
    """The figure (None when no claim has a numeric ``ours``): one panel per family, in the order of their first
    claims (finding 1's first)."""
    points = plottable(rows)
    if points.empty:
        return None
    names = points.groupby("family")["order"].min().sort_values().index  # in reading order: finding 1 first
    panels = [points[points["family"] == name] for name in names]
    heights = [sum(label.count("\n") + 1.5 for label in p.drop_duplicates("order")["label"]) * LINE_INCHES
               + PANEL_INCHES for p in panels]
    figure, axes = plt.subplots(len(panels), 1, figsize=(10, sum(heights) + LEGEND_INCHES), squeeze=False,
                                layout="constrained", gridspec_kw={"height_ratios": heights})
    for ax, panel in zip(axes[:, 0], panels):
        _panel(ax, panel)
    _legend(figure, points)
    return figure
