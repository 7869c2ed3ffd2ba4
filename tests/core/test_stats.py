"""ropelib.core.stats on hand-made data with known answers."""

import itertools

import numpy as np
import pytest
import scipy.optimize
import scipy.special
import scipy.stats

from ropelib.core import stats


def brute_force_auroc(scores, positive):
    """P(s_pos > s_neg) + 1/2 P(s_pos = s_neg) over all pairs: the definition."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    wins = sum((a > b) + 0.5 * (a == b) for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auroc_equals_mann_whitney_with_ties():
    scores = [0.1, 0.4, 0.4, 0.35, 0.8, 0.9, 0.4, 0.2]
    positive = [False, False, True, False, True, True, False, True]
    u = scipy.stats.mannwhitneyu([s for s, p in zip(scores, positive) if p],
                                 [s for s, p in zip(scores, positive) if not p]).statistic
    assert stats.auroc(scores, positive) == pytest.approx(u / 16)
    assert stats.auroc(scores, positive) == pytest.approx(brute_force_auroc(scores, positive))


def test_auroc_extremes_and_empty_class():
    assert stats.auroc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert stats.auroc([1, 2, 3, 4], [True, True, False, False]) == 0.0
    assert stats.auroc([5, 5, 5, 5], [True, False, True, False]) == 0.5
    assert np.isnan(stats.auroc([1, 2], [True, True]))


def test_stratified_auroc_ignores_between_stratum_pairs():
    # within each stratum the positives score higher, but stratum B sits lower overall:
    # the pooled AUROC is hurt by cross-stratum pairs, the stratified one is perfect
    scores = [10, 11, 12, 1, 2, 3]
    positive = [False, False, True, False, True, True]
    strata = ["A", "A", "A", "B", "B", "B"]
    assert stats.stratified_auroc(scores, positive, strata) == 1.0
    assert stats.auroc(scores, positive) == pytest.approx(5 / 9)  # 12 beats 3 negatives, 2 and 3 beat one each
    # pair-weighted: sum of U over sum of n1 * n0 per stratum
    scores2 = [1, 2, 3, 3, 1, 2, 0]
    positive2 = [True, False, False, True, False, True, False]
    strata2 = [0, 0, 0, 1, 1, 1, 1]
    u = 0 + 1 + 1 + 1 + 1  # stratum 0: 1 vs {2, 3} -> 0 wins; stratum 1: 3 vs {1, 0} and 2 vs {1, 0}
    assert stats.stratified_auroc(scores2, positive2, strata2) == pytest.approx(u / (2 + 4))
    # a stratum with one class only drops out
    assert stats.stratified_auroc([1, 2, 9], [False, True, True], [0, 0, 1]) == 1.0


def test_auroc_interval_brackets_the_value_and_is_seeded():
    rng = np.random.default_rng(0)
    positive = rng.random(200) < 0.4
    scores = rng.normal(size=200) + positive
    est = stats.auroc_interval(scores, positive, n_boot=300, seed=1)
    assert est.low < est.value < est.high
    assert 0.6 < est.value < 0.9
    assert est == stats.auroc_interval(scores, positive, n_boot=300, seed=1)


def test_permutation_pvalue_small_for_separation_and_large_for_noise():
    scores = np.arange(40.0)
    positive = scores >= 20
    assert stats.permutation_pvalue(scores, positive, n_perm=200) == pytest.approx(1 / 201)
    rng = np.random.default_rng(3)
    noise = stats.permutation_pvalue(rng.normal(size=200), rng.random(200) < 0.5, n_perm=200)
    assert noise > 0.05
    # reversed separation: failures score lower, one-sided p is ~1
    assert stats.permutation_pvalue(scores, ~positive, n_perm=200) == 1.0


def test_within_strata_permutation_keeps_the_confound_out():
    # outcome fully explained by the stratum (which also shifts the score); no information within
    rng = np.random.default_rng(5)
    strata = np.repeat([0, 1], 100)
    positive = np.where(strata == 1, rng.random(200) < 0.8, rng.random(200) < 0.2)
    scores = strata * 3.0 + rng.normal(size=200)
    assert stats.permutation_pvalue(scores, positive, n_perm=200) < 0.01
    assert stats.permutation_pvalue(scores, positive, strata, n_perm=200) > 0.05


def test_logistic_regression_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    n = 5000
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = rng.random(n) < scipy.special.expit(-0.5 + 1.5 * x1 - 0.8 * x2)
    X = np.column_stack([x1, x2])
    fit = stats.logistic_regression(X, y, names=["a", "b"])
    assert fit.converged
    for i, (name, true) in enumerate((("intercept", -0.5), ("a", 1.5), ("b", -0.8))):
        est = fit.coefficient(name)
        assert est.low < est.value < est.high
        assert abs(est.value - true) < 4 * fit.se[i]  # the truth is within sampling error
    # the same optimum as a generic optimiser on the negative log-likelihood
    design = np.column_stack([np.ones(n), X])
    nll = lambda b: np.sum(np.logaddexp(0, design @ b) - y * (design @ b))  # noqa: E731
    reference = scipy.optimize.minimize(nll, np.zeros(3), method="BFGS").x
    np.testing.assert_allclose(fit.coef, reference, atol=1e-4)


def test_logistic_regression_flags_separation():
    x = np.arange(20.0)
    fit = stats.logistic_regression(x, x >= 10)
    assert not fit.converged


def test_topk_hits_on_a_hand_built_grid():
    # group A: 4 items, failing ones have the 2 highest scores -> 2 hits of 2
    # group B: 4 items, 1 failing, ranked 3rd -> 0 hits of 1
    # group C: all pass -> uninformative; group D: all fail -> uninformative
    scores = [4, 3, 2, 1, 1, 2, 3, 4, 1, 2, 5, 6]
    failed = [1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1]
    groups = list("AAAABBBBCCDD")
    top = stats.topk_hits(scores, np.array(failed, bool), groups, k=0)
    assert (top.groups, top.failing, top.hits) == (2, 3, 2)
    assert top.hit_rate == pytest.approx(2 / 3)
    assert top.chance == pytest.approx((2 * 2 / 4 + 1 * 1 / 4) / 3)
    # exact null: hits_A ~ Hypergeom(4, 2, 2), hits_B ~ Hypergeom(4, 1, 1), independent
    a = scipy.stats.hypergeom(4, 2, 2).pmf([0, 1, 2])
    b = scipy.stats.hypergeom(4, 1, 1).pmf([0, 1])
    total = np.convolve(a, b)
    assert top.p_value == pytest.approx(total[2:].sum())
    # fixed k = 2: group B's failing item (rank 3) still misses, chance is 2/4 per failing item
    top2 = stats.topk_hits(scores, np.array(failed, bool), groups, k=2)
    assert top2.hits == 2 and top2.chance == pytest.approx(0.5)


def test_topk_hits_perfect_ranking_has_small_p():
    groups = np.repeat(np.arange(10), 6)
    scores = np.tile(np.arange(6.0), 10)
    failed = scores >= 4  # the two highest of each group fail
    top = stats.topk_hits(scores, failed, groups)
    assert top.hit_rate == 1.0 and top.chance == pytest.approx(1 / 3)
    assert top.p_value == pytest.approx((1 / 15) ** 10)


def test_topk_permutation_best_p_is_the_smallest_reachable_p():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(8), 4)
    strata = np.tile(np.arange(4), 8)  # shuffles keep each position's level, as lengths do
    scores, failed = rng.normal(size=32), np.tile([False, False, True, False], 8)
    _, p, best = stats.topk_permutation(scores, failed, groups, strata, n_perm=300)
    assert best <= p and best < 0.05  # 8 groups: a perfect ranking would be significant
    # one failing item of 4, scores shuffled freely: the null hits it 1 time in 4, so no ranking is significant
    _, _, best = stats.topk_permutation(scores[:4], failed[:4], groups[:4], np.zeros(4), n_perm=300)
    assert best == pytest.approx(0.25, abs=0.08)


def test_proportion_interval():
    est = stats.proportion_interval(7, 10)
    assert est.value == 0.7 and est.low < 0.7 < est.high
    assert np.isnan(stats.proportion_interval(0, 0).value)
