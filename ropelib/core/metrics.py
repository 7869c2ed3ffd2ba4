"""Reductions of attention rows into the paper's statistics: small, pure functions.

Rows come from :mod:`ropelib.core.probe`: tensors whose last axis runs over keys and sums to 1.
Each function says exactly what it sums or averages over, because the paper does not.

  entropy(rows)                          H = -sum_j p_j ln p_j per row (nats; Appendix C)
  log_bins(max_distance, n)              integer edges of log-spaced relative-distance bins
  distance_profile(rows, positions, ...) attention mass per distance bin (Fig. 2), per leading index
  js_divergence(p, q, base=2)            Jensen-Shannon divergence, in bits by default (Table 1)
  mean_over(values, *axes)               average over named axes (layer, example, head, query)
  bootstrap_ci(values, ...)              percentile bootstrap confidence interval

Not here: capturing attention (``probe``), plotting, choosing which distributions to
compare (the chapters do, and say so).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import scipy.spatial.distance
import scipy.special
import scipy.stats
import torch

# Axis names of stacked probe output: torch.stack(rec.attention) is (layer, example, head, query, key).
AXES = ("layer", "example", "head", "query", "key")


def entropy(rows, dim: int = -1):
    """Shannon entropy in nats of each row: H(p) = -sum_j p_j ln p_j, with 0 ln 0 = 0.

    rows: torch.Tensor or np.ndarray of probabilities along ``dim`` (not renormalised);
    returns the same type with ``dim`` removed. Uniform over n keys: ln n; one-hot: 0.
    """
    if isinstance(rows, torch.Tensor):
        return -torch.special.xlogy(rows, rows).sum(dim=dim)
    rows = np.asarray(rows, dtype=float)
    return -scipy.special.xlogy(rows, rows).sum(axis=dim)


def log_bins(max_distance: int, n: int) -> np.ndarray:
    """Integer edges e_0 = 0 < e_1 < ... < e_k = max_distance + 1 of <= n log-spaced bins.

    Bin b holds the relative distances d (query position - key position) with
    e_b <= d < e_{b+1}; e_i = round((max_distance + 1)^(i/n)) - 1 with duplicates removed,
    so short ranges get fewer than n bins, and distance 0 (the query itself) is bin 0.
    """
    if max_distance < 0 or n < 1:
        raise ValueError(f"log_bins needs max_distance >= 0 and n >= 1, got {max_distance}, {n}")
    edges = np.round(np.geomspace(1, max_distance + 1, n + 1)).astype(np.int64) - 1
    edges[0], edges[-1] = 0, max_distance + 1
    return np.unique(edges)


def distance_profile(rows: torch.Tensor, query_positions, bins, key_offset: int = 0,
                     density: bool = False) -> torch.Tensor:
    """Attention by relative distance d = query position - key position, in distance bins.

    rows: (..., n_queries, n_keys), e.g. torch.stack(rec.attention) (layer, example, head,
    query, key); query_positions: (n_queries,) absolute positions; key column j is at
    position key_offset + j; bins: edges from :func:`log_bins`. Returns (..., n_bins)
    float64, the leading axes kept (so per (layer, example, head) profiles):

    - density=False (default): the mass m_b = sum_{j: d_ij in bin b} p_ij of each query,
      averaged over the queries, then renormalised to sum 1 over the bins (mass at
      distances beyond the last edge is dropped). A distribution over bins: what
      :func:`js_divergence` compares.
    - density=True: the mean attention per key in the bin, m_b / (number of keys of the
      query in bin b), averaged over the queries that have keys in the bin (NaN if none).
      The shape of Fig. 2's curves; not a distribution.
    """
    rows = torch.as_tensor(rows)
    edges = torch.as_tensor(np.asarray(bins), dtype=torch.long)
    n_bins = len(edges) - 1
    positions = torch.as_tensor(query_positions, dtype=torch.long)
    key_positions = key_offset + torch.arange(rows.shape[-1])
    distance = positions[:, None] - key_positions[None, :]  # (n_queries, n_keys)
    in_range = (distance >= edges[0]) & (distance < edges[-1])
    bin_of = torch.where(in_range, torch.bucketize(distance, edges, right=True) - 1, n_bins)  # n_bins = dropped
    index = bin_of.expand(rows.shape)
    mass = torch.zeros(*rows.shape[:-1], n_bins + 1, dtype=torch.float64)
    mass.scatter_add_(-1, index, rows.double())
    mass = mass[..., :n_bins]  # (..., n_queries, n_bins)
    if density:
        counts = torch.zeros(len(positions), n_bins + 1, dtype=torch.float64)
        counts.scatter_add_(-1, bin_of, torch.ones_like(bin_of, dtype=torch.float64))
        per_key = mass / counts[:, :n_bins]  # NaN where the query has no key in the bin
        return per_key.nanmean(dim=-2)
    profile = mass.mean(dim=-2)
    return profile / profile.sum(dim=-1, keepdim=True)


def js_divergence(p, q, base: float = 2.0, axis: int = -1):
    """Jensen-Shannon divergence JS(p, q) = (KL(p || m) + KL(q || m)) / 2, m = (p + q) / 2.

    scipy's ``jensenshannon`` returns the JS *distance* sqrt(JS); this returns its square,
    the divergence. Inputs are renormalised to sum 1 along ``axis``. Logarithm base
    ``base``: 2 (default) gives bits and JS in [0, 1]; e gives nats, in [0, ln 2].
    Symmetric, 0 iff p = q. Returns a float (or an array for batched input).
    """
    distance = scipy.spatial.distance.jensenshannon(_numpy(p), _numpy(q), base=base, axis=axis)
    divergence = np.square(distance)
    return float(divergence) if np.ndim(divergence) == 0 else divergence


def mean_over(values, *axes: str, names: tuple[str, ...] = AXES):
    """Average ``values`` over the named axes, keeping the others (equal weight per entry).

    ``names`` labels the axes of ``values`` in order (default :data:`AXES`, the layout of
    ``torch.stack(rec.attention)``; for entropies of it, pass names=AXES[:-1]). Example:
    mean_over(H, "layer", "head", names=AXES[:-1]) -> (example, query).
    """
    if len(names) != values.ndim:
        raise ValueError(f"values has {values.ndim} axes but names={names} has {len(names)}")
    unknown = [axis for axis in axes if axis not in names]
    if unknown:
        raise ValueError(f"unknown axis name(s) {unknown}; axes are {names}")
    dims = tuple(names.index(axis) for axis in axes)
    if isinstance(values, torch.Tensor):
        return values.mean(dim=dims) if dims else values
    return np.asarray(values).mean(axis=dims) if dims else np.asarray(values)


class Interval(NamedTuple):
    low: float
    high: float


def bootstrap_ci(values, stat: Callable = np.mean, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> Interval:
    """Percentile bootstrap confidence interval of ``stat`` over ``values`` (1-D, independent samples).

    ``n_boot`` resamples with replacement (``scipy.stats.bootstrap``, method="percentile",
    seeded by ``seed``), interval at ``level``. Percentile rather than BCa so that constant
    or tiny samples give a (degenerate) interval instead of NaN.
    """
    values = _numpy(values).astype(float).ravel()
    if values.size < 2:
        raise ValueError(f"bootstrap_ci needs at least 2 values, got {values.size}")
    result = scipy.stats.bootstrap(
        (values,), stat, n_resamples=n_boot, confidence_level=level, method="percentile",
        rng=np.random.default_rng(seed),
    )
    return Interval(float(result.confidence_interval.low), float(result.confidence_interval.high))


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)


# --- attention sinks (StreamingLLM, arXiv 2309.17453) ------------------------------------------

def sink_mass(rows, sink: int = 0):
    """Share of each row's attention on key column ``sink`` (the first token by default): p_sink.

    rows: (..., n_keys) tensor or array of probe rows (key column j at position key_offset + j,
    so column 0 is the first token when key_offset = 0). Returns (...) in [0, 1], one value
    per layer / example / head / query: StreamingLLM's surplus mass on the first token.
    """
    return (rows if isinstance(rows, torch.Tensor) else np.asarray(rows, dtype=float))[..., sink]


def without_sink(rows, sink: int = 0):
    """Rows with key column ``sink`` dropped and the rest renormalised: p_j / (1 - p_sink), j != sink.

    Returns (..., n_keys - 1), each row summing to 1 (a row with all its mass on the sink
    becomes all zeros). Dropping column 0 shifts the key positions by one: pass
    key_offset + 1 to :func:`distance_profile`. Entropy and JS of these rows are the sink-free
    statistics.
    """
    if isinstance(rows, torch.Tensor):
        kept = torch.cat([rows[..., :sink], rows[..., sink + 1:]], dim=-1)
        total = kept.sum(dim=-1, keepdim=True)
        return torch.where(total > 0, kept / torch.where(total > 0, total, 1), 0)
    rows = np.asarray(rows, dtype=float)
    kept = np.delete(rows, sink, axis=-1)
    total = kept.sum(axis=-1, keepdims=True)
    return np.divide(kept, total, out=np.zeros_like(kept), where=total > 0)
