"""Chapter "Perplexity beyond the pretrained length" (the paper's Fig. 1): tables and figure.

  evaluate(variants, factor, lengths, ...)  tidy per-document losses of every variant (``tasks.perplexity``)
  curves(table)                             perplexity per (variant, length) with a bootstrap 95% CI
  plot_curves(curves, ...)                  seaborn, log-log, L0 and the CPT length marked

Two aggregations, both reported:
- per token (the one the limits and verdicts use): ppl(L) = exp(mean over documents of the
  mean next-token loss of the document's first L tokens), the geometric mean of per-document
  perplexities;
- YaRN-style: the arithmetic mean over documents of exp(each document's mean loss), as in
  the YaRN paper's evaluation; it is never lower than the per-token one.
``ppl_new`` is the per-token perplexity of the positions the length adds, [previous
length, L): at 2·L0 it is the loss on positions L0 .. 2·L0 alone, which an average over all
positions would dilute with the positions the model was trained on. Its 95% CI is exp of
the percentile-bootstrap CI of the mean loss, resampling documents. The verdicts (paired
per-document differences of ``loss_new``) and the limits (a description) are in ``verdicts``.

Not here: running models (``tasks.perplexity``), generic statistics (``metrics``).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np
import pandas as pd
import seaborn as sns

from ropelib.core import metrics
from ropelib.tasks.perplexity import perplexity_by_length
from ropelib.models import variants as variant_specs
from ropelib.models.variants import ModelCache, Variant
from ropelib.prose import significant



def reference_variant(variants: list[Variant], reference: str, pretrained_length: int, lengths: list[int]) -> Variant:
    """The variant named by ``reference`` ("method:source"). Without L0 among ``lengths`` the page
    runs, but no extrapolation limit can be measured (its bar is the perplexity at L0)."""
    named = {f"{v.method}:{v.source}": v for v in variants}
    if reference not in named:
        raise ValueError(f"reference={reference!r} must be one of variants={list(named)}")
    return named[reference]


def evaluate(variants: list[Variant], factor: float, lengths: list[int], n_documents: int,
             device: str = "cpu", documents=None, progress: bool = True, dtype: str = "auto") -> pd.DataFrame:
    """One row per (variant, length, document): variant label, method, source, loss (nats/token), ppl.

    Every variant sees the same documents (the first ``n_documents`` documents with at least
    max(lengths) + 1 tokens; held-out Python stdlib unless ``documents`` is given), so any
    two can be compared document by document.
    """
    cache = ModelCache(device, dtype, max(lengths) + 1)
    frames = []
    for variant in variants:
        loaded = cache.get(variant, factor)
        frame = perplexity_by_length(loaded.model, loaded.tokenizer, lengths, n_documents, method=variant.label,
                                     documents=documents, progress=progress,
                                     share_forward=variant_specs.shares_forward(variant),
                                     store=variant_specs.trial_store(loaded, variant, factor, dtype))
        frames.append(frame.rename(columns={"method": "variant"}).assign(method=variant.method, source=variant.source))
    return pd.concat(frames, ignore_index=True)


def curves(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per (variant, length): ppl (all positions) and ppl_new (added positions), each with its
    bootstrap 95% CI over documents, and the YaRN-style mean of per-document perplexities."""
    def interval(values):
        if len(values) < 2:
            return np.nan, np.nan
        low, high = metrics.bootstrap_ci(values, n_boot=n_boot, seed=seed)
        return math.exp(low), math.exp(high)

    rows = []
    for (variant, length), group in table.groupby(["variant", "length"], sort=False):
        losses, new = group["loss"].to_numpy(), group["loss_new"].to_numpy()
        (low, high), (new_low, new_high) = interval(losses), interval(new)
        rows.append({"variant": variant, "method": group["method"].iloc[0], "source": group["source"].iloc[0],
                     "length": int(length), "ppl": math.exp(losses.mean()), "ci_low": low, "ci_high": high,
                     "ppl_new": math.exp(new.mean()), "new_ci_low": new_low, "new_ci_high": new_high,
                     "ppl_doc_mean": float(np.exp(losses).mean()), "ppl_new_doc_mean": float(np.exp(new).mean())})
    return pd.DataFrame(rows)


def wide(curve: pd.DataFrame, value: str = "ppl") -> pd.DataFrame:
    """``value`` (4 significant digits), one row per length, one column per variant."""
    table = curve.pivot(index="length", columns="variant", values=value)[list(dict.fromkeys(curve["variant"]))]
    table.columns.name = None
    return table.map(significant)


def plot_curves(curve: pd.DataFrame, pretrained_length: int, cpt_length: int | None, title: str):
    """Perplexity vs context length, log-log, one line (with its 95% CI band) per variant."""
    sns.set_theme(style="whitegrid", context="notebook")
    figure, ax = plt.subplots(figsize=(8.5, 5), constrained_layout=True)
    names = list(dict.fromkeys(curve["variant"]))
    palette = dict(zip(names, sns.color_palette(n_colors=len(names))))
    sns.lineplot(data=curve, x="length", y="ppl", hue="variant", style="variant", markers=True, dashes=False,
                 palette=palette, ax=ax)
    for variant, group in curve.groupby("variant", sort=False):
        ax.fill_between(group["length"], group["ci_low"], group["ci_high"], color=palette[variant], alpha=0.12)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    lengths = sorted(curve["length"].unique())
    ax.set_xticks(lengths, [str(x) for x in lengths])
    ax.yaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(ticker.ScalarFormatter())
    ax.axvline(pretrained_length, color="black", linestyle="--", linewidth=1)
    ax.text(pretrained_length * 1.04, 0.97, f"L0 = {pretrained_length}", transform=ax.get_xaxis_transform(), fontsize=9)
    if cpt_length:
        ax.axvline(cpt_length, color="grey", linestyle=":", linewidth=1)
        ax.text(cpt_length * 1.04, 0.9, f"CPT length = {cpt_length}", transform=ax.get_xaxis_transform(),
                fontsize=9, color="grey")
    ax.set(xlabel="evaluation context length (tokens, log scale)", ylabel="perplexity (log scale)", title=title)
    ax.legend(title=None, fontsize=9, loc="lower right")
    return figure
