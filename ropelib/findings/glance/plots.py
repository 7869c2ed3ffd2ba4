"""The figure of the "Results at a glance" page: every graded claim on one scale, its equivalence band drawn.

Each claim's estimand has its own units (an AUROC, nats, a pass-rate difference, a log ratio), so
the figure puts every row on the registry's common scale, read from the row's structured columns
(``estimate``, ``ci_low``, ``ci_high``, ``null``, ``sesoi``, ``direction``: no number is parsed out
of prose):

    z = direction * (value - null) / sesoi        (direction 0: (value - null) / sesoi)

so 0 is the null, the grey band [-1, 1] is null +- sesoi (an effect smaller than the smallest of
interest), and the claimed side is to the right. A row is replicated when its whole bar lies right
of 0; not replicated when it lies inside the band or left of 0 (for a claim of no effect,
direction 0: replicated inside the band). Each model's estimate has its marker (the organism a
dot, a real model a square), coloured by its verdict (``glance.VERDICT_COLOURS``). Rows without
an interval (not testable, or too few units to have one) are listed in the table, not plotted.

Not here: reading or counting the rows (``glance.table``), the registry (``findings.claims``).
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ropelib.findings.glance.table import MODELS, VERDICT_COLOURS, normalise

MODEL_MARKERS = {"organism": "o"}  # any real model: a square
REAL_MARKER = "s"
MODEL_OFFSET = 0.18  # vertical offset between models on one claim's line
LABEL_WIDTH = 84  # characters per line of a claim's label (wrapped, never cut)
LINE_INCHES = 0.22
TICKS = (-100, -30, -10, -3, -1, 0, 1, 3, 10, 30, 100)  # in sesoi units; the axis is linear within +-2
X_LABEL = ("effect in units of the claim's smallest effect of interest: direction x (estimate - null) / sesoi\n"
           "(the claimed side to the right)")


def standardised(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with a finite estimate and interval, with ``z``, ``z_low``, ``z_high`` (module docstring)."""
    rows = normalise(rows)
    numbers = rows[["estimate", "ci_low", "ci_high", "null", "sesoi", "direction"]].apply(pd.to_numeric, errors="coerce")
    keep = numbers.notna().all(axis=1) & (numbers["sesoi"] > 0)
    rows, numbers = rows[keep].copy(), numbers[keep]
    sign = numbers["direction"].where(numbers["direction"] != 0, 1.0)
    ends = [sign * (numbers[c] - numbers["null"]) / numbers["sesoi"] for c in ("estimate", "ci_low", "ci_high")]
    rows["z"], low, high = ends
    rows["z_low"], rows["z_high"] = np.minimum(low, high), np.maximum(low, high)
    rows["label"] = [textwrap.fill(f"{float(o):g}  {c}", LABEL_WIDTH) for o, c in zip(rows["order"], rows["claim"])]
    return rows.reset_index(drop=True)


def forest_plot(rows: pd.DataFrame):
    """The figure, or None when no row has an interval to plot."""
    points = standardised(rows)
    if points.empty:
        return None
    labels = list(dict.fromkeys(points.sort_values("order", kind="stable")["label"]))
    # a claim's lines plus one line of space; 11 inches wide, so the page shows it a little smaller than drawn
    height = sum(label.count("\n") + 1 for label in labels) * LINE_INCHES + 1.6
    figure, ax = plt.subplots(figsize=(11, height), layout="constrained")
    ax.axvspan(-1, 1, color="0.9", zorder=0)
    ax.axvline(0, color="0.4", linestyle=":", linewidth=1)
    models = list(dict.fromkeys(points["model"]))
    for y, label in enumerate(labels):
        for i, (_, row) in enumerate(points[points["label"] == label].iterrows()):
            offset = (models.index(row["model"]) - (len(models) - 1) / 2) * MODEL_OFFSET
            colour = VERDICT_COLOURS[row["verdict"]]
            ax.plot([row["z_low"], row["z_high"]], [y + offset] * 2, color=colour, linewidth=2)
            ax.plot(row["z"], y + offset, marker=MODEL_MARKERS.get(row["model"], REAL_MARKER), color=colour,
                    markersize=6, linestyle="none")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("symlog", linthresh=2, linscale=1.5)
    reach = max(2.0, float(np.nanmax(np.abs(points[["z_low", "z_high"]].to_numpy()))))
    ticks = [t for t in TICKS if abs(t) <= reach * 1.2]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_xlim(-reach * 1.3, reach * 1.3)
    ax.set_xlabel(X_LABEL, fontsize=9)
    ax.set_title("Every graded claim with its 95% CI, on the registry's scale (grey band: null +- sesoi);\n"
                 "a claim of several parts shows the part that decides it", fontsize=10)
    handles = [Line2D([], [], marker="o", color=VERDICT_COLOURS[v], label=v)
               for v in VERDICT_COLOURS if v in set(points["verdict"])]
    handles += [Line2D([], [], marker=MODEL_MARKERS.get(m, REAL_MARKER), linestyle="none", color="0.3",
                       label=MODELS.get(m, m)) for m in models]
    handles.append(Patch(color="0.9", label="null +- sesoi (smaller than the smallest effect of interest)"))
    figure.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False, fontsize=8)
    return figure
