"""The Fig. 2 panels of chapter "Attention patterns at and beyond the pretrained length".

One panel per model: attention per key (``Profiles.density``, mean over sequences) against
relative distance on log-log axes, one thin line per (layer, head), a thick line for the
mean over layers, heads and sequences, and the original model's mean at L0 overlaid
(dashed black). Distance d = query position - key position; the x axis is d + 1 so that
the query itself (d = 0) fits on a log axis, each bin drawn at the geometric middle of its
d + 1 range.

Not here: capturing or reducing attention (``attention``).
"""

from __future__ import annotations

import math
import warnings

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from ropelib.findings.attention_patterns.analysis import Capture, Profiles


def bin_centres(edges: np.ndarray) -> np.ndarray:
    """Geometric middle of each bin's d + 1 range: sqrt((e_b + 1) * e_{b+1}), shape (bins,)."""
    edges = np.asarray(edges, dtype=float)
    return np.sqrt((edges[:-1] + 1) * edges[1:])


def _mean_curve(profiles: Profiles) -> np.ndarray:
    with warnings.catch_warnings():  # an empty bin (no query sees that distance) stays NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(profiles.density, axis=(0, 1, 2))


def plot_profiles(capture: Capture, pretrained_length: int, cpt_length: int | None, columns: int = 3):
    """Fig. 2, ours: a grid of panels, one per model captured at ``capture.length``."""
    sns.set_theme(style="whitegrid", context="notebook")
    panels = list(capture.at_length.values())
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.3 * columns, 3.4 * rows), sharex=True, sharey=True,
                                constrained_layout=True, squeeze=False)
    reference = capture.reference_at_l0
    reference_x, reference_y = bin_centres(reference.edges), _mean_curve(reference)
    palette = sns.color_palette(n_colors=len(panels))
    for ax, profiles, colour in zip(axes.flat, panels, palette):
        x = bin_centres(profiles.edges)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            per_head = np.nanmean(profiles.density, axis=1)  # (layer, head, bin)
        for curve in per_head.reshape(-1, per_head.shape[-1]):
            ax.plot(x, curve, color=colour, alpha=0.25, linewidth=0.7)
        ax.plot(x, _mean_curve(profiles), color=colour, linewidth=2.5, label="mean")
        ax.plot(reference_x, reference_y, color="black", linestyle="--", linewidth=1.5,
                label=f"{reference.label} at {reference.length}")
        ax.axvline(pretrained_length, color="black", linestyle=":", linewidth=1)
        if cpt_length and cpt_length <= capture.length:
            ax.axvline(cpt_length, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(profiles.label, fontsize=10)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("relative distance d + 1 (tokens, log)")
    for ax in axes[:, 0]:
        ax.set_ylabel("attention per key (log)")
    axes.flat[0].legend(fontsize=8, loc="lower left")
    figure.suptitle(f"Fig. 2, ours: attention vs distance at {capture.length} tokens "
                    f"(thin: one (layer, head); dotted: L0 = {pretrained_length}"
                    + (f", CPT length {cpt_length}" if cpt_length and cpt_length <= capture.length else "") + ")",
                    fontsize=11)
    return figure
