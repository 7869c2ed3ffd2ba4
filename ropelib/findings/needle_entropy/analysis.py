"""Finding 2, tested: does high attention entropy go with a failed needle?

Input: trial tables of ``tasks.needle.needle_grid`` (one row per needle: method, length,
depth, prompt, passed, three entropies, needle_mass, borrowed, answer, value), several
methods concatenated. A trial *fails* when the answer does not start with the needle's
value; a cell (method, length, depth) *fails* when fewer than half of its needles pass.
"Pooled" rows use every method at once, with (method, length) as the strata.

Entropy ``measure``: ``entropy_first`` (before anything is generated) and
``entropy_teacher`` (the true value fed) carry cause before effect and decide the verdicts;
``entropy`` (Appendix C's mean over generated tokens, conditioned on a wrong digit once one
is produced) is shown beside them. Units that are really independent: a prompt is read
by every method, so pooled intervals resample prompts (cluster bootstrap), never trials.
A stratum counts only with >= ``MIN_OUTCOME_TRIALS`` trials of each outcome.

  collect_trials(variants, ...)  the grid for every variant (the chapter's one heavy step)
  cells(trials)                  per-cell pass rate and mean entropy (``needle.cell_table``) + failed flag
  association_table(frame, ...)  per method and pooled: AUROC of entropy for failure (bootstrap CI,
                                 permutation p), raw and within length (the length confound removed)
  logistic_table(trials)         failure ~ entropy + log2 length, and ~ entropy + one intercept per length:
                                 entropy's coefficient (log-odds per nat) in each
  topk_table(cells)              the paper's two statements: failing lengths (depths) among the top-k
                                 entropies at a fixed depth (length), hit rate vs chance, exact p
  borrowed_table(trials)         failed trials whose wrong answer occurs elsewhere in the context (vs in an
                                 unseen one), attention there vs on the needle; garbled copies of the needle
  like_shaped(trials)            whether an answer is shaped like the needle's value (a number of its digits)
  borrowed_answers(trials)       one row per like-shaped wrong answer: found in own / unseen context, ln of
                                 attention per occurrence over attention on the needle (claim 2.5's units)
  verdict_tables(trials, ...)    the three tables the verdicts read (``Tables``), e.g. on the models that
                                 meet the premise
  retrieves_at_l0(trials)        the premise of 2.1-2.4, per model: pass rate at its own L0 >= 0.8
  met_tables(trials, premise)    ``verdict_tables`` on the models that meet it (None: all or none do)
  readable(table)                a table as the page prints it: "value [low, high]" columns

Not here: the statistics themselves (``ropelib.core.stats``), the estimands and rows
(``needle_entropy.verdicts``), the grading rule (``ropelib.findings.claims``), plots (``needle_entropy.plots``), models.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.stats

from ropelib.core import extensions, stats
from ropelib.findings import claims
from ropelib.findings.sweep import quiet_transformers
from ropelib.tasks import needle
from ropelib.models import variants as variant_specs
from ropelib.models.variants import ModelCache, Variant

POOLED = "pooled"
CHAPTER = "needle-entropy"
ALPHA = 0.05
MEASURES = {"entropy_first": "first answer token", "entropy_teacher": "teacher-forced",
            "entropy": "all answer tokens (Appendix C)"}
CAUSAL_MEASURES = ("entropy_first", "entropy_teacher")
MIN_OUTCOME_TRIALS = 5  # trials of each outcome a (method, length) stratum needs to count (the registry's 2.1)


def collect_trials(variants: list[Variant], factor: float, lengths: list[int], depths: list[float],
                   needles_per_cell: int, seed: int = 0, device: str = "cpu", fmt: str = "compact",
                   progress: bool = True, dtype: str = "auto", shared_haystack: bool = False,
                   lengths_of: dict[str, list[int]] | None = None) -> pd.DataFrame:
    """``needle_grid`` for every variant on the same prompts (each checkpoint loaded once).

    ``lengths_of``: a variant label's own lengths (the calibration's choice), else ``lengths``; at a length
    two variants share, they read the same prompts. ``shared_haystack``: ``needle_grid``'s (a cell's
    needles on one haystack; its prefix computed once for a real model: ``variants.shares_prefix``).
    A real model's cells are kept on disk as they finish (``ropelib.tasks.trials``): a stopped page resumes.
    Adds ``failed`` (= not passed) and ``pretrained_length`` (the checkpoint's L0) columns.
    """
    lengths_of = lengths_of or {}
    longest = max(max(lengths_of.get(v.label, lengths)) for v in variants)
    cache = ModelCache(device, dtype, longest, batch=needles_per_cell, generate_tokens=8)
    frames = []
    for variant in variants:
        loaded = cache.get(variant, factor)
        with quiet_transformers():
            frame = needle.needle_grid(loaded.model, loaded.tokenizer, lengths_of.get(variant.label, lengths), depths,
                                       needles_per_cell, seed=seed, method=variant.label, fmt=fmt, progress=progress,
                                       share_prefill=variant_specs.shares_prefill(loaded, variant),
                                       shared_haystack=shared_haystack,
                                       share_prefix=variant_specs.shares_prefix(loaded),
                                       store=variant_specs.trial_store(loaded, variant, factor, dtype))
        frames.append(frame.assign(pretrained_length=extensions.describe(loaded.model)["pretrained_length"]))
    trials = pd.concat(frames, ignore_index=True)
    trials["failed"] = ~trials["passed"].astype(bool)
    return trials


def cells(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, length, depth): pass_rate, mean entropy, trials, failed = pass_rate < 1/2."""
    table = needle.cell_table(trials)
    table["failed"] = table["pass_rate"] < 0.5
    rank = {method: i for i, method in enumerate(dict.fromkeys(trials["method"]))}  # keep the variants' order
    return table.sort_values("method", key=lambda m: m.map(rank), kind="stable").reset_index(drop=True)


def _groups(frame: pd.DataFrame):
    """(label, rows, strata) per method in order of appearance, then all methods pooled."""
    for method, rows in frame.groupby("method", sort=False):
        yield method, rows, rows["length"].to_numpy()
    strata = frame["method"].astype(str) + "@" + frame["length"].astype(str)
    yield POOLED, frame, strata.to_numpy()


def by_measure(table_of, frame: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """``table_of(frame, measure, **kwargs)`` for every entropy measure, concatenated."""
    return pd.concat([table_of(frame, measure, **kwargs) for measure in MEASURES], ignore_index=True)


def entropy_by_length(trials: pd.DataFrame) -> pd.DataFrame:
    """Mean of each entropy measure (nats) per (method, length), passed and failed trials apart."""
    table = trials.assign(outcome=np.where(trials["failed"], "failed", "passed"))
    return (table.groupby(["method", "length", "outcome"], sort=False)[list(MEASURES)].mean()
            .rename(columns=MEASURES).round(3))


def qualifying(failed: np.ndarray, strata: np.ndarray, minimum: int = MIN_OUTCOME_TRIALS) -> np.ndarray:
    """Mask of the rows whose stratum has >= ``minimum`` trials of each outcome."""
    frame = pd.DataFrame({"failed": failed.astype(bool), "stratum": strata})
    counts = frame.groupby("stratum")["failed"].agg(["sum", "size"])
    ok = counts[(counts["sum"] >= minimum) & (counts["size"] - counts["sum"] >= minimum)].index
    return frame["stratum"].isin(ok).to_numpy()


def _clusters(frame: pd.DataFrame) -> np.ndarray:
    """The independent units of a trial table: its ``haystack`` (a cell's needles sharing one), else its
    ``prompt`` (each needle on its own haystack; the same prompt is read by every model), else each row."""
    for column in ("haystack", "prompt"):
        if column in frame:
            return frame[column].to_numpy()
    return np.arange(len(frame))


def association_table(frame: pd.DataFrame, measure: str = "entropy_first", n_boot: int = 1000, n_perm: int = 1000,
                      seed: int = 0) -> pd.DataFrame:
    """AUROC of ``measure`` for ``failed``, per method and pooled; rows are trials or cells.

    auroc: all rows (length left free to act as a confounder); within: stratified AUROC,
    pairs only within one length (and method), over the strata with >= MIN_OUTCOME_TRIALS
    of each outcome ("strata" counts them; "mixed_strata" the strata with both outcomes at
    all, which the AUROC could be computed on but not judged; "haystacks" the distinct haystacks in
    the qualifying strata, the units of ``within``'s interval). Intervals: cluster bootstrap over
    haystacks (:func:`_clusters`); p: one-sided permutation test, labels shuffled within the strata
    for ``within``.
    """
    rows = []
    for label, group, strata in _groups(frame):
        scores, failed = group[measure].to_numpy(float), group["failed"].to_numpy(bool)
        clusters = _clusters(group)
        raw = stats.cluster_auroc_interval(scores, failed, None, clusters, n_boot, seed)
        keep = qualifying(failed, strata)
        row = {"method": label, "measure": measure, "n": len(group), "failed": int(failed.sum()),
               "auroc": raw.value, "auroc_low": raw.low, "auroc_high": raw.high,
               "auroc_p": stats.permutation_pvalue(scores, failed, None, n_perm, seed),
               "within": np.nan, "within_low": np.nan, "within_high": np.nan, "within_p": np.nan,
               "strata": int(len(np.unique(strata[keep]))), "haystacks": int(len(np.unique(clusters[keep]))),
               "mixed_strata": int(len(np.unique(strata[_informative(failed, strata)])))}
        if keep.any():
            within = stats.cluster_auroc_interval(scores[keep], failed[keep], strata[keep], clusters[keep], n_boot, seed)
            row.update(within=within.value, within_low=within.low, within_high=within.high,
                       within_p=stats.permutation_pvalue(scores[keep], failed[keep], strata[keep], n_perm, seed))
        rows.append(row)
    return pd.DataFrame(rows)


def _informative(failed: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Mask of the rows whose stratum has both outcomes (the others say nothing within a stratum)."""
    frame = pd.DataFrame({"failed": failed, "stratum": strata})
    share = frame.groupby("stratum")["failed"].transform("mean").to_numpy()
    return (share > 0) & (share < 1)


def logistic_table(trials: pd.DataFrame, measure: str = "entropy_first") -> pd.DataFrame:
    """Per method and pooled, two logistic regressions of failure on entropy (``stats.logistic_regression``).

    entropy_coef: logit P(fail) = b0 + b_H * entropy + b_L * log2(length), all trials; b_H is
    the change in log-odds of failure per nat at a fixed length *if* length acts linearly
    in log2(length). entropy_within: logit P(fail) = a_s + b_H * entropy with one intercept
    a_s per length (per (method, length) when pooled), fitted on the lengths that have both
    outcomes (in the others a_s runs to infinity and b_H learns nothing); no assumption on
    how length acts. 95% Wald intervals. ``converged`` False: no finite maximum (separation),
    the row says nothing.
    """
    rows = []
    for label, group, strata in _groups(trials):
        failed = group["failed"].to_numpy(bool)
        X = np.column_stack([group[measure], np.log2(group["length"])])
        fit = stats.logistic_regression(X, failed, names=["entropy", "log2_length"])
        h, length = fit.coefficient("entropy"), fit.coefficient("log2_length")
        row = {"method": label, "n": fit.n, "entropy_coef": h.value, "entropy_coef_low": h.low,
               "entropy_coef_high": h.high, "log2_length_coef": length.value, "converged": fit.converged,
               "n_within": 0, "entropy_within": np.nan, "entropy_within_low": np.nan,
               "entropy_within_high": np.nan, "converged_within": False}
        keep = _informative(failed, strata)
        if keep.any():
            dummies = pd.get_dummies(pd.Series(strata[keep]).astype(str), drop_first=True, dtype=float)
            X = np.column_stack([group[measure].to_numpy()[keep], dummies.to_numpy()])
            within = stats.logistic_regression(X, failed[keep], names=["entropy", *dummies.columns])
            h = within.coefficient("entropy")
            row.update(n_within=within.n, entropy_within=h.value, entropy_within_low=h.low,
                       entropy_within_high=h.high, converged_within=within.converged)
        rows.append(row)
    return pd.DataFrame(rows)


STATEMENTS = {
    "fixed depth: failing lengths in top-k": ("depth", "length"),
    "fixed length: failing depths in top-k": ("length", "depth"),
}


def topk_table(cell_frame: pd.DataFrame, measure: str = "entropy_first", k: int = 0, n_perm: int = 1000,
               seed: int = 0) -> pd.DataFrame:
    """The paper's two statements on cells, per method and pooled, with length controlled.

    "Fixed depth": each (method, depth) row of the heatmap is a group, its cells (one per
    length) ranked by mean ``measure``; "fixed length": each column, depths ranked. k = 0:
    k is the number of failing cells of the group. Beside the hits: ``chance`` (random
    ranking, exact hypergeometric), ``length_only`` (the hit rate of ranking by length
    alone) and ``null``/``p_value`` from :func:`stats.topk_permutation` with the cell
    entropies shuffled within each (method, length): under that null a length keeps its
    entropy level, so the hits length alone produces are not evidence. ``best_p``: the p a perfect
    hit rate (every failing cell in its group's top k) would get against the same shuffles; at
    or above 0.05 the test cannot reject its null whatever the entropies are (too few failing
    cells, or shuffles that hit as often as any ranking), so its outcome says nothing either way.
    """
    rows = []
    for statement, (fixed, _) in STATEMENTS.items():
        for label, group, _ in _groups(cell_frame):
            keys = (group["method"].astype(str) + "@" + group[fixed].astype(str)).to_numpy()
            strata = (group["method"].astype(str) + "@" + group["length"].astype(str)).to_numpy()
            top = stats.topk_hits(group[measure], group["failed"], keys, k)
            by_length = stats.topk_hits(group["length"], group["failed"], keys, k)
            null, p_value, best_p = stats.topk_permutation(group[measure], group["failed"], keys, strata, k, n_perm,
                                                           seed)
            rows.append({"statement": statement, "measure": measure, "method": label, **top._asdict(),
                         "length_only": by_length.hit_rate if fixed == "depth" else np.nan, "null": null, "p_value": p_value,
                         "best_p": best_p, "exact_p": top.p_value})
    return pd.DataFrame(rows)


# ---- borrowed answers

def like_shaped(frame: pd.DataFrame) -> pd.Series:
    """Whether each trial's answer is shaped like its needle's value: a number of the value's digit count.

    Both needle formats (``text.haystack.FORMATS``) carry a random ``digits``-digit number; the
    answer (``needle``: the decoded text cut to len(value) + 2 characters, stripped) is like-shaped
    when it begins with exactly len(value) digits (what follows, "." or a newline, is free), e.g.
    value 12345: "54321", "54321." and "54321\n#" are, "5432", "543210" and "# x" are not."""
    answer = frame["answer"].fillna("").astype(str).str.strip()
    width = frame["value"].astype(str).str.len()
    digits = answer.str.extract(r"^(\d*)", expand=False).str.len()
    return (digits == width) & frame["value"].astype(str).str.fullmatch(r"\d+")


def _digit_overlap(answer: str, value: str) -> float:
    """Share of the value's characters that the answer's first len(value) characters contain (as multisets)."""
    head = str(answer).strip()[: len(value)]
    return sum(min(head.count(c), value.count(c)) for c in set(value)) / len(value)


GARBLED = 0.8  # a wrong answer made of at least 80% of the needle's own digits is a garbled copy of it


def borrowed_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Per method and pooled, over failed trials: where did the wrong answer come from?

    number: share of wrong answers shaped like the value (:func:`like_shaped`: a retrieval of
    the wrong thing rather than noise; the others are format failures). borrowed: share whose first ``needle.BORROW_MIN``
    tokens occur elsewhere in the context (Wilson 95% CI); by_chance: share whose first
    tokens occur in an unseen prompt of the same cell (``needle``'s ``borrowed_by_chance``),
    what "found in the context" gives without any borrowing; chance_p: exact one-sided
    McNemar test of borrowed > by_chance on the same trials (binomial test of the
    discordant pairs). garbled: share of wrong answers made of the needle's own digits
    (multiset overlap >= ``GARBLED``, e.g. 82876 -> 82678), a copy of the needle gone wrong
    rather than a borrowing; garbled_chance: the same overlap with the value of the next
    needle of the cell, which the trial never saw. For the borrowed ones: median attention mass on those places
    (spread over a median of ``places`` positions) and on the needle's value, the share
    with more mass on the borrowed places, and mass_p, a one-sided Wilcoxon signed-rank
    test of that difference.
    """
    rows = []
    other_value = trials.groupby(["method", "length", "depth"], sort=False)["value"].transform(
        lambda v: np.roll(v.to_numpy(), -1))  # the next needle of the same cell
    overlap = [_digit_overlap(a, str(v)) >= GARBLED for a, v in zip(trials["answer"], trials["value"])]
    overlap_chance = [_digit_overlap(a, str(v)) >= GARBLED for a, v in zip(trials["answer"], other_value)]
    failed = trials.assign(garbled=overlap, garbled_chance=overlap_chance)[trials["failed"]]
    for label, group, _ in _groups(failed):
        own, chance = group["borrowed"].astype(bool), group["borrowed_by_chance"].astype(bool)
        share = stats.proportion_interval(int(own.sum()), len(group))
        only_own, only_chance = int((own & ~chance).sum()), int((chance & ~own).sum())
        row = {"method": label, "failed": len(group),
               "number": float(like_shaped(group).mean()) if len(group) else np.nan,
               "borrowed": share.value, "borrowed_low": share.low, "borrowed_high": share.high,
               "garbled": float(group["garbled"].mean()) if len(group) else np.nan,
               "garbled_chance": float(group["garbled_chance"].mean()) if len(group) else np.nan,
               "by_chance": float(chance.mean()) if len(group) else np.nan,
               "chance_p": (scipy.stats.binomtest(only_own, only_own + only_chance, alternative="greater").pvalue
                            if only_own + only_chance else np.nan),
               "places": np.nan, "mass_borrowed": np.nan, "mass_needle": np.nan, "more_on_borrowed": np.nan,
               "mass_p": np.nan}
        hit = group[own]
        if len(hit):
            difference = hit["borrowed_mass"] - hit["needle_mass"]
            row.update(places=float(hit["borrowed_count"].median()), mass_borrowed=float(hit["borrowed_mass"].median()),
                       mass_needle=float(hit["needle_mass"].median()), more_on_borrowed=float((difference > 0).mean()))
            if (difference != 0).any():
                row["mass_p"] = float(scipy.stats.wilcoxon(difference, alternative="greater").pvalue)
        rows.append(row)
    return pd.DataFrame(rows)


def occurrences(frame: pd.DataFrame) -> pd.Series:
    """How many places in its own context each wrong answer's first ``needle.BORROW_MIN`` tokens occur at.

    Exact from ``borrowed_positions`` (the start of every occurrence, the first 20 kept) below 20;
    at 20 (the list cut) max(20, borrowed_count / BORROW_MIN), a lower bound (``borrowed_count``:
    distinct positions of the union of the occurrences, BORROW_MIN each when none overlap);
    without the column (older tables) borrowed_count / BORROW_MIN. 0 where not borrowed."""
    spread = frame["borrowed_count"].astype(float) / needle.BORROW_MIN
    if "borrowed_positions" not in frame:
        return spread.where(frame["borrowed"].astype(bool), 0.0)
    listed = frame["borrowed_positions"].map(lambda x: 0 if pd.isna(x) else len(str(x).split())).astype(float)
    count = listed.where(listed < 20, np.maximum(listed, spread))
    return count.where(frame["borrowed"].astype(bool), 0.0)


def borrowed_answers(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per failed trial whose wrong answer is shaped like the value (:func:`like_shaped`), the
    units of claim 2.5: method, length, depth, prompt, answer, value; ``own`` (its first
    ``needle.BORROW_MIN`` tokens occur elsewhere in its own context), ``unseen`` (they occur in an
    unseen prompt of the same cell, ``borrowed_by_chance``); for the ``own`` ones ``occurrences``
    (:func:`occurrences`) and ``log_ratio`` = ln((borrowed_mass / occurrences) / needle_mass): the
    attention of the answer tokens on one occurrence of the borrowed string against that on the
    needle's value (NaN when not own, or a mass is 0). Both masses are sums over key positions,
    averaged over layers, heads and answer tokens; an occurrence spans BORROW_MIN tokens, the
    value all of its tokens (as many or more: the ratio leans against the claim)."""
    failed = trials[trials["failed"].astype(bool)]
    frame = failed[like_shaped(failed)]
    count = occurrences(frame)
    own = frame["borrowed"].astype(bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(frame["borrowed_mass"].astype(float) / count / frame["needle_mass"].astype(float))
    ratio = ratio.where(own & np.isfinite(ratio))
    return pd.DataFrame({"method": frame["method"], "length": frame["length"], "depth": frame["depth"],
                         "prompt": frame["prompt"], "answer": frame["answer"], "value": frame["value"],
                         "own": own, "unseen": frame["borrowed_by_chance"].astype(bool), "occurrences": count,
                         "log_ratio": ratio}).reset_index(drop=True)


# ---- what the verdicts read, and the premise of 2.1-2.4

PREMISE_PASS_RATE = claims.premise_threshold()  # the registry's "retrieves at L0": pass rate on the page's L0 trials


class Tables(NamedTuple):
    """What the verdicts read: ``association`` and ``topk`` (every measure, :func:`by_measure`) and
    ``answers`` (:func:`borrowed_answers`)."""
    association: pd.DataFrame
    topk: pd.DataFrame
    answers: pd.DataFrame


def verdict_tables(trials: pd.DataFrame, top_k: int = 0, n_boot: int = 1000, seed: int = 0) -> Tables:
    """The three tables the verdicts read, computed on ``trials`` (e.g. the models that meet a premise)."""
    return Tables(by_measure(association_table, trials, n_boot=n_boot, n_perm=n_boot, seed=seed),
                  by_measure(topk_table, cells(trials), k=top_k, n_perm=n_boot, seed=seed),
                  borrowed_answers(trials))


def retrieves_at_l0(trials: pd.DataFrame, threshold: float = PREMISE_PASS_RATE) -> pd.DataFrame:
    """Per model (``method``, in the line-up's order): L0 (its ``pretrained_length``), its trials at
    length L0, their pass rate and ``meets`` = pass rate >= ``threshold``. A model with no trial at
    its L0 (L0 not among the page's lengths) has pass rate NaN and does not meet it (unchecked)."""
    rows = []
    for method, group in trials.groupby("method", sort=False):
        l0 = int(group["pretrained_length"].iloc[0]) if "pretrained_length" in group else 0
        at = group[group["length"] == l0]
        rate = claims.pass_rates_at(group.assign(passed=group["passed"].astype(bool)), [method], l0)[method]
        rows.append({"method": method, "L0": l0, "trials": len(at), "pass_rate": rate,
                     "meets": bool(len(at) and rate >= threshold)})
    return pd.DataFrame(rows, columns=["method", "L0", "trials", "pass_rate", "meets"])


def met_tables(trials: pd.DataFrame, premise: pd.DataFrame, top_k: int = 0, n_boot: int = 1000,
               seed: int = 0) -> Tables | None:
    """:func:`verdict_tables` on the trials of the models that meet the premise (``retrieves_at_l0``);
    None when every model meets it or none does (the rows then need no recomputation)."""
    meets = premise.loc[premise["meets"].astype(bool), "method"]
    if len(meets) in (0, len(premise)):
        return None
    return verdict_tables(trials[trials["method"].isin(meets)], top_k, n_boot, seed)


# ---- printing

def readable(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """For the page: ``x`` with ``x_low``/``x_high`` as one "x [low, high]" column; p-values to 3 significant digits."""
    out = table.copy()
    for column in table.columns:
        low, high = f"{column}_low", f"{column}_high"
        if low in table.columns and high in table.columns:
            out[column] = [f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if np.isfinite(v) else "n/a"
                           for v, lo, hi in zip(table[column], table[low], table[high])]
            out = out.drop(columns=[low, high])
        elif column == "p" or column.endswith(("_p", "p_value")):
            out[column] = [f"{p:.3g}" if np.isfinite(p) else "n/a" for p in table[column]]
    return out.round(digits)


def pooled_row(table: pd.DataFrame, **where) -> pd.Series:
    mask = table["method"] == POOLED
    for column, value in where.items():
        mask &= table[column] == value
    return table[mask].iloc[0]
