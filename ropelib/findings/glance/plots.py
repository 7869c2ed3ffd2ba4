"""The forest plot of the "Results at a glance" page: every claim with a number, at a glance.

One row per claim whose ``ours`` is a number (or starts with the number its CI is about, see
:func:`plottable`): our value (dot) with its 95% CI (bar), the
paper's value (open diamond) where the paper gives a number, the verdict as the colour
(``glance.VERDICT_COLOURS``). The claims measure different things, so each row has its own
x scale; a dotted line marks zero where a row's scale includes it.

Not here: reading or counting the rows (``glance``).
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ropelib.findings.glance.table import VERDICT_COLOURS, normalise

LABEL_CHARACTERS = 52  # of the claim, after its number, on the left of its row
ROW_INCHES = 0.36  # height of one claim's row
LEADING_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.])")


def _leading_number(text) -> float:
    match = LEADING_NUMBER.match(str(text))
    return float(match.group(0)) if match else float("nan")


def plottable(rows: pd.DataFrame) -> pd.DataFrame:
    """The claims with a number: order, label, ours, ci_low, ci_high, paper (NaN if not a number), verdict.

    ``ours`` is a number, or a text that starts with the number its CI is about ("-0.99 nats (long -
    short), ..." with CI [-1.18, -0.80]): a leading number counts only when the row's CI contains it.
    """
    rows = normalise(rows)
    low = pd.to_numeric(rows["ci_low"], errors="coerce")
    high = pd.to_numeric(rows["ci_high"], errors="coerce")
    ours = pd.to_numeric(rows["ours"], errors="coerce")
    leading = rows["ours"].map(_leading_number)
    ours = ours.where(ours.notna(), leading.where((low <= leading) & (leading <= high)))
    rows = rows.assign(ours=ours, ci_low=low, ci_high=high,
                       paper=pd.to_numeric(rows["paper"], errors="coerce"))[ours.notna().to_numpy()]
    labels = [f"{float(o):g}  " + (c if len(c) <= LABEL_CHARACTERS else c[: LABEL_CHARACTERS - 1].rstrip() + "…")
              for o, c in zip(rows["order"], rows["claim"].astype(str))]
    return rows.assign(label=labels)[["order", "label", "ours", "ci_low", "ci_high", "paper", "verdict"]]


def _limits(values: np.ndarray) -> tuple[float, float]:
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    pad = (high - low) * 0.12 or abs(high) * 0.1 or 1.0
    return low - pad, high + pad


def forest_plot(rows: pd.DataFrame):
    """The figure (None when no claim has a numeric ``ours``)."""
    points = plottable(rows)
    if points.empty:
        return None
    figure, axes = plt.subplots(len(points), 1, figsize=(10, ROW_INCHES * len(points) + 0.8), squeeze=False,
                                layout="constrained")
    for ax, (_, row) in zip(axes[:, 0], points.iterrows()):
        colour = VERDICT_COLOURS[row["verdict"]]
        has_ci = pd.notna(row["ci_low"]) and pd.notna(row["ci_high"])
        if has_ci:
            ax.hlines(0, row["ci_low"], row["ci_high"], color=colour, linewidth=3, alpha=0.8)
        ax.plot(row["ours"], 0, "o", color=colour, markersize=9, zorder=3)
        if pd.notna(row["paper"]):
            ax.plot(row["paper"], 0, "D", markerfacecolor="none", markeredgecolor="black", markersize=8, zorder=4)
        low, high = _limits(np.array([row["ours"], row["ci_low"], row["ci_high"], row["paper"]], dtype=float))
        if low < 0 < high:
            ax.axvline(0, color="0.6", linestyle=":", linewidth=1)
        ax.set_xlim(low, high)
        ax.set_ylim(-1, 1)
        ax.set_yticks([])
        ax.set_ylabel(row["label"], rotation=0, ha="right", va="center", fontsize=10)
        ax.tick_params(axis="x", labelsize=8, length=2, pad=1)
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.grid(axis="x", color="0.92")
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
        shown = f"{row['ours']:.3g}" + (f" [{row['ci_low']:.3g}, {row['ci_high']:.3g}]" if has_ci else "")
        ax.text(1.01, 0.5, shown, transform=ax.transAxes, va="center", fontsize=9, color=colour)
    handles = [Line2D([], [], marker="o", linestyle="-", color=VERDICT_COLOURS[v], label=v)
               for v in VERDICT_COLOURS if v in set(points["verdict"])]
    if points["paper"].notna().any():
        handles.append(Line2D([], [], marker="D", linestyle="none", markerfacecolor="none", markeredgecolor="black",
                              label="paper's value"))
    figure.legend(handles=handles, loc="outside upper center", ncol=len(handles), frameon=False, fontsize=10,
                  title="each claim with a number: ours (dot) with its 95% CI (bar), coloured by verdict, "
                        "and the paper's value where it gives one; each row on its own scale",
                  title_fontsize=10)
    return figure
