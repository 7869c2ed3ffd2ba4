"""Fig. 1's verdicts: extrapolation limits from the positions each length adds, at both CI ends.

**Extrapolation limit.** One bar for every model: ``TOLERANCE`` times the original
model's (``reference``: plain RoPE pretrained at L0) ``ppl_new`` at L0, i.e. "about as good
as the original model is on the second half of its own length". A model holds at a length
L >= L0 while the ratio r(L) = ppl_new(L) / the original's ppl_new(L0) is at most
TOLERANCE; the first length over it ends its limit (a later recovery does not count). The
ratio's 95% CI is a paired bootstrap over documents (``paired_ratios``): both perplexities
read the same documents, so a document's own difficulty cancels. The limit is computed
three times, on the point estimate and on each end of that CI:

- ``limit_low`` (conservative): the CI's upper end must be at most TOLERANCE;
- ``limit_high`` (optimistic): only its lower end must;
- ``determined``: the two agree. Otherwise the limit is "between" them, and no rule may
  read more into it than both ends support.

A model already over the bar at L0 has no limit (0); a limit at the longest evaluated
length is censored ("at least"). The rule uses the per-token aggregation (``perplexity``);
the YaRN-style mean of per-document perplexities is shown beside it.

**Rules** (each ``glance_rows`` row states its own). A limit is an interval [conservative,
optimistic]; "A further than B" is replicated when A's conservative limit exceeds B's
optimistic one, not replicated when A's optimistic limit is at most B's conservative one
(the limits are on a grid: equal determined limits are "no further"), inconclusive otherwise
(:func:`further`). Parts combine by ``findings.verdicts.combined`` (partly = a significant part).
- 1.1 plain RoPE explodes just past L0, on the original model: replicated if even its
  optimistic limit is L0; not replicated if its conservative limit is past L0; else
  inconclusive.
- 1.2 the paper's comparison (against un-extended RoPE), two parts: (a) each of PI, YaRN
  and NTK holds past the CPT length; (b) an NTK holds further than every other extension.
- 1.25 control the paper lacks: each extension holds further than plain-RoPE CPT at the
  same length and tokens (``cpt-rope``), one part per extension.
A row is "not testable" only when a checkpoint it needs is absent or no full checkpoint:
perplexity does not need retrieval, so a retrieval-gate miss does not count
(``ropelib.findings.verdicts``, role "perplexity").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ropelib import results
from ropelib.prose import significant
from ropelib.findings.verdicts import combined, not_testable_reason

TOLERANCE = 1.2
NOT_MEASURED = ("limit", "limit_low", "limit_high", "limit_x", "limit_low_x", "limit_high_x")
EXTENSIONS = ("pi", "ntk", "ntk100", "yarn")  # continually pretrained extensions; ntk100 is the paper's NTK
NTK = ("ntk", "ntk100")
# The paper's Fig. 1 (LLaMA-2-7B, L0 = 4K): RoPE fails just past 4K, PI and YaRN reach about
# 62K, NTK about 128K. In multiples of L0:
PAPER_LIMITS = {"rope": 1.0, "pi": 62 / 4, "yarn": 62 / 4, "ntk": 128 / 4, "ntk100": 128 / 4}


def _limit(lengths: np.ndarray, values: np.ndarray, bar: float) -> int:
    """Longest length before the first value over ``bar`` (0 if already over at the first)."""
    over = np.flatnonzero(~(values <= bar))  # NaN counts as over: no evidence of holding
    return int(lengths[over[0] - 1]) if len(over) and over[0] > 0 else 0 if len(over) else int(lengths[-1])


def paired_ratios(table: pd.DataFrame, reference: str, pretrained_length: int, n_boot: int = 1000,
                  seed: int = 0, level: float = 0.95) -> pd.DataFrame | None:
    """Per (variant, length): r = ppl_new(L) / the original model's ppl_new(L0)
    = exp(mean_d loss_new(variant, L, d) - mean_d loss_new(original, L0, d)), with a percentile
    bootstrap CI that resamples documents for both at once (they read the same documents, so
    the documents' own difficulty cancels instead of widening the interval)."""
    ref = table[(table["variant"] == reference) & (table["length"] == pretrained_length)].set_index("document")
    if ref.empty:
        return None  # L0 not evaluated: no bar to compare with (extrapolation_limits says so)
    documents = ref.index
    draws = np.random.default_rng(seed).integers(0, len(documents), (n_boot, len(documents)))
    alpha = (1 - level) / 2
    rows = []
    for (variant, length), group in table.groupby(["variant", "length"], sort=False):
        diff = group.set_index("document")["loss_new"].reindex(documents).to_numpy() - ref["loss_new"].to_numpy()
        boot = np.exp(diff[draws].mean(axis=1))
        rows.append({"variant": variant, "length": int(length), "ratio": float(np.exp(diff.mean())),
                     "ratio_low": float(np.quantile(boot, alpha)), "ratio_high": float(np.quantile(boot, 1 - alpha))})
    return pd.DataFrame(rows)


def extrapolation_limits(curve: pd.DataFrame, pretrained_length: int, reference: str,
                         ratios: pd.DataFrame | None = None, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Per variant: the limit on the point estimate and on both ends of the ratio's CI (tokens).

    ``ratios`` from :func:`paired_ratios` (the chapter's); without it, the ratio and its CI
    are each curve's ppl_new and CI over the original model's ppl_new at L0 (unpaired).
    """
    at_l0 = curve[(curve["variant"] == reference) & (curve["length"] == pretrained_length)]
    if at_l0.empty:  # L0 not evaluated: no bar, so no limit can be measured (every limit NaN)
        first = curve.groupby("variant", sort=False).first().reset_index()
        return pd.DataFrame({"variant": first["variant"], "method": first["method"], "source": first["source"],
                             "ppl_new_at_L0": np.nan, "bar": np.nan, **{c: np.nan for c in NOT_MEASURED},
                             "determined": False, "censored": False})
    original = float(at_l0["ppl_new"].iloc[0])
    if ratios is None:
        ratios = curve.assign(ratio=curve["ppl_new"] / original, ratio_low=curve["new_ci_low"] / original,
                              ratio_high=curve["new_ci_high"] / original)[["variant", "length", "ratio", "ratio_low",
                                                                           "ratio_high"]]
    curve = curve.merge(ratios, on=["variant", "length"])
    longest = int(curve["length"].max())
    rows = []
    for variant, group in curve.groupby("variant", sort=False):
        beyond = group[group["length"] >= pretrained_length].sort_values("length")
        lengths = beyond["length"].to_numpy()
        limits = {name: _limit(lengths, beyond[column].to_numpy(), tolerance) for name, column in
                  (("limit", "ratio"), ("limit_low", "ratio_high"), ("limit_high", "ratio_low"))}
        rows.append({"variant": variant, "method": group["method"].iloc[0], "source": group["source"].iloc[0],
                     "ppl_new_at_L0": float(beyond["ppl_new"].iloc[0]), "bar": tolerance * original, **limits,
                     "determined": limits["limit_low"] == limits["limit_high"],
                     "censored": limits["limit_high"] == longest})
    frame = pd.DataFrame(rows)
    for column in ("limit", "limit_low", "limit_high"):
        frame[f"{column}_x"] = frame[column] / pretrained_length
    return frame


def shown_limit(row) -> str:
    """"4x", "4x-8x" (undetermined between the CI ends), ">= 32x", or "none", in multiples of L0."""
    low, high = row["limit_low_x"], row["limit_high_x"]
    if pd.isna(high):
        return "not measured (L0 not evaluated)"
    if not high:
        return "none"
    text = f"{significant(high, 3):g}x" if low == high else f"{significant(low, 3):g}x-{significant(high, 3):g}x"
    return (">= " if row["censored"] else "") + text


def limits_table(limits: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The limits beside the paper's (multiples of L0), one row per variant, as printed."""
    def paper(row):
        if row["variant"] == reference:
            return f"{PAPER_LIMITS['rope']:g}x"
        return f"{significant(PAPER_LIMITS[row['method']], 3):g}x" if row["method"] in EXTENSIONS else "-"

    return pd.DataFrame({
        "variant": limits["variant"],
        "ppl of new positions at L0": limits["ppl_new_at_L0"].map(significant),
        "limit, point (x L0)": ["-" if pd.isna(x) else f"{significant(x, 3):g}x" if x else "none"
                                for x in limits["limit_x"]],
        "limit, CI ends (x L0)": [shown_limit(row) for _, row in limits.iterrows()],
        "determined": limits["determined"],
        "paper, after CPT (x L0)": [paper(row) for _, row in limits.iterrows()],
    }).set_index("variant")


def _row(order, claim, paper, ours, verdict, rule, chapter, kind="paper", details=""):
    return results.glance_row(order, "Finding 1", claim, paper, ours, verdict, rule, chapter, kind=kind,
                              details=details)


def further(low: float, high: float, other_low: float, other_high: float) -> str:
    """Grade of "limit [low, high] is further than limit [other_low, other_high]" (module docstring)."""
    return "replicated" if low > other_high else "not replicated" if high <= other_low else "inconclusive"


def _missing(needs) -> str:
    return not_testable_reason(needs, role="perplexity")


# a claim about continually pretrained models, asked of a line-up with none (e.g. a real model run training-free)
TRAINING_FREE_ONLY = ("needs continual pretraining: every extension here is applied training-free to the original "
                      "weights, so the paper's CPT comparison cannot be measured")


def glance_rows(limits: pd.DataFrame, reference: str, pretrained_length: int, cpt_length: int,
                chapter: str) -> list[dict]:
    """Rows 1.1, 1.2 and the control 1.25 (module docstring), each "not testable" when a checkpoint is absent."""
    by_variant = limits.set_index("variant")
    base = by_variant.loc[reference]
    bar = f"ppl of the positions each length adds <= {TOLERANCE}x the original model's at L0"
    details = "; ".join(f"{v}: {shown_limit(r)}" for v, r in by_variant.iterrows())
    missing = _missing([f"rope:{base['source']}"]) or (
        f"L0 = {pretrained_length} is not among the evaluated lengths: the bar is the original model's "
        "perplexity there" if pd.isna(base["bar"]) else "")
    verdict = "not testable" if missing else (
        "replicated" if base["limit_high_x"] <= 1 else "not replicated" if base["limit_low_x"] > 1 else "inconclusive")
    rows = [_row(1.1, "Plain RoPE's perplexity explodes just past the pretrained length L0 (Fig. 1)",
                 "about 1x L0 (4K)", f"limit {shown_limit(base)} L0", verdict,
                 f"limit: longest length up to which {bar}, at both ends of its 95% CI; replicated if even the "
                 "optimistic limit is L0, not replicated if the conservative limit is past L0, else inconclusive",
                 chapter, details=missing or details)]
    extensions = limits[limits["method"].isin(EXTENSIONS) & (limits["variant"] != reference)]
    if extensions.empty:
        return rows
    needs = [f"{m}:{s}" for m, s in zip(extensions["method"], extensions["source"])] + [f"rope:{base['source']}"]
    missing = _missing(needs) or ("L0 not evaluated: no bar" if pd.isna(base["bar"]) else "") or (
        "" if cpt_length else TRAINING_FREE_ONLY)
    ntk = extensions[extensions["method"].isin(NTK)]
    others = extensions[~extensions["method"].isin(NTK)]
    cpt_x = cpt_length / pretrained_length if cpt_length else 1.0
    past_cpt = ntk_furthest = "not testable"
    if not missing:  # graded only where every limit was measured (without L0 they are all NaN)
        past_cpt = combined(further(r["limit_low_x"], r["limit_high_x"], cpt_x, cpt_x)
                            for _, r in extensions.iterrows())
        if len(ntk) and len(others):
            best = ntk.loc[ntk["limit_low_x"].idxmax()]
            ntk_furthest = combined(further(best["limit_low_x"], ntk["limit_high_x"].max(), r["limit_low_x"],
                                            r["limit_high_x"]) for _, r in others.iterrows())
    verdict = "not testable" if missing else combined([past_cpt, ntk_furthest])
    ours = ", ".join(f"{v} {shown_limit(r)}" for v, r in extensions.set_index("variant").iterrows())
    rows.append(_row(1.2, "With continual pretraining, PI, YaRN and NTK extrapolate far past L0, NTK furthest (Fig. 1)",
                     "PI, YaRN about 15x L0; NTK about 32x L0", ours, verdict,
                     f"the paper's comparison, against un-extended RoPE; {bar}; two parts: (a) every extension "
                     f"holds past the CPT length ({cpt_length}), (b) an NTK further than the others; 'A further "
                     "than B': A's conservative limit above B's optimistic one (replicated), A's optimistic at most "
                     "B's conservative (not replicated), else inconclusive; partly if a part is replicated",
                     chapter, details=missing or f"(a) {past_cpt}, (b) {ntk_furthest}; {details}"))
    controls = limits[(limits["method"] == "rope") & (limits["variant"] != reference)]
    if controls.empty:
        reason, verdict, ours = "no plain-RoPE CPT model in this line-up", "not testable", "-"
    else:
        control = controls.iloc[0]
        reason = _missing(needs + [f"rope:{control['source']}"]) or (
            "L0 not evaluated: no bar" if pd.isna(base["bar"]) else "")
        verdict = "not testable" if reason else combined(
            further(r["limit_low_x"], r["limit_high_x"], control["limit_low_x"], control["limit_high_x"])
            for _, r in extensions.iterrows())
        ours = f"{control['variant']} {shown_limit(control)}; " + ours
    rows.append(_row(1.25, "Control: each extension extrapolates further than plain RoPE continually pretrained "
                           "at the same length with the same tokens", "not tested in the paper", ours, verdict,
                     "one part per extension, 'further than plain-RoPE CPT' as in 1.2 (CI ends of the limits); "
                     "supported if every part is, partly supported if one is, not supported if none is and "
                     "every part shows the control as far, else inconclusive; a retrieval-gate miss of the "
                     "control does not count (perplexity does not need retrieval)", chapter, kind="control",
                     details=reason or details))
    return rows


def key_numbers(limits: pd.DataFrame, reference: str) -> dict[str, str]:
    """The numbers the page's prose cites: limits (x L0) of the original model, each extension, the control."""
    by = limits.set_index("variant")
    extensions = by[by["method"].isin(EXTENSIONS) & (by.index != reference)]
    controls = by[(by["method"] == "rope") & (by.index != reference)]
    return {"ppl_original_limit": shown_limit(by.loc[reference]),
            "ppl_extension_limits": ", ".join(f"{v} {shown_limit(r)}" for v, r in extensions.iterrows()) or "none",
            "ppl_control_limit": shown_limit(controls.iloc[0]) if len(controls) else "none (no plain-RoPE CPT model)",
            "ppl_bar": f"{by['bar'].iloc[0]:.3g}"}
