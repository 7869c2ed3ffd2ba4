"""The figure of the "Results at a glance" page: every claim with a number, one small panel per claim family.

A claim family is the quantity its number measures (:data:`FAMILIES`: an AUROC, a needle pass-rate
difference, a difference in nats, else the row's own units); the claims of one family share their
panel's x scale, labelled with that quantity, with its null (chance, no difference) dotted. Each
claim is one line of its panel: each model's estimate (:data:`MODEL_MARKERS`: the organism a dot,
the real model a square) with its 95% CI (bar), coloured by its verdict (``glance.VERDICT_COLOURS``).
A claim whose result lists several models with CIs (finding 1's attention: "RoPE (base) 0.29 [0.26,
0.33]; PI ...") shows the one it singles out, the first, as the estimate and the others in grey on
its line (``table.items``). A claim's label is its number and its words, wrapped, never cut.

Two panels of their own:
  ratio   the claims whose paper value is a number (:data:`RATIO`): ours, its CI and the others divided
          by the paper's value, on one scale, a line at 1 (the paper's value, marked on every line)
  limits  the extrapolation limits (:func:`limits`: finding 1's perplexity, "4x-16x" in multiples of L0,
          no CI but an interval between the limits at the two CI ends) on a log axis, one line per
          model a claim lists, the paper's limit (open diamond) where its row gives one ("about 15x L0")

Not here: reading or counting the rows (``glance.table``); the paper's values that its rows give by
eye or as orderings in units of their own ("RoPE 2.57 > PI 2.29"): they are in the table, not plotted.
"""

from __future__ import annotations

import re
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ropelib.findings.glance.table import MODELS, VERDICT_COLOURS, items, normalise

# (family, pattern searched in ours, then the claim, then the rule; x label; null or None), first match wins
FAMILIES = (
    ("AUROC", r"AUROC", "AUROC (0.5: chance)", 0.5),
    ("pass rate", r"pass[ -]rate|needles", "needle pass-rate difference (0: none)", 0.0),
    ("nats", r"\bnats\b", "difference in nats: entropy slope or loss (0: none)", 0.0),
    ("gap", r"\bgap\b", "attention gap to the original model at L0 (mean |log10| ratio; 0: the same)", 0.0),
    ("JS", r"\bJS\b", "JS divergence of attention by distance (bits; 0: the same)", 0.0),
)
OTHER = ("other", "each claim's own units (see its row)", None)
# a claim whose paper value is a number: ours, its CI and the others divided by it, on one scale for all such claims
RATIO = ("ratio", "ours / the paper's value (1: the paper's value)", 1.0)
# an extrapolation limit in multiples of L0, as the perplexity rules print it: "4x", "4x-16x", ">= 2x-32x"
LIMIT = re.compile(r"^(?P<name>.*?)\s*(?P<censored>>=\s*)?(?P<low>\d+(?:\.\d+)?)x(?:-(?P<high>\d+(?:\.\d+)?)x)?"
                   r"(?:\s+L0)?$")
# the paper's limits as its row states them: "PI, YaRN about 15x L0; NTK about 32x L0", "about 1x L0 (4K)"
PAPER_LIMIT = re.compile(r"(?:(?P<names>[A-Za-z][\w ,]*?)\s+)?about\s+(?P<x>\d+(?:\.\d+)?)x\s*L0")
VARIANT_LINES = 0.8  # height of a listed model's line in the limits panel, in lines of a label
LIMITS_LABEL = "extrapolation limit, multiples of L0 (log scale; 1x: the pretrained length)"
MODEL_MARKERS = {"organism": "o", "smollm2": "s"}
MODEL_OFFSET = 0.18  # vertical offset between models on one claim's line
LABEL_WIDTH = 72  # characters per line of a claim's label (wrapped, never cut)
LINE_INCHES = 0.2  # height of one line of a claim's label
PANEL_INCHES = 0.75  # each panel's x axis and its label
LEGEND_INCHES = 0.9
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.])")


def _number_in_ci(text, low: float, high: float) -> float:
    """The first number of ``text`` inside [low, high] (the number the row's CI is about), else NaN."""
    for match in NUMBER.finditer(str(text)):
        if low <= float(match.group(0)) <= high:
            return float(match.group(0))
    return float("nan")


def family(row) -> tuple[str, str, float | None]:
    """The row's claim family: (name, x label, null) of :data:`FAMILIES`, searched in ours, claim, rule."""
    for text in (row["ours"], row["claim"], row["rule"]):
        for name, pattern, label, null in FAMILIES:
            if re.search(pattern, str(text)):
                return name, label, null
    return OTHER[0], OTHER[1], OTHER[2]


def plottable(rows: pd.DataFrame) -> pd.DataFrame:
    """The claims with a number, per model: order, model, label, family, ours, ci_low, ci_high, paper, verdict.
    A claim whose paper value is a number (not 0) is in the ratio family: ours, CI and others divided by it,
    paper 1; otherwise paper is NaN.

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
    paper = pd.to_numeric(rows["paper"], errors="coerce")
    scale = paper.where(paper.notna() & (paper != 0))  # a claim with a paper value: everything / it
    ratio = scale.notna()
    divisor = scale.fillna(1.0)
    ours, low, high = ours / divisor, low / divisor, high / divisor
    low, high = low.where(divisor > 0, high), high.where(divisor > 0, low)  # a negative paper value flips the CI
    others = [[(name, v / d, *sorted((lo / d, hi / d))) for name, v, lo, hi in found[1:]]
              for found, d in zip(listed, divisor)]
    families = [RATIO if r else family(row) for r, (_, row) in zip(ratio, rows.iterrows())]
    rows = rows.assign(ours=ours, ci_low=low, ci_high=high, paper=paper.where(~ratio, 1.0),
                       family=[f[0] for f in families], axis_label=[f[-2] for f in families],
                       null=[f[-1] for f in families], others=others,
                       first=[found[0][0] if found else "" for found in listed])[ours.notna().to_numpy()]
    labels = [f"{float(o):g}  " + textwrap.fill(str(c), LABEL_WIDTH) + (f"\n(dot: {f}; grey: the others)" if f else "")
              for o, c, f in zip(rows["order"], rows["claim"], rows["first"])]
    return rows.assign(label=labels)[["order", "model", "label", "family", "axis_label", "null", "ours", "ci_low",
                                      "ci_high", "paper", "verdict", "others"]]


def _paper_limits(text) -> dict[str, float]:
    """The paper's limits in its row's words, name (lower case; "" for the claim's own) -> multiples of L0."""
    found = {}
    for match in PAPER_LIMIT.finditer(str(text)):
        names = [n.strip().lower() for n in (match.group("names") or "").split(",") if n.strip()] or [""]
        found.update({name: float(match.group("x")) for name in names})
    return found


def limits(rows: pd.DataFrame) -> pd.DataFrame:
    """The claims whose result is a list of extrapolation limits (every part of ``ours`` a limit, :data:`LIMIT`), one
    row per claim, model and listed model: order, model, variant, low, high (the limits at the two CI ends, equal
    when determined), censored (the high end at the longest length evaluated), paper (the paper's limit for that
    variant, by its first word, or the claim's own, else NaN), verdict, label. A "none" limit is not plotted."""
    rows = normalise(rows)
    found = []
    for _, row in rows.iterrows():
        parts = [p.strip() for p in re.split(r"[;,]\s*", str(row["ours"])) if p.strip()]
        matches = [LIMIT.match(p) for p in parts]
        if not parts or not all(matches):
            continue
        paper = _paper_limits(row["paper"])
        for match in matches:
            variant = "" if match.group("name") in ("", "limit") else match.group("name")
            first = variant.split(" ")[0].lower()
            low = float(match.group("low"))
            found.append({"order": float(row["order"]), "model": row["model"], "variant": variant, "low": low,
                          "high": float(match.group("high") or low), "censored": bool(match.group("censored")),
                          "paper": paper.get(first, paper.get("", np.nan)), "verdict": row["verdict"],
                          "claim": row["claim"]})
    frame = pd.DataFrame(found, columns=["order", "model", "variant", "low", "high", "censored", "paper", "verdict",
                                         "claim"])
    # a listed model whose limit an earlier claim already shows is not drawn again: its claim says where it is
    key = ["model", "variant", "low", "high", "censored"]
    repeated = frame.duplicated(key) & (frame["variant"] != "")
    shown_in = {o: sorted({f"{e:g}" for e in frame.loc[~repeated].merge(frame.loc[repeated & (frame["order"] == o),
                                                                                 key], on=key)["order"]})
                for o in frame.loc[repeated, "order"].unique()}
    labels = [f"{o:g}  " + textwrap.fill(str(c) + (f" (the others: as drawn for {', '.join(shown_in[o])})"
                                                   if o in shown_in else ""), LABEL_WIDTH)
              for o, c in zip(frame["order"], frame["claim"])]
    return frame.assign(label=labels).drop(columns="claim")[~repeated.to_numpy()].reset_index(drop=True)


def _slots(points: pd.DataFrame) -> list[tuple[float, str | None, str, float]]:
    """The limits panel's lines, top down: (order, variant or None for a claim's own line, label, height in
    lines). A claim listing named models gets a line of its words, then one line per model, indented."""
    slots = []
    for order, claim in points.groupby("order", sort=True):
        variants = list(dict.fromkeys(claim["variant"]))
        label = claim["label"].iloc[0]
        if variants == [""]:
            slots.append((order, "", label, label.count("\n") + 1.0))
            continue
        slots.append((order, None, label, label.count("\n") + 1.0))
        slots += [(order, v, f"{v}    ", VARIANT_LINES) for v in variants]
    return slots


def _limits_panel(ax, points: pd.DataFrame) -> None:
    """The extrapolation limits on one log axis: per listed model its [conservative, optimistic] limit (a bar, or
    a point where the two agree; an arrow where the optimistic end is censored), the paper's limit (open diamond),
    the pretrained length dotted; a line between claims."""
    slots = _slots(points)
    tops = np.cumsum([0.0] + [height for *_, height in slots])
    centres = {(order, variant): -(top + height / 2) for (order, variant, _, height), top in zip(slots, tops)}
    models = list(MODELS)
    for _, point in points.iterrows():
        line = centres[(point["order"], point["variant"])]
        y = line - MODEL_OFFSET * (models.index(point["model"]) - (len(models) - 1) / 2)
        colour = VERDICT_COLOURS[point["verdict"]]
        ax.hlines(y, point["low"], point["high"], color=colour, linewidth=3, alpha=0.8)
        ax.plot([point["low"], point["high"]], [y, y], MODEL_MARKERS[point["model"]], color=colour, markersize=6,
                zorder=3)
        if point["censored"]:
            ax.plot(point["high"] * 1.25, y, ">", color=colour, markersize=7, zorder=3)
        if pd.notna(point["paper"]):
            ax.plot(point["paper"], line, "D", markerfacecolor="none", markeredgecolor="black", markersize=8, zorder=4)
    for (order, *_), top in zip(slots[1:], tops[1:]):
        if order != slots[list(tops).index(top) - 1][0]:
            ax.axhline(-top, color="0.8", linewidth=0.8)
    values = points[["low", "high", "paper"]].to_numpy(dtype=float).ravel()
    low, high = float(np.nanmin(np.append(values, 1.0))), float(np.nanmax(values))
    ax.set_xscale("log", base=2)
    ax.set_xlim(low / 1.6, high * 1.8)
    ticks = [2.0 ** k for k in range(int(np.floor(np.log2(low / 1.6))) + 1, int(np.ceil(np.log2(high * 1.8))))]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.axvline(1.0, color="0.5", linestyle=":", linewidth=1)
    ax.set_ylim(-tops[-1], 0)
    ax.set_yticks([centres[(order, variant)] for order, variant, *_ in slots], [label for _, _, label, _ in slots],
                  fontsize=9)
    for tick, (_, variant, _, _) in zip(ax.get_yticklabels(), slots):
        tick.set_fontsize(8 if variant else 9)
    ax.set_xlabel(LIMITS_LABEL, fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="0.92")
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)


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
    if "censored" in points and points["censored"].fillna(False).astype(bool).any():
        handles.append(Line2D([], [], marker=">", linestyle="none", color="0.3",
                              label="limit at the longest length evaluated (at least)"))
    if points["paper"].notna().any():
        handles.append(Line2D([], [], marker="D", linestyle="none", markerfacecolor="none", markeredgecolor="black",
                              label="paper's value"))
    figure.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 4), frameon=False, fontsize=9,
                  title="each claim with a number: the estimate with its 95% CI, coloured by its verdict; "
                        "one panel per quantity, its claims on one scale", title_fontsize=10)


def _height(labels) -> float:
    return sum(label.count("\n") + 1.5 for label in labels) * LINE_INCHES + PANEL_INCHES


def forest_plot(rows: pd.DataFrame):
    """The figure (None when no claim has a number or a limit): one panel per family, and the extrapolation limits
    (:func:`limits`) in their own, in the order of their first claims (finding 1's first)."""
    points, bounds = plottable(rows), limits(rows)
    if points.empty and bounds.empty:
        return None
    names = points.groupby("family")["order"].min()
    if not bounds.empty:
        names[LIMIT.pattern] = bounds["order"].min()
    panels = []
    for name in names.sort_values().index:  # in reading order: finding 1 first
        if name == LIMIT.pattern:
            lines = sum(height for *_, height in _slots(bounds))
            panels.append((_limits_panel, bounds, lines * LINE_INCHES * 1.2 + PANEL_INCHES))
        else:
            panel = points[points["family"] == name]
            panels.append((_panel, panel, _height(panel.drop_duplicates("order")["label"])))
    heights = [height for _, _, height in panels]
    figure, axes = plt.subplots(len(panels), 1, figsize=(10, sum(heights) + LEGEND_INCHES), squeeze=False,
                                layout="constrained", gridspec_kw={"height_ratios": heights})
    for ax, (draw, data, _) in zip(axes[:, 0], panels):
        draw(ax, data)
    _legend(figure, pd.concat([points[["verdict", "model", "paper"]], bounds[["verdict", "model", "paper", "censored"]]]))
    return figure
