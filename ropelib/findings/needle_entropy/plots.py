"""Figures of the chapter "Attention uncertainty and retrieval errors" (the paper's Fig. 4a-d).

  plot_heatmaps(cells, ...)        one heatmap per method: x = context length, y = needle depth,
                                   colour = pass rate (red fail -> green pass), each cell annotated
                                   with its mean answer entropy; L0 (dotted) and the CPT length (dashed)
  plot_entropy_by_outcome(trials)  trial entropy per length, passed vs failed, one panel per method:
                                   the within-length comparison the statistics test

Lengths are categorical columns, so a length marker is drawn at the boundary between the
columns at or below it and those above it. Not here: any statistic (``needle_entropy.analysis``).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def _boundary(lengths: list[int], length: int) -> float:
    """x of a vertical line between the columns <= ``length`` and those above it."""
    return float(sum(x <= length for x in lengths))


def _panels(n: int, width: float, height: float):
    columns = 2 if n == 4 else min(n, 3)
    rows = math.ceil(n / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False,
                                constrained_layout=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return figure, list(axes.flat[:n])


def _mark_lengths(ax, lengths: list[int], pretrained_length: int | None, cpt_length: int | None) -> None:
    if pretrained_length is not None:
        ax.axvline(_boundary(lengths, pretrained_length), color="black", linestyle=":", linewidth=1.5,
                   label=f"pretrained L0 = {pretrained_length}")
    if cpt_length is not None:
        ax.axvline(_boundary(lengths, cpt_length), color="black", linestyle="--", linewidth=1.5,
                   label=f"CPT length = {cpt_length}")


ENTROPY_NAMES = {"entropy": "mean attention entropy of the answer",
                 "entropy_first": "mean attention entropy of the first answer token",
                 "entropy_teacher": "mean teacher-forced attention entropy"}


def plot_heatmaps(cell_frame: pd.DataFrame, cpt_length: int | None, pretrained_length: int | None = None,
                  measure: str = "entropy"):
    """Fig. 4a-d: pass-rate heatmap per method over its own (length, depth) cells, annotated with the cells'
    mean ``measure`` (nats): the paper's all-token answer entropy by default, or ``entropy_first`` (before
    anything is generated). A method without a cell at some length of another leaves it blank."""
    methods = list(dict.fromkeys(cell_frame["method"]))
    figure, axes = _panels(len(methods), 6.5, 5.0)
    for i, (ax, method) in enumerate(zip(axes, methods)):
        rows = cell_frame[cell_frame["method"] == method]
        passed = rows.pivot(index="depth", columns="length", values="pass_rate")  # (depths, lengths)
        entropy = rows.pivot(index="depth", columns="length", values=measure)
        lengths = [int(x) for x in passed.columns]
        sns.heatmap(passed, ax=ax, vmin=0, vmax=1, cmap="RdYlGn", annot=entropy.to_numpy(), fmt=".1f",
                    annot_kws={"fontsize": 8}, linewidths=0.5, linecolor="white",
                    cbar=i == len(methods) - 1, cbar_kws={"label": "pass rate"},
                    xticklabels=lengths, yticklabels=[f"{d:g}" for d in passed.index])
        _mark_lengths(ax, lengths, pretrained_length, cpt_length)
        ax.set(xlabel="context length (tokens)", ylabel="needle depth (%)", title=method)
        ax.tick_params(axis="x", rotation=0)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=len(handles), fontsize=9)
    figure.suptitle(f"Fig. 4a-d: needle pass rate (colour) and {ENTROPY_NAMES[measure]} (nats, numbers)")
    return figure


def plot_entropy_by_outcome(trials: pd.DataFrame, cpt_length: int | None = None,
                            pretrained_length: int | None = None):
    """Answer entropy of every trial by length, passed vs failed (strip plot), one panel per method."""
    methods = list(dict.fromkeys(trials["method"]))
    figure, axes = _panels(len(methods), 6.0, 3.8)
    frame = trials.assign(outcome=np.where(trials["passed"], "passed", "failed"))
    lengths = sorted(int(x) for x in frame["length"].unique())
    for i, (ax, method) in enumerate(zip(axes, methods)):
        rows = frame[frame["method"] == method]
        sns.stripplot(data=rows, x="length", y="entropy", hue="outcome", hue_order=["passed", "failed"],
                      order=lengths, palette={"passed": "tab:green", "failed": "tab:red"}, dodge=True,
                      size=2.5, alpha=0.6, jitter=0.25, ax=ax, legend=i == 0)
        # categorical x: column j is centred at j, so boundaries sit half a column to the left
        for marker, style in ((pretrained_length, ":"), (cpt_length, "--")):
            if marker is not None:
                ax.axvline(_boundary(lengths, marker) - 0.5, color="black", linestyle=style, linewidth=1.2)
        ax.set(xlabel="context length (tokens)", ylabel="answer entropy (nats)", title=method)
    figure.suptitle("Answer entropy per trial: failed vs passed needles at each length")
    return figure
