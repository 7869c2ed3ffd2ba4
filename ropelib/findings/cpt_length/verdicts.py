"""Finding 3's statistics, rules, verdicts and glance rows (who is compared: ``cpt_length``).

Four claims of the paper, one glance row each, every one "not testable" when a checkpoint it
compares is missing, or (claims on needles passed only) missed its retrieval gate
(``cpt_length.testability`` per role: entropy is measured on any checkpoint). Every model
answers the same prompts, so all statistics are paired:

  entropy_slopes(trials, short, long, from_length)
      mean TEACHER-FORCED answer entropy (``entropy_teacher``: the true value fed, identical
      inputs whatever the model answers) per length; its OLS slope against ln L over
      L >= from_length per model (``length_sweep.slope_fit``); d_slope = slope(long) -
      slope(short) with a paired bootstrap 95% CI over prompts (seeded); flattening =
      -d_slope * ln(L_max / from_length), the nats by which the long model's entropy rises less
      over that range. The level gaps (long - short) at the grid's shortest and longest length
      are reported; the one at the shortest, inside both training lengths, is an offset the
      models already had there, not the effect.
  paired_cells / compare / comparisons
      per cell (length, depth) beyond the short CPT length (and in the two bands BANDS: within
      the long CPT length, beyond both): pass-rate and entropy differences, bootstrap 95% CIs
      over cells, one-sided Wilcoxon signed-rank p for "second lower"

  3.1  flatter  d_slope CI below 0 and flattening >= MIN_ENTROPY_DROP (RULE_FLATTER): slopes, not levels
  3.2  passes   long CPT passes more needles at lengths in (short, long CPT length] (RULE_PASSES):
                inside the long model's own training length, not extrapolation
  3.25 passes   the same beyond both CPT lengths (extrapolation)
  3.3  little   short CPT minus base teacher-forced entropy beyond the short CPT length within
                +-MIN_ENTROPY_DROP (RULE_LITTLE_CHANGE): the paper's "barely changes" is about
                entropy; the pass-rate change is shown beside it

  judge(trials, roles, short_length)      the statistics the rules read (all None without a pair)
  glance_rows(...), verdict_lines(rows)   the rows, and the page's lines for them
  tables_text(judgement)                  the slopes and the paired comparisons, as the page prints them
  write_results(sweep, judgement, rows)   the chapter's tables and glance rows (``results``)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats

from ropelib.core import metrics
from ropelib import results
from ropelib.findings.cpt_length import analysis as cpt_length
from ropelib.findings import sweep as length_sweep
from ropelib.findings.verdicts import graded
from ropelib.tasks import needle

CHAPTER = "cpt-length"
TEACHER, APPENDIX_C = "entropy_teacher", "entropy"  # the judged entropy; the paper's all-token mean
N_BOOT = 2000  # bootstrap resamples of the prompts (seeded)
# "much lower entropy" needs an effect, not only a sign: 0.1 nats shrinks the effective
# number of attended keys, exp(H), by about 10% (exp(-0.1) = 0.905). Fixed before any real run.
MIN_ENTROPY_DROP = 0.1
MARGIN = MIN_ENTROPY_DROP  # equivalence margin (nats) on an entropy difference for "little to no change"
# comparison name -> (first, second) roles and the band of lengths: (exclusive low, inclusive high) names
BANDS = {"long vs short, within the long CPT length": ("short_length", "long_length"),
         "long vs short, beyond both": ("long_length", None)}


def _why_not(reasons: dict[str, str], roles: tuple[str, ...]) -> str:
    return "; ".join(dict.fromkeys(reasons[r] for r in roles if reasons.get(r)))


# --- statistics -------------------------------------------------------------------------


def paired_cells(trials: pd.DataFrame, first: str, second: str, beyond: int, column: str = TEACHER,
                 upto: int | None = None) -> pd.DataFrame:
    """Per cell (beyond < length <= upto, depth) measured for both methods: pass rate and entropy (``column``)
    of each, and second - first."""
    cells = needle.cell_table(trials)
    cells = cells[(cells["length"] > beyond) & (cells["length"] <= (upto or np.inf))].set_index(["length", "depth"])
    columns = {"pass_rate": "pass_rate", column: "entropy"}
    a = cells[cells["method"] == first][list(columns)].rename(columns=columns)
    b = cells[cells["method"] == second][list(columns)].rename(columns=columns)
    pairs = a.add_suffix("_first").join(b.add_suffix("_second"), how="inner")
    pairs["d_pass"] = pairs["pass_rate_second"] - pairs["pass_rate_first"]
    pairs["d_entropy"] = pairs["entropy_second"] - pairs["entropy_first"]
    return pairs.reset_index()


def _ci(values: np.ndarray) -> tuple[float, float]:
    if values.size < 2:
        return float("nan"), float("nan")
    if np.all(values == values[0]):  # a constant difference: the bootstrap interval is that value
        return float(values[0]), float(values[0])
    return tuple(metrics.bootstrap_ci(values))


def wilcoxon_less(differences) -> float:
    """One-sided Wilcoxon signed-rank p for "the differences are centred below 0" (1.0 if all are 0)."""
    d = np.asarray(differences, dtype=float)
    if not np.any(d != 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about ties and zeros; the p-value stays valid
        return float(scipy.stats.wilcoxon(d, alternative="less").pvalue)


def compare(pairs: pd.DataFrame) -> dict:
    """Mean per-cell differences (second - first) with bootstrap 95% CIs over cells, and the Wilcoxon p."""
    d_entropy, d_pass = pairs["d_entropy"].to_numpy(float), pairs["d_pass"].to_numpy(float)
    e_low, e_high = _ci(d_entropy)
    p_low, p_high = _ci(d_pass)
    return {"cells": len(pairs), "d_entropy": float(d_entropy.mean()) if len(pairs) else float("nan"),
            "entropy_ci_low": e_low, "entropy_ci_high": e_high, "p_entropy_lower": wilcoxon_less(d_entropy),
            "d_pass": float(d_pass.mean()) if len(pairs) else float("nan"), "pass_ci_low": p_low, "pass_ci_high": p_high}


def comparisons(trials: pd.DataFrame, base: str, short: str, long: str, beyond: int,
                references: tuple[str, ...] = (), column: str = TEACHER, long_length: int | None = None) -> pd.DataFrame:
    """Paired comparisons over cells beyond ``beyond``, one row each: short -> long, base -> short, each
    further reference -> short (shown, not judged), and with ``long_length`` short -> long in each of
    :data:`BANDS` (``upto``: the band's inclusive top, empty for none)."""
    pairs = [("long vs short", short, long, beyond, None), ("short vs base", base, short, beyond, None)]
    pairs += [(f"short vs {reference}", reference, short, beyond, None) for reference in references]
    if long_length:
        bounds = {"short_length": beyond, "long_length": long_length, None: None}
        pairs += [(name, short, long, bounds[low], bounds[high]) for name, (low, high) in BANDS.items()]
    return pd.DataFrame([{"comparison": name, "first": first, "second": second, "beyond": low, "upto": high,
                          **compare(paired_cells(trials, first, second, low, column, high))}
                         for name, first, second, low, high in pairs])


def _level_gap(fit: length_sweep.SlopeFit, j: int) -> tuple[float, float, float]:
    gap = fit.boot_means[:, j, 1] - fit.boot_means[:, j, 0]
    point = float(fit.means.iloc[j, 1] - fit.means.iloc[j, 0])
    return point, float(np.percentile(gap, 2.5)), float(np.percentile(gap, 97.5))


def entropy_slopes(trials: pd.DataFrame, short: str, long: str, from_length: int, column: str = TEACHER,
                   n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Slopes of mean ``column`` against ln L (L >= from_length) of both models, their paired difference with
    a bootstrap 95% CI over prompts, the flattening in nats, and the level gaps (long - short) at the
    grid's shortest length (inside both training lengths when <= ``from_length``, the short CPT length) and
    longest length."""
    fit = length_sweep.slope_fit(trials, [short, long], from_length, column, n_boot, seed)
    d = fit.boot_slopes[:, 1] - fit.boot_slopes[:, 0]
    d_slope = float(fit.slopes[long] - fit.slopes[short])
    span = math.log(fit.lengths[-1] / fit.lengths[0])
    shortest = int(trials["length"].min())
    everything = length_sweep.slope_fit(trials, [short, long], shortest, column, n_boot, seed) \
        if shortest < fit.lengths[0] else fit
    first_gap, last_gap = _level_gap(everything, 0), _level_gap(fit, len(fit.lengths) - 1)
    return {"column": column, "from_length": fit.lengths[0], "max_length": fit.lengths[-1],
            "lengths": len(fit.lengths), "slope_short": float(fit.slopes[short]), "slope_long": float(fit.slopes[long]),
            "d_slope": d_slope, "d_slope_ci_low": float(np.percentile(d, 2.5)), "span": span,
            "d_slope_ci_high": float(np.percentile(d, 97.5)), "flattening": -d_slope * span,
            "shortest_length": shortest, "shortest_inside_both": shortest <= from_length, "gap_shortest": first_gap[0], "gap_shortest_ci_low": first_gap[1],
            "gap_shortest_ci_high": first_gap[2], "gap_longest": last_gap[0], "gap_longest_ci_low": last_gap[1],
            "gap_longest_ci_high": last_gap[2]}


def _significant(x):
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def tables_text(judgement: "Judgement") -> str:
    """The page's two tables, as text (3 significant digits): the slopes and level gaps per entropy
    measure (columns), and the paired comparisons over cells (columns); a line when nothing was compared."""
    if judgement.table is None:
        return "no short/long CPT pair: nothing compared"
    slopes = pd.DataFrame([judgement.slopes, judgement.all_token]).set_index("column").T
    shown = judgement.table.drop(columns=["first", "second", "beyond"]).set_index("comparison").T
    return (f"slopes against ln L and level gaps (long - short), per entropy measure\n"
            f"{slopes.map(_significant).to_string()}\n\npaired over cells beyond the short CPT length "
            f"(teacher-forced entropy)\n{shown.map(_significant).to_string()}")


# --- rules and glance rows ------------------------------------------------------------

PRECONDITION = "not testable if a checkpoint the claim compares is missing (entropy needs no retrieval gate); "
PASS_PRECONDITION = "not testable if a checkpoint the claim compares is missing or missed its retrieval gate; "
RULE_FLATTER = (PRECONDITION + f"replicated if the long-CPT model's slope of mean teacher-forced answer entropy "
                f"against ln L, over lengths from the short CPT length up, is below the short-CPT model's (paired "
                f"bootstrap 95% CI of the difference below 0) and the flattening over that range, "
                f"-(slope difference) x ln(L_max / L_short), is at least {MIN_ENTROPY_DROP} nats; partly if the CI "
                f"is below 0 but the flattening smaller; not replicated if even the CI's largest flattening is "
                f"below {MIN_ENTROPY_DROP} nats; else inconclusive. The level gap at the shortest length, inside both training lengths, is reported, "
                f"not counted")
RULE_PASSES = (PASS_PRECONDITION + "mean paired pass-rate difference (long - short) over cells {band}, bootstrap "
               "95% CI over cells: replicated if above 0, not replicated if at or below 0, else inconclusive")
RULE_LITTLE_CHANGE = (PRECONDITION + f"replicated if the 95% CI of the short-CPT minus base (NTK switch, untrained) "
                      f"mean teacher-forced entropy over cells beyond the short CPT length lies within "
                      f"+-{MARGIN} nats (equivalence margin, the effect size of 3.1); not replicated if it lies "
                      f"outside; else inconclusive. The pass-rate change is shown, not judged")


def verdict_flatter(c: dict | None, testable: bool = True) -> str:
    if not testable or c is None or not math.isfinite(c["d_slope"]):
        return "not testable"
    if c["d_slope_ci_high"] < 0:  # the long model's rise is flatter, significantly
        return "replicated" if c["flattening"] >= MIN_ENTROPY_DROP else "partly"
    most = -c["d_slope_ci_low"] * c["span"]  # the largest flattening (nats) the CI allows
    return "not replicated" if most < MIN_ENTROPY_DROP else "inconclusive"


def verdict_more_passes(c: dict | None, testable: bool = True) -> str:
    if not testable or c is None or not math.isfinite(c["d_pass"]) or not c.get("cells", 1):
        return "not testable"
    return graded(c["pass_ci_low"], c["pass_ci_high"])


def verdict_little_change(c: dict | None, testable: bool = True, margin: float = MARGIN) -> str:
    """Equivalence on the entropy difference: CI inside +-margin replicated, wholly outside not, else inconclusive."""
    if not testable or c is None or not math.isfinite(c["d_entropy"]):
        return "not testable"
    low, high = c["entropy_ci_low"], c["entropy_ci_high"]
    if -margin <= low and high <= margin:
        return "replicated"
    return "not replicated" if high < -margin or low > margin else "inconclusive"


def _flatter_row(slopes: dict, all_token: dict | None) -> tuple:
    s = slopes
    details = (f"slopes of teacher-forced entropy vs ln L over {s['from_length']}-{s['max_length']} tokens: short "
               f"{s['slope_short']:.3g}, long {s['slope_long']:.3g} nats per ln L; flattening {s['flattening']:.3g} "
               f"nats; level gap (long - short) at {s['shortest_length']} "
               f"({'inside both training lengths' if s['shortest_inside_both'] else 'the shortest length evaluated'}"
               f": reported, not counted) {s['gap_shortest']:+.3g} [{s['gap_shortest_ci_low']:.3g}, "
               f"{s['gap_shortest_ci_high']:.3g}]"
               f", at {s['max_length']} {s['gap_longest']:+.3g}")
    if all_token is not None:
        details += (f"; Appendix C all-token entropy (conditioned on the model's own errors): slope difference "
                    f"{all_token['d_slope']:+.3g}, level gap at {all_token['max_length']} {all_token['gap_longest']:+.3g}")
    return f"{s['d_slope']:+.3g} nats per ln L (slope, long - short)", s["d_slope_ci_low"], s["d_slope_ci_high"], details


def _band(c: dict) -> str:
    upto = c.get("upto")
    has_top = upto is not None and not (isinstance(upto, float) and math.isnan(upto))
    return f"in ({int(c['beyond'])}, {int(upto)}] tokens" if has_top else f"beyond {int(c['beyond'])} tokens"


def _pass_row(c: dict, name: str, short_length: int) -> tuple:
    return (f"{c['d_pass']:+.3g} pass rate ({name})", c["pass_ci_low"], c["pass_ci_high"],
            f"{int(c['cells'])} cells {_band(c)}; teacher-forced entropy {c['d_entropy']:+.3g} "
            f"[{c['entropy_ci_low']:.3g}, {c['entropy_ci_high']:.3g}] nats, one-sided Wilcoxon p = "
            f"{c['p_entropy_lower']:.2g}")


def _entropy_row(c: dict, name: str, short_length: int) -> tuple:
    return (f"{c['d_entropy']:+.3g} nats teacher-forced entropy ({name})", c["entropy_ci_low"], c["entropy_ci_high"],
            f"{int(c['cells'])} cells {_band(c)}; pass rate (shown, not judged) {c['d_pass']:+.3g} "
            f"[{c['pass_ci_low']:.3g}, {c['pass_ci_high']:.3g}]")


CLAIMS = {
    3.1: ("Long-context CPT flattens the rise of attention entropy with length beyond the short CPT length",
          "much lower entropy at long lengths (below 5 nats at ~64K)", RULE_FLATTER),
    3.2: ("Long-context CPT passes more needles within its own training length, beyond the short CPT length",
          "far more needles passed", RULE_PASSES.format(band="in (short CPT length, long CPT length]")),
    3.25: ("Long-context CPT passes more needles beyond both CPT lengths (extrapolation)",
           "far more needles passed", RULE_PASSES.format(band="beyond the long CPT length")),
    3.3: ("Short-context CPT leaves the base model's attention entropy beyond its length as it was",
          "little to no change from the original", RULE_LITTLE_CHANGE),
}
# the role each claim gives its checkpoints (``findings.verdicts.ROLE_NEEDS_RETRIEVAL``)
CLAIM_ROLES = {3.1: "attention", 3.2: "retrieval", 3.25: "retrieval", 3.3: "attention"}


def glance_rows(reasons: dict[str, str], slopes: dict | None, all_token: dict | None, table: pd.DataFrame | None,
                short_length: int, attention_reasons: dict[str, str] | None = None) -> list[dict]:
    """Finding 3's three claims (:data:`CLAIMS`) for the glance page, one row each, sub-statistics in ``details``.

    ``reasons``: :func:`testability`; ``slopes`` / ``all_token``: :func:`entropy_slopes` on the
    teacher-forced and on the Appendix C entropy (None without a pair); ``table``:
    :func:`comparisons` (None without a pair). ``reasons`` are the retrieval role's (:data:`CLAIM_ROLES`),
    ``attention_reasons`` the entropy claims' (default: ``reasons``). A claim whose checkpoints are
    unfit for its role is "not testable", its reason in ``details``. Without the bands of
    :data:`BANDS` in ``table``, 3.2 reads every cell beyond the short CPT length and 3.25 is not testable.
    """
    by_role = {"retrieval": reasons, "attention": attention_reasons if attention_reasons is not None else reasons}
    models = {3.1: ("short", "long"), 3.2: ("short", "long"), 3.25: ("short", "long"), 3.3: ("base", "short")}
    why = {order: _why_not(by_role[CLAIM_ROLES[order]], models[order]) for order in CLAIMS}
    frame = table.set_index("comparison") if table is not None else None

    def comparison(name):
        return None if frame is None or name not in frame.index else frame.loc[name].to_dict()
    within, beyond = list(BANDS)
    computed = {3.1: slopes, 3.2: comparison(within) or comparison("long vs short"), 3.25: comparison(beyond),
                3.3: comparison("short vs base")}
    if frame is not None and computed[3.25] is None:
        why[3.25] = why[3.25] or "no long CPT length given: no band beyond both"
    judged = {order: None if why[order] else c for order, c in computed.items()}
    verdicts = {3.1: verdict_flatter(judged[3.1]), 3.2: verdict_more_passes(judged[3.2]),
                3.25: verdict_more_passes(judged[3.25]), 3.3: verdict_little_change(judged[3.3])}
    shown = {3.1: _flatter_row(computed[3.1], all_token) if computed[3.1] else None,
             3.2: _pass_row(computed[3.2], "long - short", short_length) if computed[3.2] else None,
             3.25: _pass_row(computed[3.25], "long - short", short_length) if computed[3.25] else None,
             3.3: _entropy_row(computed[3.3], "short - base", short_length) if computed[3.3] else None}
    rows = []
    for order, (claim, paper, rule) in CLAIMS.items():
        if verdicts[order] == "not testable":  # the reason first; statistics computed anyway are shown, not judged
            ours, low, high = "not testable", None, None
            details = why[order] or "no comparison computed"
            details += f"; computed, not judged: {shown[order][0]}, {shown[order][3]}" if shown[order] else ""
        else:
            ours, low, high, details = shown[order]
        rows.append(results.glance_row(order, "Finding 3", claim, paper, ours, verdicts[order], rule, CHAPTER, low,
                                       high, kind="paper", details=details))
    return rows


@dataclass
class Judgement:
    table: pd.DataFrame | None  # comparisons (teacher-forced entropy)
    slopes: dict | None  # entropy_slopes on the teacher-forced entropy (judged)
    all_token: dict | None  # the same on Appendix C's all-token entropy (shown)


def judge(trials: pd.DataFrame, roles: cpt_length.Roles, short_length: int, seed: int = 0,
          long_length: int | None = None) -> Judgement:
    """The statistics of the rules; all None when the page has no short/long pair."""
    if not roles.has_pair:
        return Judgement(None, None, None)
    short, long = roles.short.label, roles.long.label
    table = comparisons(trials, roles.base.label, short, long, beyond=short_length,
                        references=tuple(r.label for r in roles.references), long_length=long_length)
    return Judgement(table, entropy_slopes(trials, short, long, short_length, seed=seed),
                     entropy_slopes(trials, short, long, short_length, column=APPENDIX_C, seed=seed))


def verdict_lines(rows: list[dict]) -> list[str]:
    """Each claim: verdict, ours with its CI, details (what the page prints)."""
    lines = []
    for row in rows:
        ci = f", 95% CI [{row['ci_low']:.3g}, {row['ci_high']:.3g}]" if row["ci_low"] is not None else ""
        lines.append(f"{row['order']} {row['claim']}: {row['verdict'].upper()}\n  ours: {row['ours']}{ci}\n"
                     f"  {row['details']}")
    return lines


def write_results(sweep, judgement: Judgement, rows: list[dict]) -> None:
    """finding3-needles, -perplexity, -comparisons and -slopes tables (those computed), and glance-finding3."""
    results.write_csv(sweep.trials.drop(columns=["trial"]), "finding3-needles")
    results.write_csv(sweep.perplexity, "finding3-perplexity")
    if judgement.table is not None:
        results.write_csv(judgement.table, "finding3-comparisons")
        results.write_csv(pd.DataFrame([judgement.slopes, judgement.all_token]), "finding3-slopes")
    results.write_glance(rows, "finding3")
