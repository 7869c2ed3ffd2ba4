"""Finding 3's estimands and glance rows (who is compared: ``cpt_length.analysis``).

Four claims of the paper, registry entries 3.1, 3.2, 3.25 and 3.3 of ``chapters/claims.yml``, one
glance row each, every one graded by the registry's one rule (``claims.row``). Every model answers
the same prompts (length, depth, needle: ``sweep.prompt_table``), so every estimand is
paired over prompts, the registry's unit:

  3.1  slope: per model, the OLS slope of mean TEACHER-FORCED answer entropy (``entropy_teacher``:
       the true value fed, identical inputs whatever the model answers) against ln L over
       L >= the short CPT length (``sweep.slope_fit``); estimand = slope(long) - slope(short),
       95% CI by a paired bootstrap over prompts (resampled within each length, the same draw for
       both models, seeded); n = prompts. Direction -1. Shown beside it: the flattening in nats,
       -d_slope x ln(L_max / L_short), the level gaps (long - short) at the grid's shortest and
       longest length, and the same slopes on Appendix C's all-token entropy.
  3.2  pass rate: mean over prompts at lengths in (short, long CPT length] of passed(long) -
       passed(short), percentile bootstrap over prompts (``claims.bootstrap_mean``). Direction +1.
  3.25 the same at lengths beyond the long CPT length (extrapolation).
  3.3  entropy: mean over prompts beyond the short CPT length of entropy_teacher(short) -
       entropy_teacher(base), bootstrap over prompts. Direction 0 (no change within +- sesoi).

Premise of 3.2 and 3.25 (a caveat, not a switch): "retrieves at L0", pass rate >= 0.8 on this
page's own trials at L0 for both CPT models. Both rows are graded on every prompt; a model below
it is one caveat line, and the sensitivity line (the same estimand on the prompts of models that
meet it) has no units then. "Not testable" only without a short/long pair: nothing to compare.

  paired_prompts(trials, first, second, beyond, upto)   per prompt: both models' values, second - first
  compare(pairs), comparisons(...)                      mean paired differences with bootstrap CIs
  entropy_slopes(...)                                    the 3.1 statistics
  retrieval_at(trials, methods, length), premise(...)    the "retrieves at L0" caveats
  judge(trials, roles, ...), judge_methods(...)          -> Judgement (what the rows read)
  glance_rows(judgement), verdict_lines(rows)            the rows, and the page's lines for them
  tables_text(judgement), write_results(...)             the page's tables and the chapter's CSVs

Not here: the grading rule (``ropelib.findings.claims``), who is compared and the checks before any
work (``cpt_length.analysis``), running the models (``findings.sweep``), plots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ropelib import results
from ropelib.findings import claims
from ropelib.findings import sweep
from ropelib.findings.cpt_length import analysis as cpt_length

CHAPTER = "cpt-length"
TEACHER, APPENDIX_C = "entropy_teacher", "entropy"  # the graded entropy; the paper's all-token mean (shown)
N_BOOT = claims.N_BOOT  # bootstrap resamples of the prompts (seeded)
# comparison name -> the band of lengths: (exclusive low, inclusive high) names; None: no top
BANDS = {"long vs short, within the long CPT length": ("short_length", "long_length"),
         "long vs short, beyond both": ("long_length", None)}
WITHIN, BEYOND_BOTH = BANDS


# ---- paired comparisons over prompts

def paired_prompts(trials: pd.DataFrame, first: str, second: str, beyond: int, column: str = TEACHER,
                   upto: int | None = None) -> pd.DataFrame:
    """Per prompt (length, depth, needle) with beyond < length <= upto answered by both methods: passed and
    entropy (``column``) of each, and d_pass, d_entropy = second - first."""
    answered = trials[trials["method"].isin([first, second])].astype({"passed": float})
    pairs = pd.concat({name: sweep.prompt_table(answered, value)[[first, second]]
                       for name, value in (("pass", "passed"), ("entropy", column))}, axis=1, join="inner")
    lengths = pairs.index.get_level_values("length")
    pairs = pairs[(lengths > beyond) & (lengths <= (upto or np.inf))]
    pairs.columns = [f"{name}_{'first' if method == first else 'second'}" for name, method in pairs.columns]
    for name in ("pass", "entropy"):
        pairs[f"d_{name}"] = pairs[f"{name}_second"] - pairs[f"{name}_first"]
    return pairs.dropna().reset_index()


def compare(pairs: pd.DataFrame, seed: int = 0) -> dict:
    """Mean paired differences (second - first) of pass and entropy with percentile-bootstrap 95% CIs over
    prompts (``claims.bootstrap_mean``; every difference equal gives a zero-width interval, left as it is)."""
    e_mean, e_low, e_high, n = claims.bootstrap_mean(pairs["d_entropy"], seed=seed)
    p_mean, p_low, p_high, _ = claims.bootstrap_mean(pairs["d_pass"], seed=seed)
    return {"prompts": n, "d_entropy": e_mean, "entropy_ci_low": e_low, "entropy_ci_high": e_high,
            "d_pass": p_mean, "pass_ci_low": p_low, "pass_ci_high": p_high}


def comparisons(trials: pd.DataFrame, base: str, short: str, long: str, beyond: int, long_length: int,
                references: tuple[str, ...] = (), column: str = TEACHER, seed: int = 0) -> pd.DataFrame:
    """Paired comparisons over prompts, one row each: short -> long beyond ``beyond`` (the short CPT length),
    base -> short (3.3), each further reference -> short (shown), and short -> long in each of :data:`BANDS`
    (3.2, 3.25; ``upto``: the band's inclusive top, empty for none)."""
    pairs = [("long vs short", short, long, beyond, None), ("short vs base", base, short, beyond, None)]
    pairs += [(f"short vs {reference}", reference, short, beyond, None) for reference in references]
    bounds = {"short_length": beyond, "long_length": long_length, None: None}
    pairs += [(name, short, long, bounds[low], bounds[high]) for name, (low, high) in BANDS.items()]
    table = pd.DataFrame([{"comparison": name, "first": first, "second": second, "beyond": low, "upto": high,
                           **compare(paired_prompts(trials, first, second, low, column, high), seed)}
                          for name, first, second, low, high in pairs])
    return table.astype({"upto": "Int64"})


# ---- 3.1: slopes of entropy against ln L

def _level_gap(fit: sweep.SlopeFit, j: int) -> tuple[float, float, float]:
    gap = fit.boot_means[:, j, 1] - fit.boot_means[:, j, 0]
    point = float(fit.means.iloc[j, 1] - fit.means.iloc[j, 0])
    return point, float(np.percentile(gap, 2.5)), float(np.percentile(gap, 97.5))


def entropy_slopes(trials: pd.DataFrame, short: str, long: str, from_length: int, column: str = TEACHER,
                   n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Slopes of mean ``column`` against ln L (L >= from_length) of both models; d_slope = slope(long) -
    slope(short) with its paired bootstrap 95% CI over prompts and ``prompts`` (the units: prompts at
    L >= from_length answered by both); shown beside it, the flattening -d_slope x ln(L_max / L_min) in
    nats and the level gaps (long - short) at the grid's shortest and longest length."""
    fit = sweep.slope_fit(trials, [short, long], from_length, column, n_boot, seed)
    d = fit.boot_slopes[:, 1] - fit.boot_slopes[:, 0]
    d_slope = float(fit.slopes[long] - fit.slopes[short])
    span = math.log(fit.lengths[-1] / fit.lengths[0])
    prompts = sweep.prompt_table(trials[trials["method"].isin([short, long])], column)
    n = int((prompts.index.get_level_values("length") >= from_length).sum())
    shortest = int(trials["length"].min())
    everything = sweep.slope_fit(trials, [short, long], shortest, column, n_boot, seed) \
        if shortest < fit.lengths[0] else fit
    first_gap, last_gap = _level_gap(everything, 0), _level_gap(fit, len(fit.lengths) - 1)
    return {"column": column, "from_length": fit.lengths[0], "max_length": fit.lengths[-1],
            "lengths": len(fit.lengths), "prompts": n,
            "slope_short": float(fit.slopes[short]), "slope_long": float(fit.slopes[long]),
            "d_slope": d_slope, "d_slope_ci_low": float(np.percentile(d, 2.5)),
            "d_slope_ci_high": float(np.percentile(d, 97.5)), "span": span, "flattening": -d_slope * span,
            "shortest_length": shortest, "shortest_inside_both": shortest <= from_length,
            "gap_shortest": first_gap[0], "gap_shortest_ci_low": first_gap[1], "gap_shortest_ci_high": first_gap[2],
            "gap_longest": last_gap[0], "gap_longest_ci_low": last_gap[1], "gap_longest_ci_high": last_gap[2]}


# ---- the premise "retrieves at L0" (3.2, 3.25): a caveat, not a switch

retrieval_at = claims.pass_rates_at  # method -> pass rate at a length, this page's trials
premise = claims.below_premise  # one caveat line per model under the registry's threshold


# ---- what the rows read

@dataclass
class Judgement:
    table: pd.DataFrame | None  # comparisons (teacher-forced entropy); None without a pair
    slopes: dict | None  # entropy_slopes on the teacher-forced entropy (graded, 3.1)
    all_token: dict | None  # the same on Appendix C's all-token entropy (shown)
    at_L0: dict = field(default_factory=dict)  # CPT model -> pass rate at L0 on this page's trials
    pretrained_length: int = 0


def judge_methods(trials: pd.DataFrame, base: str, short: str, long: str, short_length: int, long_length: int,
                  pretrained_length: int, references: tuple[str, ...] = (), seed: int = 0) -> Judgement:
    """Every statistic the rows read, for the models labelled ``base``, ``short`` and ``long``."""
    table = comparisons(trials, base, short, long, short_length, long_length, references, seed=seed)
    return Judgement(table, entropy_slopes(trials, short, long, short_length, seed=seed),
                     entropy_slopes(trials, short, long, short_length, column=APPENDIX_C, seed=seed),
                     retrieval_at(trials, [short, long], pretrained_length), pretrained_length)


def judge(trials: pd.DataFrame, roles: cpt_length.Roles, short_length: int, long_length: int,
          seed: int = 0) -> Judgement:
    """:func:`judge_methods` on the page's roles; nothing computed (every row not testable) without a pair."""
    if not roles.has_pair:
        return Judgement(None, None, None, {}, roles.pretrained_length)
    return judge_methods(trials, roles.base.label, roles.short.label, roles.long.label, short_length, long_length,
                         roles.pretrained_length, tuple(r.label for r in roles.references), seed)


# ---- glance rows

NO_PAIR = "no short/long CPT pair in the line-up (short_model / long_model): nothing to compare"


def _band(c: dict) -> str:
    upto = c.get("upto")
    return f"lengths in ({int(c['beyond'])}, {int(upto)}]" if pd.notna(upto) else f"lengths beyond {int(c['beyond'])}"


def _flatter_row(claim: claims.Claim, s: dict, all_token: dict | None, model: str) -> dict:
    part = claims.part(claim, "slope difference (long - short)", s["d_slope"], s["d_slope_ci_low"],
                       s["d_slope_ci_high"], s["prompts"])
    details = (f"slopes of teacher-forced entropy vs ln L over {s['from_length']}-{s['max_length']} tokens: short "
               f"{s['slope_short']:.3g}, long {s['slope_long']:.3g} nats per ln L; flattening {s['flattening']:.3g} "
               f"nats over that range; level gap (long - short) at {s['shortest_length']} "
               f"({'inside both training lengths' if s['shortest_inside_both'] else 'the shortest length evaluated'}"
               f": shown, not graded) {s['gap_shortest']:+.3g} [{s['gap_shortest_ci_low']:.3g}, "
               f"{s['gap_shortest_ci_high']:.3g}], at {s['max_length']} {s['gap_longest']:+.3g}")
    if all_token is not None:
        details += (f"; Appendix C all-token entropy (conditioned on the model's own errors, shown): slope difference "
                    f"{all_token['d_slope']:+.3g}, level gap at {all_token['max_length']} {all_token['gap_longest']:+.3g}")
    return claims.row(claim, [part], model, ours=f"{s['d_slope']:+.3g} nats per ln L (slope, long - short)",
                      details=details, chapter=CHAPTER)


def _pass_row(claim: claims.Claim, c: dict, at_L0: dict, length: int, model: str) -> dict:
    band = _band(c)
    part = claims.part(claim, f"pass rate, long - short, {band}", c["d_pass"], c["pass_ci_low"], c["pass_ci_high"],
                       c["prompts"])
    caveats = premise(at_L0, length)
    details = (f"{int(c['prompts'])} prompts, {band}; teacher-forced entropy (shown) {c['d_entropy']:+.3g} "
               f"[{c['entropy_ci_low']:.3g}, {c['entropy_ci_high']:.3g}] nats; pass rate at L0 = {length}: "
               + ", ".join(f"{m} {r:.3g}" for m, r in at_L0.items()))
    return claims.row(claim, [part], model, ours=f"{c['d_pass']:+.3g} pass rate (long - short)", details=details,
                      caveats=caveats, sensitivity=[] if caveats else None, chapter=CHAPTER)


def _entropy_row(claim: claims.Claim, c: dict, model: str) -> dict:
    band = _band(c)
    part = claims.part(claim, f"teacher-forced entropy, short - base, {band}", c["d_entropy"], c["entropy_ci_low"],
                       c["entropy_ci_high"], c["prompts"])
    details = (f"{int(c['prompts'])} prompts, {band}; pass rate (shown, not graded) {c['d_pass']:+.3g} "
               f"[{c['pass_ci_low']:.3g}, {c['pass_ci_high']:.3g}]")
    return claims.row(claim, [part], model, ours=f"{c['d_entropy']:+.3g} nats teacher-forced entropy (short - base)",
                      details=details, chapter=CHAPTER)


ORDERS = (3.1, 3.2, 3.25, 3.3)


def glance_rows(judgement: Judgement, model: str = results.ORGANISM) -> list[dict]:
    """Finding 3's four rows (:data:`ORDERS`), graded by ``claims.row``; "not testable" only without a pair."""
    model = model or results.ORGANISM
    if judgement.table is None:
        return [claims.not_testable(claims.claim(order), NO_PAIR, model, chapter=CHAPTER) for order in ORDERS]
    by = judgement.table.set_index("comparison")
    L0 = judgement.pretrained_length
    return [_flatter_row(claims.claim(3.1), judgement.slopes, judgement.all_token, model),
            _pass_row(claims.claim(3.2), by.loc[WITHIN].to_dict(), judgement.at_L0, L0, model),
            _pass_row(claims.claim(3.25), by.loc[BEYOND_BOTH].to_dict(), judgement.at_L0, L0, model),
            _entropy_row(claims.claim(3.3), by.loc["short vs base"].to_dict(), model)]


def verdict_lines(rows: list[dict]) -> list[str]:
    """Each claim: verdict, ours with its CI, parts and details, caveats and the sensitivity line (the page's)."""
    lines = []
    for row in rows:
        ci = f", 95% CI [{row['ci_low']:.3g}, {row['ci_high']:.3g}]" if row["ci_low"] is not None else ""
        extra = "".join(f"\n  {name}: {row[key]}" for name, key in (("caveats", "caveats"),
                                                                   ("sensitivity", "sensitivity")) if row.get(key))
        lines.append(f"{row['order']} {row['claim']}: {row['verdict'].upper()}\n  ours: {row['ours']}{ci}\n"
                     f"  {row['details']}{extra}")
    return lines


# ---- tables

def _significant(x):
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def tables_text(judgement: Judgement) -> str:
    """The page's two tables, as text (3 significant digits): the slopes and level gaps per entropy
    measure (columns), and the paired comparisons over prompts (columns); a line when nothing was compared."""
    if judgement.table is None:
        return "no short/long CPT pair: nothing compared"
    slopes = pd.DataFrame([judgement.slopes, judgement.all_token]).set_index("column").T
    shown = judgement.table.drop(columns=["first", "second", "beyond"]).set_index("comparison").T
    return (f"slopes against ln L and level gaps (long - short), per entropy measure\n"
            f"{slopes.map(_significant).to_string()}\n\npaired over prompts (second - first; teacher-forced "
            f"entropy)\n{shown.map(_significant).to_string()}")


def write_results(sweep, judgement: Judgement, rows: list[dict], model: str = results.ORGANISM) -> None:
    """finding3-needles, -perplexity, -comparisons and -slopes tables (those computed), and glance-finding3,
    named for ``model`` (``results.named``)."""
    results.write_csv(sweep.trials.drop(columns=["trial"]), "finding3-needles", model=model)
    results.write_csv(sweep.perplexity, "finding3-perplexity", model=model)
    if judgement.table is not None:
        results.write_csv(judgement.table, "finding3-comparisons", model=model)
        results.write_csv(pd.DataFrame([judgement.slopes, judgement.all_token]), "finding3-slopes", model=model)
    results.write_glance(rows, "finding3", model=model)
