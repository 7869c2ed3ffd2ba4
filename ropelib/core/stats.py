"""Does a score predict a binary outcome? AUROC, its uncertainty, and confound controls.

Written for finding 2 (does attention entropy predict a failed needle?) but generic:
every function takes plain arrays, ``scores`` (higher = predicted positive) and
``positive`` (bool, the outcome, e.g. "the needle was not retrieved").

  auroc(scores, positive)                   Mann-Whitney AUROC, ties count 1/2
  stratified_auroc(scores, positive, strata) AUROC over pairs drawn from the same stratum
  auroc_interval(...)                       percentile bootstrap CI, resampling within (stratum, class)
  cluster_auroc_interval(...)               the same resampling whole clusters (e.g. one prompt read by
                                            several models), the unit that is really independent
  permutation_pvalue(...)                   one-sided permutation test, labels shuffled within strata
  topk_permutation(...)                     top-k hits against scores shuffled within strata (e.g. within a
                                            length: what length alone produces is kept in the null)
  logistic_regression(X, y)                 maximum likelihood by Newton/IRLS, Wald CIs
  topk_hits(scores, failed, groups, k)      "are the failing items among the top-k scores of their group?"
  proportion_interval(successes, n)         Wilson interval of a share

Not here: attention, models, or which columns of a needle table are used (that is
``ropelib.findings.needle_entropy.analysis``). numpy and scipy only (no sklearn).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.special
import scipy.stats


def _arrays(scores, positive, strata=None):
    scores = np.asarray(scores, dtype=float).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    # strata as integer codes 0..S-1 (any labels accepted; ints make the resampling loops cheap)
    if strata is None:
        strata = np.zeros(len(scores), dtype=int)
    else:
        strata = np.unique(np.asarray(strata).ravel(), return_inverse=True)[1]
    if not len(scores) == len(positive) == len(strata):
        raise ValueError(f"lengths differ: scores {len(scores)}, positive {len(positive)}, strata {len(strata)}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    return scores, positive, strata


def _u_and_pairs(scores: np.ndarray, positive: np.ndarray) -> tuple[float, int]:
    """Mann-Whitney U of the positives and the number of (positive, negative) pairs.

    U = R_1 - n_1 (n_1 + 1) / 2 with R_1 the sum of the positives' mid-ranks, i.e.
    U = sum over pairs of [1(s_pos > s_neg) + 1/2 * 1(s_pos = s_neg)].
    """
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.0, 0
    ranks = scipy.stats.rankdata(scores)  # mid-ranks for ties
    return float(ranks[positive].sum() - n_pos * (n_pos + 1) / 2), n_pos * n_neg


def auroc(scores, positive) -> float:
    """Area under the ROC curve of ``scores`` for ``positive``: A = U / (n_1 n_0).

    A = P(s_i > s_j) + 1/2 P(s_i = s_j) for a random positive i and negative j: 0.5 means
    no association, 1 perfect separation with positives scoring higher. NaN if a class is empty.
    """
    scores, positive, _ = _arrays(scores, positive)
    u, pairs = _u_and_pairs(scores, positive)
    return u / pairs if pairs else float("nan")


def stratified_auroc(scores, positive, strata) -> float:
    """AUROC over pairs drawn from the same stratum: A = sum_s U_s / sum_s n_1s n_0s.

    The probability that, in a random (positive, negative) pair *of the same stratum*, the
    positive scores higher (ties 1/2); each stratum counts by its number of pairs. Strata
    with one class only have no pairs and drop out. Controls for a confounder that
    defines the strata (here: context length, which drives both entropy and failure).
    NaN if no stratum has both classes.
    """
    scores, positive, strata = _arrays(scores, positive, strata)
    u_total, pairs_total = 0.0, 0
    for s in np.unique(strata):
        u, pairs = _u_and_pairs(scores[strata == s], positive[strata == s])
        u_total, pairs_total = u_total + u, pairs_total + pairs
    return u_total / pairs_total if pairs_total else float("nan")


class Estimate(NamedTuple):
    value: float
    low: float
    high: float


def auroc_interval(scores, positive, strata=None, n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95) -> Estimate:
    """(Stratified) AUROC with a percentile bootstrap CI.

    Each resample draws, with replacement, as many items as there are in every (stratum,
    class) cell, from that cell: the class counts stay fixed (as in pROC's stratified
    bootstrap), so no resample lacks a class. Items are treated as independent.
    ``strata=None``: plain AUROC.
    """
    scores, positive, strata = _arrays(scores, positive, strata)
    value = stratified_auroc(scores, positive, strata)
    if not np.isfinite(value):
        return Estimate(value, float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    cells = [np.flatnonzero((strata == s) & (positive == c)) for s in np.unique(strata) for c in (False, True)]
    cells = [c for c in cells if len(c)]
    draws = np.empty(n_boot)
    for b in range(n_boot):
        index = np.concatenate([rng.choice(c, size=len(c), replace=True) for c in cells])
        draws[b] = stratified_auroc(scores[index], positive[index], strata[index])
    alpha = (1 - level) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return Estimate(value, float(low), float(high))


def cluster_auroc_interval(scores, positive, strata, clusters, n_boot: int = 1000, seed: int = 0,
                           level: float = 0.95) -> Estimate:
    """Stratified AUROC with a cluster bootstrap CI: each resample draws whole clusters with
    replacement and keeps all their rows, so rows that share a cluster (the same prompt read
    by several models) are never counted as independent. NaN CI with fewer than 2 clusters."""
    scores, positive, strata = _arrays(scores, positive, strata)
    value = stratified_auroc(scores, positive, strata)
    codes = np.unique(np.asarray(clusters).ravel(), return_inverse=True)[1]
    members = [np.flatnonzero(codes == c) for c in range(codes.max() + 1)] if len(codes) else []
    if not np.isfinite(value) or len(members) < 2:
        return Estimate(value, float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        index = np.concatenate([members[c] for c in rng.integers(0, len(members), len(members))])
        draw = stratified_auroc(scores[index], positive[index], strata[index])
        if np.isfinite(draw):
            draws.append(draw)
    alpha = (1 - level) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha]) if draws else (np.nan, np.nan)
    return Estimate(value, float(low), float(high))


def permutation_pvalue(scores, positive, strata=None, n_perm: int = 1000, seed: int = 0) -> float:
    """One-sided p-value of H0 "scores carry no information on the outcome" vs "positives score higher".

    The outcome labels are shuffled within each stratum (so the strata's class counts, and
    with them any confounding by stratum, are kept), the (stratified) AUROC recomputed, and
    p = (1 + #{A_perm >= A_obs}) / (1 + n_perm); the smallest possible p is 1/(1 + n_perm).
    """
    scores, positive, strata = _arrays(scores, positive, strata)
    observed = stratified_auroc(scores, positive, strata)
    if not np.isfinite(observed):
        return float("nan")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    shuffled = positive.copy()
    exceed = 0
    for _ in range(n_perm):
        for g in groups:
            shuffled[g] = rng.permutation(positive[g])
        exceed += stratified_auroc(scores, shuffled, strata) >= observed - 1e-12
    return (1 + exceed) / (1 + n_perm)


@dataclass
class LogisticFit:
    names: list[str]
    coef: np.ndarray  # (p,) maximum-likelihood coefficients, intercept first
    se: np.ndarray  # (p,) Wald standard errors sqrt(diag((X^T W X)^-1))
    low: np.ndarray  # (p,) Wald interval coef -/+ z se
    high: np.ndarray
    converged: bool  # False: no finite maximum (e.g. separation) within max_iter; do not trust the numbers
    iterations: int
    n: int

    def coefficient(self, name: str) -> Estimate:
        i = self.names.index(name)
        return Estimate(float(self.coef[i]), float(self.low[i]), float(self.high[i]))


def logistic_regression(X, y, names: list[str] | None = None, level: float = 0.95, max_iter: int = 50,
                        tol: float = 1e-8) -> LogisticFit:
    """Logistic regression P(y = 1 | x) = 1 / (1 + exp(-(b_0 + x . b))) by Newton's method (IRLS).

    X: (n, p) predictors without the intercept column (added here); y: (n,) bool.
    Each step solves (X^T W X) delta = X^T (y - mu), W = diag(mu (1 - mu)), until
    max |delta| < tol. Standard errors from the inverse Fisher information at the optimum,
    Wald intervals b -/+ z_{(1+level)/2} se. Under (quasi-)separation the likelihood has no
    finite maximum: coefficients run away, fitted probabilities reach 0 or 1 and ``converged``
    is False.
    """
    X = np.asarray(X, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    y = np.asarray(y, dtype=float).ravel()
    design = np.column_stack([np.ones(len(y)), X])  # (n, p + 1)
    names = ["intercept", *(names or [f"x{i}" for i in range(X.shape[1])])]
    beta = np.zeros(design.shape[1])
    converged, iterations = False, 0
    for iterations in range(1, max_iter + 1):
        mu = scipy.special.expit(design @ beta)
        weights = mu * (1 - mu)
        information = design.T @ (design * weights[:, None])  # (p+1, p+1) Fisher information
        try:
            delta = np.linalg.solve(information, design.T @ (y - mu))
        except np.linalg.LinAlgError:
            break
        beta = beta + delta
        if np.max(np.abs(delta)) < tol:
            converged = True
            break
    eta = design @ beta  # (n,) fitted log-odds
    mu = scipy.special.expit(eta)
    information = design.T @ (design * (mu * (1 - mu))[:, None])
    with np.errstate(all="ignore"):
        try:
            se = np.sqrt(np.diag(np.linalg.inv(information)))
        except np.linalg.LinAlgError:
            se = np.full_like(beta, np.nan)
    # separation shows as fitted probabilities numerically 0 or 1 (|log-odds| > 25: 1e-11 from 0 or 1)
    converged = converged and bool(np.all(np.isfinite(se))) and float(np.max(np.abs(eta))) < 25
    z = scipy.stats.norm.ppf((1 + level) / 2)
    return LogisticFit(names, beta, se, beta - z * se, beta + z * se, converged, iterations, len(y))


class TopK(NamedTuple):
    groups: int  # informative groups: at least one failing and one passing item
    failing: int  # failing items in those groups
    hits: int  # failing items ranked within the top k of their group
    hit_rate: float  # hits / failing
    chance: float  # expected hit rate under a random ranking within each group
    p_value: float  # P(hits >= observed) under random rankings (exact)


def topk_hits(scores, failed, groups, k: int = 0) -> TopK:
    """Are the failing items of each group among its k highest scores? Hit rate vs chance.

    In every group g (e.g. the cells of one depth row, ranked by mean entropy) with n_g
    items of which F_g fail, 0 < F_g < n_g (other groups say nothing and are skipped),
    take the k_g = min(k, n_g) highest-scoring items (k = 0: k_g = F_g, "are the failing
    items exactly the top F_g?"); ties broken by input order. hits_g = failing items among
    them. Under a random ranking hits_g ~ Hypergeometric(n_g, F_g, k_g), mean F_g k_g / n_g;
    groups are independent, so the null distribution of sum_g hits_g is the convolution of
    the groups' pmfs and the p-value P(sum >= observed) is exact.
    """
    scores, failed, groups = _arrays(scores, failed, groups)
    hits = failing = n_groups = 0
    expected = 0.0
    null = np.array([1.0])  # pmf of the total number of hits under H0
    for g in np.unique(groups):
        member = groups == g
        n, f = int(member.sum()), int(failed[member].sum())
        if f == 0 or f == n:
            continue
        k_g = min(k or f, n)
        order = np.argsort(-scores[member], kind="stable")
        hits += int(failed[member][order[:k_g]].sum())
        failing, n_groups = failing + f, n_groups + 1
        expected += f * k_g / n
        null = np.convolve(null, scipy.stats.hypergeom(n, f, k_g).pmf(np.arange(min(f, k_g) + 1)))
    if failing == 0:
        return TopK(0, 0, 0, float("nan"), float("nan"), float("nan"))
    p_value = float(min(1.0, null[hits:].sum()))
    return TopK(n_groups, failing, hits, hits / failing, expected / failing, p_value)


def topk_permutation(scores, failed, groups, strata, k: int = 0, n_perm: int = 1000,
                     seed: int = 0) -> tuple[float, float, float]:
    """(null mean hit rate, one-sided p, best p) of :func:`topk_hits` when ``scores`` are
    shuffled within ``strata`` (groups and outcomes fixed). With strata = lengths, a length's
    entropy level is kept in every shuffle, so hits that length alone produces are not
    evidence. best p: the p a perfect hit rate would get against the same shuffles, the
    smallest p the test can give, P(a shuffle hits every failing item)."""
    scores, failed, strata = _arrays(scores, failed, strata)
    observed = topk_hits(scores, failed, groups, k)
    if not np.isfinite(observed.hit_rate):
        return float("nan"), float("nan"), float("nan")
    codes = np.unique(np.asarray(groups).ravel(), return_inverse=True)[1]
    informative = [np.flatnonzero(codes == g) for g in range(codes.max() + 1)]
    informative = [m for m in informative if 0 < failed[m].sum() < len(m)]
    tops = [(m, min(k or int(failed[m].sum()), len(m))) for m in informative]

    def hit_rate(values):  # topk_hits' count without its exact null: the permutations are the null here
        return sum(int(failed[m][np.argsort(-values[m], kind="stable")[:top]].sum()) for m, top in tops) \
            / observed.failing

    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    shuffled, rates = scores.copy(), []
    for _ in range(n_perm):
        for m in members:
            shuffled[m] = rng.permutation(scores[m])
        rates.append(hit_rate(shuffled))
    rates = np.asarray(rates)
    exceed, perfect = int((rates >= observed.hit_rate - 1e-12).sum()), int((rates >= 1.0 - 1e-12).sum())
    return float(rates.mean()), (1 + exceed) / (1 + n_perm), (1 + perfect) / (1 + n_perm)


def proportion_interval(successes: int, n: int, level: float = 0.95) -> Estimate:
    """Share successes / n with its Wilson score interval (``scipy.stats.binomtest``). NaN if n = 0."""
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"))
    ci = scipy.stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return Estimate(successes / n, float(ci.low), float(ci.high))
