"""ropelib.core.metrics: entropy, distance bins and profiles, Jensen-Shannon, averaging, bootstrap."""

import math

import numpy as np
import pytest
import torch

from ropelib.core.metrics import AXES, bootstrap_ci, distance_profile, entropy, js_divergence, log_bins, mean_over

torch.set_num_threads(1)


@pytest.mark.parametrize("n", [1, 2, 7, 4096])
def test_entropy_of_uniform_is_ln_n(n):
    assert entropy(torch.full((n,), 1.0 / n)).item() == pytest.approx(math.log(n), abs=1e-5)
    assert entropy(np.full(n, 1.0 / n)) == pytest.approx(math.log(n), abs=1e-12)


def test_entropy_of_one_hot_is_zero_and_safe_at_zero():
    rows = torch.eye(5)  # zeros everywhere but one entry: 0 ln 0 must count as 0, not NaN
    assert torch.equal(entropy(rows), torch.zeros(5))
    assert entropy(torch.tensor([0.5, 0.5, 0.0])).item() == pytest.approx(math.log(2))
    assert entropy(torch.ones(2, 3, 4) / 4, dim=-1).shape == (2, 3)


def test_log_bins():
    assert log_bins(10, 4).tolist() == [0, 1, 2, 5, 11]
    edges = log_bins(4095, 8)
    assert edges[0] == 0 and edges[-1] == 4096 and len(edges) == 9 and np.all(np.diff(edges) > 0)
    assert log_bins(2, 10).tolist() == [0, 1, 2, 3]  # fewer bins than asked on a short range
    with pytest.raises(ValueError):
        log_bins(10, 0)


def test_distance_profile_on_a_hand_built_row():
    # one query at position 5 over keys 0..5: distances 5, 4, 3, 2, 1, 0
    row = torch.tensor([[0.05, 0.05, 0.1, 0.1, 0.2, 0.5]])
    bins = [0, 1, 3, 6]  # distance {0}, {1, 2}, {3, 4, 5}
    mass = distance_profile(row, [5], bins)
    torch.testing.assert_close(mass, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))
    density = distance_profile(row, [5], bins, density=True)
    torch.testing.assert_close(density, torch.tensor([0.5, 0.15, 0.2 / 3], dtype=torch.float64))


def test_distance_profile_keeps_leading_axes_and_averages_queries():
    rows = torch.zeros(2, 3, 2, 4)  # (layer, head, query, key); queries at positions 2 and 3
    rows[..., 0, 2] = 1.0  # query 2 attends to itself: distance 0
    rows[..., 1, 0] = 1.0  # query 3 attends to key 0: distance 3
    profile = distance_profile(rows, [2, 3], [0, 1, 4])
    assert profile.shape == (2, 3, 2)
    assert torch.allclose(profile, torch.tensor([0.5, 0.5], dtype=torch.float64).expand(2, 3, 2))
    # mass beyond the last edge is dropped and the rest renormalised
    torch.testing.assert_close(distance_profile(rows[0, 0], [2, 3], [0, 1]), torch.tensor([1.0], dtype=torch.float64))
    # with a key offset, key column j is at position offset + j
    torch.testing.assert_close(distance_profile(torch.tensor([[0.0, 1.0]]), [11], [0, 1, 2], key_offset=10),
                               torch.tensor([1.0, 0.0], dtype=torch.float64))


def test_js_divergence():
    p, q = np.array([0.2, 0.3, 0.5]), np.array([0.6, 0.3, 0.1])
    assert js_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    assert js_divergence(p, q) == pytest.approx(js_divergence(q, p), abs=1e-15)
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint supports: the maximum, 1 bit
    assert js_divergence([0.5, 0.5], [1.0, 0.0]) == pytest.approx(1.5 - 0.75 * math.log2(3), abs=1e-12)  # pinned
    assert js_divergence([0.5, 0.5], [1.0, 0.0], base=math.e) == pytest.approx(
        (1.5 - 0.75 * math.log2(3)) * math.log(2), abs=1e-12)
    batched = js_divergence(torch.tensor(np.stack([p, q])), torch.tensor(np.stack([q, q])))
    assert batched.shape == (2,) and batched[1] == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
        assert 0.0 <= js_divergence(a, b) <= 1.0


def test_mean_over_named_axes():
    values = torch.arange(2 * 3 * 4 * 5, dtype=torch.float64).reshape(2, 3, 4, 5)  # (layer, example, head, query)
    names = AXES[:-1]
    torch.testing.assert_close(mean_over(values, "layer", "head", names=names), values.mean(dim=(0, 2)))
    assert mean_over(values, names=names) is values
    assert np.allclose(mean_over(values.numpy(), "query", names=names), values.numpy().mean(axis=3))
    with pytest.raises(ValueError, match="unknown axis"):
        mean_over(values, "token", names=names)
    with pytest.raises(ValueError, match="has 4 axes"):
        mean_over(values, "layer")


def test_bootstrap_ci():
    values = np.random.default_rng(1).normal(3.0, 1.0, size=200)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high and high - low < 0.5
    assert bootstrap_ci(values, seed=0) == bootstrap_ci(values, seed=0)  # seeded
    narrow = bootstrap_ci(values, level=0.5)
    assert low < narrow.low < narrow.high < high
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    low, high = bootstrap_ci(values, stat=np.median, n_boot=200)
    assert low < np.median(values) < high
    with pytest.raises(ValueError, match="at least 2 values"):
        bootstrap_ci([1.0])
