"""Several variants over context lengths: needle grid and perplexity, summarised per length with CIs.

Shared by the chapters "Longer training contexts lower attention uncertainty" (finding 3)
and "Model size" (appendix). Every variant is evaluated on the same prompts and the same
documents (``tasks.needle`` seeds each cell by (seed, length, depth); ``tasks.perplexity``
takes the first long-enough test documents), so any two variants can be compared
cell by cell or document by document.

  checkpoint_table(variants)       size, training length, tokens and retrieval at L0 from the manifests
  manifest_of(source), gate_status(source), gate_table(variants)
                                   an organism checkpoint's manifest and its retrieval gate (``recipes.gate``)
  evaluate(variants, factor, ...)  -> Sweep: trials (one row per needle), perplexity (per document)
  pass_by_length(trials)           passes / trials per (method, length), Wilson 95% interval (``stats``)
  entropy_by_length(trials)        mean answer entropy per (method, length), bootstrap 95% CI over trials
  prompt_table(trials, column)     one row per prompt (length, depth, needle), one column per method
  slope_fit(trials, methods, ...)  OLS slope of mean ``column`` against ln L per method, paired bootstrap by prompt
  ppl_by_length(ppl)               exp(mean loss over documents), CI = exp(bootstrap CI of the mean loss)
  cells_in_order(trials)           per-cell pass rate and entropy, methods in evaluation order
  wide(summary, value)             one row per method, one column per length, rounded (what pages print)
  quiet_transformers()             silences transformers' "past max_position_embeddings" reminder
  plot_curves(...)                 entropy, pass rate and perplexity against length, L0 and CPT lengths marked

Not here: verdicts (``cpt_length``, ``model_size``), the needle heatmap (``needle_entropy.plots.plot_heatmaps``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns

from ropelib.core import metrics, stats
from ropelib.models import load as models, manifest as manifests, organism
from ropelib.training import recipes
from ropelib.tasks import needle, perplexity
from ropelib.models.variants import ModelCache, Variant

LEVEL = 0.95


@dataclass
class Sweep:
    trials: pd.DataFrame  # one row per needle trial: method, length, depth, passed, entropy, ...
    perplexity: pd.DataFrame  # one row per (method, length, document): loss (nats/token), ppl
    parameters: dict  # method label -> parameter count of its checkpoint


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' warnings while generating past ``max_position_embeddings``.

    Going past the trained length is the experiment; transformers' "friendly reminder"
    would only add a line to the page.
    """
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def evaluate(variants: list[Variant], factor: float, needle_lengths: list[int], depths: list[float],
             needles_per_cell: int, ppl_lengths: list[int], n_documents: int, seed: int = 0,
             device: str = "cpu", needle_format: str = "compact", progress: bool = True,
             dtype: str = "auto") -> Sweep:
    """Needle grid and perplexity of every variant (each checkpoint loaded once, switched in place).

    ``needle_format``: ``haystack.FORMATS`` key ("compact" for the organism, "sentence" for
    real checkpoints).
    """
    cache = ModelCache(device, dtype, max(*needle_lengths, *ppl_lengths), batch=needles_per_cell, generate_tokens=8)
    trials, ppl, sizes = [], [], {}
    for variant in variants:
        loaded = cache.get(variant, factor)
        sizes[variant.label] = organism.parameter_count(loaded.model)
        with quiet_transformers():
            trials.append(needle.needle_grid(loaded.model, loaded.tokenizer, needle_lengths, depths,
                                             needles_per_cell, seed=seed, method=variant.label, fmt=needle_format,
                                             progress=progress))
            ppl.append(perplexity.perplexity_by_length(loaded.model, loaded.tokenizer, ppl_lengths, n_documents,
                                                       method=variant.label, progress=progress))
    return Sweep(pd.concat(trials, ignore_index=True), pd.concat(ppl, ignore_index=True), sizes)


def checkpoint_table(variants: list[Variant]) -> pd.DataFrame:
    """What each variant runs on, from its organism manifest: size, training length, tokens, retrieval at L0.

    ``training length`` is the length of the last training stage; ``tokens`` counts this
    checkpoint's own training (a CPT's, not its parent's). Blank for non-organism checkpoints.
    """
    rows = []
    for variant in variants:
        manifest = manifest_of(variant.source)
        stages = manifest.get("recipe", {}).get("stages", [])
        rows.append({"variant": variant.label, "size": manifest.get("size", ""), "parent": manifest.get("parent") or "",
                     "training length": stages[-1]["length"] if stages else "",
                     "tokens": manifest.get("tokens_seen", ""),
                     "retrieval at L0 (end of training)": manifest.get("final", {}).get("retrieval_at_L0", "")})
    return pd.DataFrame(rows).set_index("variant")


def manifest_of(source: str) -> dict:
    """The manifest of an organism checkpoint; {} for a Hugging Face checkpoint (it has none)."""
    return manifests.read(models.resolve(source)[1])


def gate_status(source: str) -> tuple[bool | None, str]:
    """(passed, one line) of a checkpoint's retrieval gate, read from its manifest.

    passed = ``manifest.gate_passed``: every gate length's 95% Wilson lower bound
    >= ``manifest.RETRIEVAL_GATE``. None for a checkpoint without a manifest (a Hugging Face
    directory: nobody gated it). A smoke run or a pre-v3 manifest has no gate rows: False.
    """
    manifest = manifest_of(source)
    if not manifest:
        return None, "no manifest (not an organism checkpoint): not gated"
    rows = manifest.get("gate") or []
    if not rows:
        return False, "no gate recorded (a smoke run or a manifest older than organism v3)"
    text = manifests.gate_rows_text(manifest)
    passed = manifests.gate_passed(manifest)
    reason = recipes.known_miss(manifest)
    miss = f"; known miss: {reason}" if reason else ""
    return passed, f"{'passed' if passed else 'MISSED'}: {text}{miss}"


def gate_table(variants: list[Variant]) -> pd.DataFrame:
    """One row per variant: its checkpoint's gate (passed / missed / not gated) and the rates behind it."""
    rows = []
    for variant in variants:
        passed, text = gate_status(variant.source)
        rows.append({"variant": variant.label, "gate": {True: "passed", False: "missed", None: "not gated"}[passed],
                     "retrieval at L0 and training length (95% Wilson CI)": text})
    return pd.DataFrame(rows).set_index("variant")


def prompt_table(trials: pd.DataFrame, column: str) -> pd.DataFrame:
    """One row per prompt (length, depth, needle = its rank in the cell), one column per method: ``column``.

    ``tasks.needle`` seeds each cell by (seed, length, depth), so the k-th needle of a cell
    is the same prompt for every method: a row is one prompt answered by all of them.
    Prompts some method lacks (or has NaN for) are dropped.
    """
    numbered = trials.assign(needle=trials.groupby(["method", "length", "depth"], sort=False).cumcount())
    table = numbered.pivot_table(index=["length", "depth", "needle"], columns="method", values=column,
                                 aggfunc="first", dropna=False)
    table = table[list(dict.fromkeys(trials["method"]))]  # evaluation order
    table.columns.name = None
    return table.dropna()


@dataclass
class SlopeFit:
    lengths: list[int]  # the lengths fitted (>= min_length)
    methods: list[str]
    means: pd.DataFrame  # (length, method): mean of the column over the length's prompts
    slopes: pd.Series  # method -> OLS slope of the means against ln L (nats per unit of ln L)
    boot_means: np.ndarray  # (n_boot, lengths, methods): the same means on resampled prompts
    boot_slopes: np.ndarray  # (n_boot, methods)


def slope_fit(trials: pd.DataFrame, methods: list[str], min_length: int, column: str = "entropy_teacher",
              n_boot: int = 2000, seed: int = 0) -> SlopeFit:
    """Per method, the OLS slope of the mean of ``column`` against ln L over lengths L >= ``min_length``.

    slope = sum_j w_j * mean_j with w_j = (x_j - xbar) / sum_k (x_k - xbar)^2, x_j = ln L_j.
    Paired bootstrap: at every length, the length's prompts (``prompt_table``) are drawn
    with replacement, the same draw for every method (seeded by ``seed``), ``n_boot`` times;
    a difference of two methods' slopes is taken within each draw, so its interval is paired.
    """
    prompts = prompt_table(trials[trials["method"].isin(methods)], column)[list(methods)]
    prompts = prompts[prompts.index.get_level_values("length") >= min_length]
    lengths = sorted(set(prompts.index.get_level_values("length")))
    if len(lengths) < 2:
        raise ValueError(f"a slope against ln L needs at least 2 lengths >= {min_length}; got {lengths}")
    x = np.log(np.asarray(lengths, dtype=float))
    weights = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
    means = prompts.groupby(level="length").mean().loc[lengths]
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, len(lengths), len(methods)))
    for j, length in enumerate(lengths):
        values = prompts.xs(length, level="length").to_numpy(float)  # (prompts, methods)
        draws = rng.integers(0, len(values), size=(n_boot, len(values)))
        boot[:, j, :] = values[draws].mean(axis=1)
    return SlopeFit(lengths, list(methods), means, pd.Series(weights @ means.to_numpy(float), index=list(methods)),
                    boot, np.einsum("j,bjm->bm", weights, boot))


def _bootstrap(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return float("nan"), float("nan")
    return tuple(metrics.bootstrap_ci(values, level=LEVEL))


def pass_by_length(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (method, length): passes, trials, pass rate and its Wilson interval (all depths pooled)."""
    rows = []
    for (method, length), group in trials.groupby(["method", "length"], sort=False):
        passes, n = int(group["passed"].sum()), len(group)
        rate = stats.proportion_interval(passes, n, LEVEL)
        rows.append({"method": method, "length": length, "passes": passes, "trials": n,
                     "pass_rate": rate.value, "ci_low": rate.low, "ci_high": rate.high})
    return pd.DataFrame(rows)


def entropy_by_length(trials: pd.DataFrame, column: str = "entropy") -> pd.DataFrame:
    """Per (method, length): mean answer-token attention entropy (nats) and its bootstrap CI over trials.

    ``column``: which of ``tasks.needle``'s entropies (``entropy``: Appendix C's all-token
    mean during decoding; ``entropy_teacher``; ``entropy_first``); the result's column is
    called ``entropy`` whichever it is.
    """
    rows = []
    for (method, length), group in trials.groupby(["method", "length"], sort=False):
        low, high = _bootstrap(group[column])
        rows.append({"method": method, "length": length, "entropy": float(group[column].mean()),
                     "ci_low": low, "ci_high": high, "ln_length": float(np.log(length))})
    return pd.DataFrame(rows)


def ppl_by_length(ppl: pd.DataFrame) -> pd.DataFrame:
    """Per (method, length): exp(mean loss over documents), with the bootstrap CI of the mean loss exponentiated."""
    rows = []
    for (method, length), group in ppl.groupby(["method", "length"], sort=False):
        low, high = _bootstrap(group["loss"])
        rows.append({"method": method, "length": length, "ppl": float(np.exp(group["loss"].mean())),
                     "ci_low": float(np.exp(low)), "ci_high": float(np.exp(high)), "documents": len(group)})
    return pd.DataFrame(rows)


def wide(summary: pd.DataFrame, value: str, digits: int = 3) -> pd.DataFrame:
    """One row per method, one column per length: ``value`` rounded (what the page prints)."""
    table = summary.pivot(index="method", columns="length", values=value)
    table = table.loc[list(dict.fromkeys(summary["method"]))]  # keep the variants' order
    table.columns.name, table.index.name = "length", None
    return table.round(digits)


def cells_in_order(trials: pd.DataFrame, entropy_column: str = "entropy") -> pd.DataFrame:
    """``needle.cell_table`` with the methods in the order they were evaluated (it sorts them by name).

    ``entropy_column`` (e.g. ``entropy_teacher``) replaces the ``entropy`` column, which the heatmaps print.
    """
    order = {method: i for i, method in enumerate(dict.fromkeys(trials["method"]))}
    cells = needle.cell_table(trials)
    if entropy_column != "entropy":
        cells["entropy"] = cells[entropy_column]
    return cells.sort_values(["method", "length", "depth"], key=lambda c: c.map(order) if c.name == "method" else c,
                             kind="stable").reset_index(drop=True)


def _mark_lengths(ax, marks: dict[str, int]) -> None:
    # the first mark (L0) dotted, the next (a CPT length) dashed: as in needle_entropy.plots' heatmaps
    for (label, length), style in zip(marks.items(), (":", "--", "-.", (0, (1, 3)))):
        ax.axvline(length, color="black", linestyle=style, linewidth=1.2, label=label)


def plot_curves(entropy: pd.DataFrame, passes: pd.DataFrame, ppl: pd.DataFrame, marks: dict[str, int],
                title: str, entropy_label: str = "mean attention entropy of the answer (nats)"):
    """Three panels against length (log2 x): entropy with CI band, pass rate with Wilson bars, perplexity (log y).

    ``marks``: vertical lines, e.g. {"L0 = 256": 256, "long CPT = 2048": 2048}.
    """
    sns.set_theme(style="whitegrid", context="notebook")
    methods = list(dict.fromkeys(passes["method"]))
    colors = dict(zip(methods, sns.color_palette("colorblind", len(methods))))
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.3), constrained_layout=True)
    for method in methods:
        e, p, q = (t[t["method"] == method] for t in (entropy, passes, ppl))
        axes[0].plot(e["length"], e["entropy"], marker="o", color=colors[method], label=method)
        axes[0].fill_between(e["length"], e["ci_low"], e["ci_high"], color=colors[method], alpha=0.2)
        axes[1].errorbar(p["length"], p["pass_rate"], yerr=[p["pass_rate"] - p["ci_low"], p["ci_high"] - p["pass_rate"]],
                         marker="o", capsize=3, color=colors[method], label=method)
        axes[2].plot(q["length"], q["ppl"], marker="o", color=colors[method], label=method)
        axes[2].fill_between(q["length"], q["ci_low"], q["ci_high"], color=colors[method], alpha=0.2)
    lengths = sorted(set(entropy["length"]))
    axes[0].plot(lengths, np.log(lengths), color="grey", linewidth=1, label="ln L (uniform attention)")
    labels = {0: entropy_label, 1: "needle pass rate (Wilson 95% CI)",
              2: "perplexity (log scale)"}
    for i, ax in enumerate(axes):
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, [str(x) for x in lengths])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        _mark_lengths(ax, marks)
        ax.set(xlabel="context length L (tokens, log scale)", ylabel=labels[i])
    axes[1].set_ylim(-0.03, 1.03)
    axes[2].set_yscale("log")
    axes[2].yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axes[2].yaxis.set_minor_locator(matplotlib.ticker.LogLocator(subs=(2, 3, 5)))
    axes[2].yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axes[0].legend(fontsize=8)
    figure.suptitle(title)
    return figure

