"""Fig. 1's verdicts: paired per-document loss differences, graded by the registry's one rule.

Every verdict of this page comes from ``chapters/claims.yml`` (``ropelib.findings.claims``): a
claim's estimand is one number per part, here a mean over documents of a per-document
difference of ``loss_new`` (nats/token: the mean next-token loss on the positions a length
adds, ``analysis.evaluate``), both terms on the same document at the same lengths, so a
document's own difficulty cancels. Its 95% CI is ``claims.bootstrap_mean`` over documents
(seeded with the page's seed); ``claims.row`` grades it (direction +1, null 0, sesoi ln 1.2).
Perplexity needs no retrieval: no premises, no caveats. With d a document, O the original
model (``reference``, plain RoPE at L0), E an extension (methods ``EXTENSIONS``), C plain-RoPE
CPT (method rope, not the reference), N the paper's NTK (ntk100 if present, else ntk):

- 1.1  O(2 L0, d) - O(L0, d)  (the first evaluated length past L0 when 2 L0 is not; details say which);
- 1.2  CPT line-ups: (a) per E, mean over lengths L > L0 of O(L, d) - E(L, d);
       (b) per E other than N, mean over L > CPT length of E(L, d) - N(L, d);
- 1.25 CPT line-ups, control: per E, mean over L > L0 of C(L, d) - E(L, d);
- 1.5  training-free line-ups (CPT length 0), beyond the paper: (inside) PI(L0, d) - O(L0, d);
       (beyond) O(2 L0, d) - PI(2 L0, d).
On a training-free line-up 1.2 and 1.25 are ``claims.not_testable`` (they are about CPT
models); on a CPT line-up 1.5 is not emitted. A row is not testable only where its quantity
cannot be measured at all (L0 or every length past it not evaluated, no extension, no
plain-RoPE CPT model, no PI).

**Extrapolation limits** (description of Fig. 1, no verdict reads them). One bar for every
model: ``TOLERANCE`` times the original model's ``ppl_new`` at L0. A model holds at a length
L >= L0 while r(L) = ppl_new(L) / the original's ppl_new(L0) is at most TOLERANCE; the first
length over it ends its limit (a later recovery does not count). The ratio's 95% CI is a
paired bootstrap over documents (``paired_ratios``), and the limit is computed on the point
estimate and on both ends of that CI: ``limit_low`` (conservative: the CI's upper end under
the bar), ``limit_high`` (optimistic: its lower end), ``determined`` when they agree. A model
over the bar at L0 has limit 0; a limit at the longest evaluated length is censored.

Not here: the rule and its intervals (``ropelib.findings.claims``), running models and the
curves (``analysis``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ropelib import results
from ropelib.core import methods
from ropelib.findings import claims
from ropelib.prose import significant

TOLERANCE = 1.2
NOT_MEASURED = ("limit", "limit_low", "limit_high", "limit_x", "limit_low_x", "limit_high_x")
EXTENSIONS = methods.PAPER_EXTENSIONS  # the RoPE extensions the claims compare; ntk100 is the paper's NTK
# The paper's Fig. 1 (LLaMA-2-7B, L0 = 4K): RoPE fails just past 4K, PI and YaRN reach about
# 62K, NTK about 128K. In multiples of L0:
PAPER_LIMITS = {"rope": 1.0, "pi": 62 / 4, "yarn": 62 / 4, "ntk": 128 / 4, "ntk100": 128 / 4}


# ---- extrapolation limits: description of Fig. 1, no verdict reads them

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


# ---- estimands: paired per-document loss differences (module docstring)

NEEDS_CPT = ("needs continual pretraining: every extension here is applied training-free to the original "
             "weights, so the paper's comparison of continually pretrained models cannot be measured")


def losses(table: pd.DataFrame, variant: str) -> pd.DataFrame:
    """``loss_new`` of one variant, one row per document, one column per length."""
    rows = table[table["variant"] == variant]
    return rows.pivot_table(index="document", columns="length", values="loss_new", aggfunc="mean")


def difference(table: pd.DataFrame, minuend: str, subtrahend: str, lengths) -> pd.Series:
    """Per document: mean over ``lengths`` of minuend's loss_new - subtrahend's (nats/token), same documents."""
    lengths = list(lengths)
    diff = losses(table, minuend).reindex(columns=lengths) - losses(table, subtrahend).reindex(columns=lengths)
    return diff.mean(axis=1, skipna=False).dropna()


def doubled(lengths, pretrained_length: int) -> tuple[int | None, str]:
    """(2 L0, "") if evaluated, else (the first evaluated length past L0, a note saying so); (None, why) if none."""
    past = sorted(x for x in lengths if x > pretrained_length)
    if 2 * pretrained_length in past:
        return 2 * pretrained_length, ""
    if not past:
        return None, f"no evaluated length past L0 = {pretrained_length}"
    return past[0], f"2 L0 = {2 * pretrained_length} not evaluated: at {past[0]}, the first evaluated length past L0"


def graded(claim: claims.Claim, name: str, values: pd.Series, seed: int) -> claims.Part:
    """One part: the bootstrap mean over documents of ``values`` (``claims.bootstrap_mean``), graded."""
    return claims.part(claim, name, *claims.bootstrap_mean(values.to_numpy(), seed=seed))


def _lengths(table: pd.DataFrame) -> list[int]:
    return sorted(int(x) for x in table["length"].unique())


def _span(lengths) -> str:
    lengths = sorted(lengths)
    return f"{lengths[0]}" if len(lengths) == 1 else f"{lengths[0]}-{lengths[-1]} ({len(lengths)} lengths)"


def _lineup(table: pd.DataFrame, reference: str) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """(extensions, plain-RoPE CPT models, the paper's NTK's label or None), in the table's order."""
    variants = table.drop_duplicates("variant")[["variant", "method", "source"]]
    others = variants[variants["variant"] != reference]
    extensions = others[others["method"].isin(EXTENSIONS)]
    controls = others[others["method"] == "rope"]
    ntk = next((extensions.loc[extensions["method"] == m, "variant"].iloc[0] for m in ("ntk100", "ntk")
                if (extensions["method"] == m).any()), None)
    return extensions, controls, ntk


# ---- glance rows

def explodes(table, reference, pretrained_length, chapter, model, seed) -> dict:
    """1.1: per document, the original model's loss_new at 2 L0 minus at L0."""
    claim = claims.claim(1.1)
    lengths = _lengths(table)
    if pretrained_length not in lengths:
        return claims.not_testable(claim, f"L0 = {pretrained_length} is not among the evaluated lengths {lengths}",
                                   model, chapter)
    length, note = doubled(lengths, pretrained_length)
    if length is None:
        return claims.not_testable(claim, note, model, chapter)
    own = losses(table, reference)
    values = (own[length] - own[pretrained_length]).dropna()
    part = graded(claim, f"{reference}, {length} minus L0", values, seed)
    shown = (f"ppl of new positions {np.exp(own[pretrained_length].mean()):.4g} at L0 -> "
             f"{np.exp(own[length].mean()):.4g} at {length}")
    return claims.row(claim, [part], model, details="; ".join(x for x in (note, shown) if x), chapter=chapter)


def extrapolate(table, reference, pretrained_length, cpt_length, chapter, model, seed) -> dict:
    """1.2: (a) per extension, original minus extension past L0; (b) per other extension, it minus the
    paper's NTK past the CPT length."""
    claim = claims.claim(1.2)
    if not cpt_length:
        return claims.not_testable(claim, NEEDS_CPT, model, chapter)
    extensions, _, ntk = _lineup(table, reference)
    lengths = _lengths(table)
    past_l0 = [x for x in lengths if x > pretrained_length]
    if extensions.empty or not past_l0:
        return claims.not_testable(claim, "no RoPE extension in this line-up" if extensions.empty else
                                   f"no evaluated length past L0 = {pretrained_length}", model, chapter)
    parts = [graded(claim, f"(a) {v} below the original", difference(table, reference, v, past_l0), seed)
             for v in extensions["variant"]]
    past_cpt = [x for x in lengths if x > cpt_length]
    details = [f"(a) over lengths past L0: {_span(past_l0)}"]
    if ntk is None or len(extensions) < 2:
        details.append("(b) not measured: " + ("no NTK" if ntk is None else "no other extension") + " in this line-up")
    elif not past_cpt:
        details.append(f"(b) not measured: no evaluated length past the CPT length {cpt_length}")
    else:
        parts += [graded(claim, f"(b) {ntk} below {v}", difference(table, v, ntk, past_cpt), seed)
                  for v in extensions["variant"] if v != ntk]
        details.append(f"(b) over lengths past the CPT length {cpt_length}: {_span(past_cpt)}")
    return claims.row(claim, parts, model, details="; ".join(details), chapter=chapter)


def control(table, reference, pretrained_length, cpt_length, chapter, model, seed) -> dict:
    """1.25: per extension, plain-RoPE CPT minus the extension, past L0."""
    claim = claims.claim(1.25)
    if not cpt_length:
        return claims.not_testable(claim, NEEDS_CPT, model, chapter)
    extensions, controls, _ = _lineup(table, reference)
    past_l0 = [x for x in _lengths(table) if x > pretrained_length]
    missing = ("no plain-RoPE CPT model in this line-up" if controls.empty else
               "no RoPE extension in this line-up" if extensions.empty else
               "" if past_l0 else f"no evaluated length past L0 = {pretrained_length}")
    if missing:
        return claims.not_testable(claim, missing, model, chapter)
    rope = controls["variant"].iloc[0]
    parts = [graded(claim, f"{v} below {rope}", difference(table, rope, v, past_l0), seed)
             for v in extensions["variant"]]
    return claims.row(claim, parts, model, details=f"over lengths past L0: {_span(past_l0)}", chapter=chapter)


def training_free_pi(table, reference, pretrained_length, chapter, model, seed) -> dict:
    """1.5: (inside) PI minus the original at L0; (beyond) the original minus PI at 2 L0."""
    claim = claims.claim(1.5)
    pis = table.loc[(table["method"] == "pi") & (table["variant"] != reference), "variant"].unique()
    if not len(pis):
        return claims.not_testable(claim, "no PI in this line-up", model, chapter)
    pi = pis[0]
    lengths = _lengths(table)
    length, note = doubled(lengths, pretrained_length)
    parts, details = [], []
    if pretrained_length in lengths:
        parts.append(graded(claim, f"inside: {pi} above the original at L0",
                            difference(table, pi, reference, [pretrained_length]), seed))
    else:
        details.append(f"inside not measured: L0 = {pretrained_length} is not evaluated")
    if length is not None:
        parts.append(graded(claim, f"beyond: {pi} below the original at {length}",
                            difference(table, reference, pi, [length]), seed))
    details.append(("beyond " + note) if note else "")
    if not parts:
        return claims.not_testable(claim, "; ".join(x for x in details if x), model, chapter)
    return claims.row(claim, parts, model, details="; ".join(x for x in details if x), chapter=chapter)


def glance_rows(table: pd.DataFrame, reference: str, pretrained_length: int, cpt_length: int | None,
                chapter: str | None = None, seed: int = 0, model: str = results.ORGANISM) -> list[dict]:
    """Rows 1.1, 1.2, the control 1.25 and, on a training-free line-up (``cpt_length`` 0 or None), 1.5,
    from the per-document ``table`` of ``analysis.evaluate`` (module docstring)."""
    common = dict(chapter=chapter, model=model or results.ORGANISM, seed=seed)
    rows = [explodes(table, reference, pretrained_length, **common),
            extrapolate(table, reference, pretrained_length, cpt_length, **common),
            control(table, reference, pretrained_length, cpt_length, **common)]
    if not cpt_length:
        rows.append(training_free_pi(table, reference, pretrained_length, **common))
    return rows


# ---- prose

def key_numbers(limits: pd.DataFrame, reference: str) -> dict[str, str]:
    """The numbers the page's prose cites: limits (x L0) of the original model, each extension, the control."""
    by = limits.set_index("variant")
    extensions = by[by["method"].isin(EXTENSIONS) & (by.index != reference)]
    controls = by[(by["method"] == "rope") & (by.index != reference)]
    return {"ppl_original_limit": shown_limit(by.loc[reference]),
            "ppl_extension_limits": ", ".join(f"{v} {shown_limit(r)}" for v, r in extensions.iterrows()) or "none",
            "ppl_control_limit": shown_limit(controls.iloc[0]) if len(controls) else "none (no plain-RoPE CPT model)",
            "ppl_bar": f"{by['bar'].iloc[0]:.3g}"}
