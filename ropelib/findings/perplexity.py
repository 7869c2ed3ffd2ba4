"""Chapter "Perplexity beyond the pretrained length" (the paper's Fig. 1): tables, rule, figure.

  evaluate(variants, factor, lengths, ...)  tidy per-document losses of every variant (``tasks.perplexity``)
  curves(table)                             perplexity per (variant, length) with a bootstrap 95% CI
  extrapolation_limits(curves, L0)          the extrapolation limit of each variant, by the rule below
  limits_table(limits)                      the same beside the paper's limits, in multiples of L0
  plot_curves(curves, ...)                  seaborn, log-log, L0 and the CPT length marked
  glance_rows(limits, ...)                  the chapter's verdicts for the "Results at a glance" page

Perplexity at length L is exp(mean over documents of the mean next-token loss of the
document's first L tokens), i.e. the geometric mean of the per-document perplexities; its
95% CI is exp of the percentile-bootstrap CI of that mean loss, resampling documents.

**Extrapolation limit.** One bar for every model: TOLERANCE times the perplexity of the
original model (``reference``, plain RoPE pretrained at L0) at L0, i.e. "about as good as
the original model is at its own length". A model's limit is the largest evaluated length
L >= L0 such that ppl(L') <= bar for every evaluated L0 <= L' <= L: the first length over
the bar ends it, a later recovery does not count. A model already over the bar at L0 has no
limit (NaN, "none"); a limit equal to the longest evaluated length is censored ("at
least"). A common bar rather than each model's own ppl(L0): a model that is poor
everywhere (PI without training) would otherwise get a long limit for being uniformly
poor. The paper reads its limits off Fig. 1 by eye; on a doubling grid ours are powers of
two times L0.

Not here: running models (``tasks.perplexity``), generic statistics (``metrics``).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np
import pandas as pd
import seaborn as sns

from ropelib import metrics, results
from ropelib.tasks.perplexity import perplexity_by_length
from ropelib.variants import ModelCache, Variant

TOLERANCE = 1.2  # a length "holds" while its perplexity is within 1.2x of the original model's at L0
EXTENSIONS = ("pi", "ntk", "yarn")  # the three extensions the paper continually pretrains
# The paper's Fig. 1 (LLaMA-2-7B, L0 = 4K): RoPE fails just past 4K, PI and YaRN reach about
# 62K, NTK about 128K. In multiples of L0:
PAPER_LIMITS = {"rope": 1.0, "pi": 62 / 4, "yarn": 62 / 4, "ntk": 128 / 4}
DIGITS = 4


def significant(x: float, digits: int = DIGITS) -> float:
    """``x`` rounded to ``digits`` significant digits (0, inf and NaN unchanged)."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def reference_variant(variants: list[Variant], reference: str, pretrained_length: int, lengths: list[int]) -> Variant:
    """The variant named by ``reference`` ("method:source"), after checking that L0 is an evaluated length."""
    if pretrained_length not in lengths:
        raise ValueError(f"pretrained_length={pretrained_length} must be one of lengths={lengths}: "
                         "the extrapolation limit is measured from the perplexity at L0")
    named = {f"{v.method}:{v.source}": v for v in variants}
    if reference not in named:
        raise ValueError(f"reference={reference!r} must be one of variants={list(named)}")
    return named[reference]


def evaluate(variants: list[Variant], factor: float, lengths: list[int], n_documents: int,
             device: str = "cpu", documents=None, progress: bool = True) -> pd.DataFrame:
    """One row per (variant, length, document): variant label, method, source, loss (nats/token), ppl.

    Every variant sees the same documents (the first ``n_documents`` documents with at least
    max(lengths) + 1 tokens; held-out Python stdlib unless ``documents`` is given), so any
    two can be compared document by document.
    """
    cache = ModelCache(device)
    frames = []
    for variant in variants:
        loaded = cache.get(variant, factor)
        frame = perplexity_by_length(loaded.model, loaded.tokenizer, lengths, n_documents, method=variant.label,
                                     documents=documents, progress=progress)
        frames.append(frame.rename(columns={"method": "variant"}).assign(method=variant.method, source=variant.source))
    return pd.concat(frames, ignore_index=True)


def curves(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per (variant, length): ppl = exp(mean loss over documents) and its bootstrap 95% CI.

    The CI resamples documents (percentile bootstrap of the mean loss, then exp); with a
    single document it is NaN.
    """
    rows = []
    for (variant, length), group in table.groupby(["variant", "length"], sort=False):
        losses = group["loss"].to_numpy()
        low, high = metrics.bootstrap_ci(losses, n_boot=n_boot, seed=seed) if len(losses) > 1 else (np.nan, np.nan)
        rows.append({"variant": variant, "method": group["method"].iloc[0], "length": int(length),
                     "ppl": math.exp(losses.mean()), "ci_low": math.exp(low), "ci_high": math.exp(high)})
    return pd.DataFrame(rows)


def wide(curve: pd.DataFrame) -> pd.DataFrame:
    """Perplexity (4 significant digits), one row per length, one column per variant."""
    table = curve.pivot(index="length", columns="variant", values="ppl")[list(dict.fromkeys(curve["variant"]))]
    table.columns.name = None
    return table.map(significant)


def extrapolation_limits(curve: pd.DataFrame, pretrained_length: int, reference: str,
                         tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Per variant: ppl at L0, the extrapolation limit (module docstring's rule), first failing length.

    ``reference`` is the label of the original model, whose ppl at L0 sets the bar.
    Columns: variant, method, ppl_at_L0, bar, limit (tokens, NaN if over the bar at L0),
    limit_x (limit / L0, 0 if none), censored (True when the limit is the longest evaluated
    length: the true limit is at least that), first_failure (the first length over the bar,
    NaN if none), ratio_at_failure (its ppl / the original model's ppl at L0).
    Raises ValueError when L0 is not among the evaluated lengths.
    """
    at_l0 = curve[(curve["variant"] == reference) & (curve["length"] == pretrained_length)]["ppl"]
    if at_l0.empty:
        raise ValueError(f"no perplexity of {reference!r} at the pretrained length {pretrained_length} "
                         f"(lengths: {sorted(curve['length'].unique())}); the bar is set by it")
    original = float(at_l0.iloc[0])
    bar = tolerance * original
    rows = []
    for variant, group in curve.groupby("variant", sort=False):
        beyond = group[group["length"] >= pretrained_length].sort_values("length")
        own_l0 = beyond.loc[beyond["length"] == pretrained_length, "ppl"]
        over = beyond[beyond["ppl"] > bar]
        held = beyond if over.empty else beyond[beyond["length"] < over["length"].iloc[0]]
        limit = int(held["length"].max()) if len(held) else np.nan
        rows.append({
            "variant": variant,
            "method": group["method"].iloc[0],
            "ppl_at_L0": float(own_l0.iloc[0]) if len(own_l0) else np.nan,
            "bar": bar,
            "limit": limit,
            "limit_x": 0.0 if np.isnan(limit) else limit / pretrained_length,
            "censored": over.empty,
            "first_failure": np.nan if over.empty else int(over["length"].iloc[0]),
            "ratio_at_failure": np.nan if over.empty else float(over["ppl"].iloc[0]) / original,
        })
    return pd.DataFrame(rows)


def _shown_x(x: float, censored: bool = False) -> str:
    """A limit in multiples of L0 as printed: "2x", ">= 32x", or "none" (over the bar at L0)."""
    if not x:
        return "none"
    return f"{'>= ' if censored else ''}{significant(x, 3):g}x"


def limits_table(limits: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The limits beside the paper's (multiples of L0), as printed: one row per variant.

    The paper's value is shown for PI, YaRN, NTK and for the ``reference`` variant (the
    original model, the paper's RoPE line); other variants (e.g. RoPE continually
    pretrained, which the paper does not evaluate) get "-".
    """
    def paper(row):
        if row.variant == reference:
            return _shown_x(PAPER_LIMITS["rope"])
        return _shown_x(PAPER_LIMITS[row.method]) if row.method in EXTENSIONS else "-"

    def tokens(limit, censored):
        return "none" if pd.isna(limit) else f"{'>= ' if censored else ''}{int(limit)}"

    return pd.DataFrame({
        "variant": limits["variant"],
        "ppl at L0": limits["ppl_at_L0"].map(significant),
        "limit (tokens)": [tokens(x, c) for x, c in zip(limits["limit"], limits["censored"])],
        "ours (x L0)": [_shown_x(x, c) for x, c in zip(limits["limit_x"], limits["censored"])],
        "paper, after CPT (x L0)": [paper(row) for row in limits.itertuples()],
        "first length over the bar": limits["first_failure"].map(lambda x: "-" if pd.isna(x) else str(int(x))),
        "its ppl / original ppl at L0": limits["ratio_at_failure"].map(lambda x: "-" if pd.isna(x) else str(significant(x, 3))),
    }).set_index("variant")


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


def glance_rows(limits: pd.DataFrame, reference: str, pretrained_length: int, cpt_length: int,
                chapter: str) -> list[dict]:
    """Two verdicts for finding 1 (Fig. 1), by rules stated in each row.

    Row 1.1, plain RoPE fails just past L0, on ``reference`` (the original model):
    replicated if its limit is L0 itself (already over the bar at the next length),
    partly if the limit is below 4 L0, not replicated otherwise.
    Row 1.2, with CPT the extensions extrapolate, NTK furthest, on the variants whose
    method is PI, YaRN or NTK: replicated if every one's limit exceeds the CPT length and
    NTK's limit exceeds both PI's and YaRN's (strictly: on a doubling grid, at least one
    doubling further); partly if every one's limit exceeds the reference's; not
    replicated otherwise.
    """
    base = limits.set_index("variant").loc[reference]
    base_x = float(base["limit_x"])
    verdict = "replicated" if base_x <= 1 else "partly" if base_x < 4 else "not replicated"
    bar = f"ppl <= {TOLERANCE}x the original model's ppl at L0"
    rows = [results.glance_row(
        1.1, "Finding 1", "Plain RoPE's perplexity explodes just past the pretrained length L0 (Fig. 1)",
        "about 1x L0 (4K)", f"limit {_shown_x(base_x, bool(base['censored']))} L0 ({reference})", verdict,
        f"limit = longest length up to which {bar}; replicated if the limit is L0, partly if < 4 L0, "
        "else not replicated", chapter)]
    extensions = limits[limits["method"].isin(EXTENSIONS) & (limits["variant"] != reference)]
    if extensions.empty:
        return rows
    limit_x = extensions["limit_x"]
    ntk = extensions.loc[extensions["method"] == "ntk", "limit_x"]
    rest = extensions.loc[extensions["method"] != "ntk", "limit_x"]
    ntk_furthest = len(ntk) == 1 and bool((ntk.iloc[0] > rest).all())
    beyond_cpt = bool((limit_x > cpt_length / pretrained_length).all())
    beyond_base = bool((limit_x > base_x).all())
    verdict = "replicated" if beyond_cpt and ntk_furthest else "partly" if beyond_base else "not replicated"
    ours = ", ".join(f"{v} {_shown_x(x, c)}" for v, x, c in
                     zip(extensions["variant"], extensions["limit_x"], extensions["censored"]))
    rows.append(results.glance_row(
        1.2, "Finding 1", "With continual pretraining, PI, YaRN and NTK extrapolate far past L0, NTK furthest (Fig. 1)",
        "PI, YaRN about 15x L0; NTK about 32x L0", ours + " L0", verdict,
        f"limit as in the row above ({bar}); replicated if every extension's limit exceeds the CPT length "
        f"({cpt_length}) and NTK's exceeds PI's and YaRN's; partly if every limit exceeds plain RoPE's; "
        "else not replicated", chapter))
    return rows
