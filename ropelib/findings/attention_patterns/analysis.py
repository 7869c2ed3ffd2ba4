"""Chapter "Attention patterns at and beyond the pretrained length" (Fig. 2, Table 1): capture and statistics.

The paper leaves its attention statistics under-specified; this module fixes them:

- **Sequences**: the first ``n_sequences`` test-split documents with >= ``length`` tokens,
  truncated to ``length`` (one BOS first), the same for every model.
- **Queries**: per sequence, the last token plus ``n_queries - 1`` positions drawn without
  replacement from the last quarter [length - length // 4, length - 1), seeded by
  (seed, sequence index): the same positions for every model.
- **Rows**: each query's post-softmax attention over its visible keys, in every layer and
  head, from ``ropelib.core.probe`` (never the L x L matrix; reduced to profiles inside the
  capture, so a 32K-token sequence of a 7B model needs O(layers * heads * bins) memory).
- **Bins**: ``metrics.log_bins(length - 1, n_bins)`` over relative distance d = query - key.
- **mass** (layer, sequence, head, bin): ``distance_profile`` with density=False, the
  attention mass per bin averaged over the queries: a distribution over the bins.
- **density**: attention per key in each bin (density=True): the y axis of Fig. 2.
- **local**: density on the bins ``log_bins(3 L0 / 4 - 1, n_bins)``, the distances
  d < 3 L0 / 4. Every query of an L0-token sequence (all in its last quarter) sees all of
  them, and none of them is the first token (an attention sink, at d = query position), so
  a model's local curve at any length can be set against the original model's at L0.

- **Attention sink** (StreamingLLM, arXiv 2309.17453): ``sink`` (layer, sequence, head) is
  the attention on position 0 (the BOS), averaged over the queries; ``mass_no_sink`` is
  ``mass`` with position 0 removed from every row and the row renormalised; ``entropy`` and
  ``entropy_no_sink`` are the rows' entropies (nats) with and without it. Every statistic
  below can be recomputed without the sink, to see whether a finding rests on it.

Statistics, each with a percentile bootstrap 95% CI over sequences
(``metrics.bootstrap_ci``), both models resampled with the same sequence indices (they
read the same text):

- **JS** (Table 1): P(b) = mean over layers, heads, sequences of mass[l, s, h, b] (equal
  weight each), a model's *mean attention distribution*; JS(P, Q) in bits (log base 2, in
  [0, 1]) = (KL(P || M) + KL(Q || M)) / 2, M = (P + Q) / 2.
- **gap** (Fig. 2's "comes back to the L0 pattern"): a(b), r(b) = local density averaged
  the same way, of the model at its length and of the original model at L0; gap = mean
  over the local bins of |log10 a(b) / r(b)|, the average vertical distance between the
  two curves on Fig. 2's log axis, in orders of magnitude (0.3 = a factor of 2).
- **log ratio** (the claims' estimand, ``chapters/claims.yml`` 1.3, 1.35, 1.4): of two models'
  statistics against the same target, ln(S(first) / S(second)), with a paired percentile
  bootstrap over sequences: each resample draws sequence indices once and computes both
  statistics on them (``paired_log_ratio``, ``log_ratio_table``).

Not here: the verdicts and paper comparison (``verdicts``), the figure (``plots``), capturing
itself (``probe``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ropelib.tasks import trials
from ropelib.progress import progress as progress_bar
from ropelib.core import metrics, probe
from ropelib.models import variants as variants_lib
from ropelib.tasks.common import check_memory
from ropelib.tasks.perplexity import long_documents
from ropelib.models.variants import ModelCache, Variant

@dataclass
class Profiles:
    """One model's attention profiles at one length; arrays are (layer, sequence, head, bin) float64."""

    label: str
    method: str
    length: int
    edges: np.ndarray  # bin edges of mass and density (relative distance, tokens)
    local_edges: np.ndarray  # bin edges of local (distances < 3 L0 / 4)
    mass: np.ndarray
    density: np.ndarray
    local: np.ndarray
    mass_no_sink: np.ndarray
    sink: np.ndarray  # (layer, sequence, head): attention on position 0, mean over queries
    entropy: np.ndarray  # (layer, sequence, head): row entropy (nats), mean over queries
    entropy_no_sink: np.ndarray


@dataclass
class Capture:
    """Everything the chapter measured: each model at ``length``, and the reference at L0."""

    length: int
    at_length: dict[str, Profiles]  # label -> profiles, in the order captured
    reference_at_l0: Profiles


def parse_models(variant_specs: list[str], reference: str,
                 long_reference: str) -> tuple[list[Variant], Variant, Variant | None]:
    """The chapter's variants, the original model and the natively long model (None when not
    given: the comparison with it is skipped), checked before loading."""
    native = variants_lib.parse([long_reference], "long_reference")[0] if long_reference else None
    return variants_lib.parse(variant_specs), variants_lib.parse([reference], "reference")[0], native


def query_positions(length: int, n_queries: int, seed: int | tuple[int, ...]) -> np.ndarray:
    """Sorted query positions: ``length - 1`` plus n_queries - 1 distinct draws from the last quarter.

    ``seed`` seeds numpy's generator (an int, or a tuple such as (seed, sequence index)).
    """
    start = length - max(1, length // 4)
    pool = np.arange(start, length - 1)
    if n_queries < 1 or n_queries - 1 > len(pool):
        raise ValueError(f"n_queries={n_queries}: the last quarter of {length} tokens holds {len(pool) + 1} positions")
    drawn = np.random.default_rng(seed).choice(pool, size=n_queries - 1, replace=False)
    return np.sort(np.append(drawn, length - 1))


def profiles(model, tokenizer, length: int, n_sequences: int, n_queries: int, n_bins: int, local_length: int,
             seed: int, label: str = "", method: str = "", documents=None, progress: bool = True,
             store=trials.NOTHING) -> Profiles:
    """Capture one model's attention on the chapter's sequences and reduce it to profiles (module docstring).
    ``store``: where each sequence's reduced profiles are kept (``ropelib.tasks.trials``: a real model's page resumes)."""
    # reduce() moves each layer's rows to the CPU at once: per query at most 4 x n_bins + 3 numbers are kept
    check_memory(model, length, probe_queries=n_queries, probe_mode="reduced", bins=4 * n_bins + 3, use_cache=False,
                 full_logits=False)
    edges = metrics.log_bins(length - 1, n_bins)
    local_edges = metrics.log_bins(local_length - 1, n_bins)
    device = next(model.parameters()).device
    per_sequence = []
    docs = long_documents(tokenizer, length, n_sequences, documents)
    for index, (_, ids) in enumerate(progress_bar(docs, desc=f"attention {label}".strip(), disable=None if progress else True)):
        positions = query_positions(length, n_queries, (seed, index))

        def reduce(rows: torch.Tensor) -> torch.Tensor:
            rows = rows[0].cpu()  # (head, query, key): batch of one
            free = metrics.without_sink(rows)  # key column j is now position j + 1
            per_head = torch.stack([metrics.sink_mass(rows).mean(-1), metrics.entropy(rows).mean(-1),
                                    metrics.entropy(free).mean(-1)], dim=-1)  # (head, 3)
            return torch.cat([metrics.distance_profile(rows, positions, edges),
                              metrics.distance_profile(rows, positions, edges, density=True),
                              metrics.distance_profile(rows, positions, local_edges, density=True),
                              metrics.distance_profile(free, positions, edges, key_offset=1), per_head], dim=-1)

        def run() -> dict:
            with torch.no_grad(), probe.capture(model, queries=positions.tolist(), reduce=reduce) as rec:
                model(torch.tensor([ids[:length]], device=device), use_cache=False, logits_to_keep=1)
            return {"profiles": torch.stack(rec.attention).numpy()}  # (layer, head, 3 * bins + local bins + 3)

        inputs = {"ids": trials.digest(ids[:length]), "queries": trials.digest(positions), "n_bins": n_bins,
                  "local_length": local_length}
        per_sequence.append(store.arrays("attention-profiles", inputs, run)["profiles"])
    stacked = np.stack(per_sequence, axis=1)  # (layer, sequence, head, 3 * bins + local bins + 3)
    n, k = len(edges) - 1, len(local_edges) - 1
    return Profiles(label, method, length, edges, local_edges, stacked[..., :n], stacked[..., n:2 * n],
                    stacked[..., 2 * n:2 * n + k], stacked[..., 2 * n + k:3 * n + k],
                    stacked[..., -3], stacked[..., -2], stacked[..., -1])


def capture(variants: list[Variant], reference: Variant, long_reference: Variant | None, factor: float, length: int,
            pretrained_length: int, n_sequences: int, n_queries: int, n_bins: int, seed: int,
            device: str = "cpu", documents=None, progress: bool = True, dtype: str = "auto") -> Capture:
    """Profiles of every variant at ``length``, of ``long_reference`` there too when length > L0,
    and of ``reference`` at L0 (Fig. 2's overlay). Each model is captured once per length."""
    cache = ModelCache(device, dtype, longest=length, probe_queries=n_queries, full_logits=False)
    native = [long_reference] if long_reference is not None and length > pretrained_length else []
    wanted = list(variants) + native
    if reference not in wanted:
        wanted.insert(0, reference)
    local_length = pretrained_length - pretrained_length // 4  # the first query position of an L0 sequence
    settings = dict(n_sequences=n_sequences, n_queries=n_queries, n_bins=n_bins, local_length=local_length,
                    seed=seed, documents=documents, progress=progress)
    at_length = {}
    for variant in dict.fromkeys(wanted):
        loaded = cache.get(variant, factor)
        at_length[variant.label] = profiles(loaded.model, loaded.tokenizer, length, label=variant.label,
                                            method=variant.method, **settings,
                                            store=variants_lib.trial_store(loaded, variant, factor, dtype))
    if length == pretrained_length:
        at_l0 = at_length[reference.label]
    else:
        loaded = cache.get(reference, factor)
        at_l0 = profiles(loaded.model, loaded.tokenizer, pretrained_length, label=reference.label,
                         method=reference.method, **settings,
                         store=variants_lib.trial_store(loaded, reference, factor, dtype))
    shown = [v.label for v in variants] + [v.label for v in native]
    return Capture(length, {label: at_length[label] for label in dict.fromkeys(shown)}, at_l0)


def mean_profile(values: np.ndarray, sequences: np.ndarray | None = None) -> np.ndarray:
    """(bin,) mean over layers, heads and the chosen sequences of a (layer, sequence, head, bin) array."""
    chosen = values if sequences is None else values[:, sequences]
    return np.nanmean(chosen, axis=(0, 1, 2))


def js_of_means(a: np.ndarray, b: np.ndarray, sequences: np.ndarray | None = None) -> float:
    """JS (bits) of the mean distributions (mean_profile, renormalised to sum 1) of two mass arrays."""
    p, q = mean_profile(a, sequences), mean_profile(b, sequences)
    return metrics.js_divergence(p / p.sum(), q / q.sum())


def log_gap(a: np.ndarray, b: np.ndarray, sequences: np.ndarray | None = None) -> float:
    """Mean over bins of |log10(mean_profile(a) / mean_profile(b))| (orders of magnitude)."""
    return float(np.mean(np.abs(np.log10(mean_profile(a, sequences) / mean_profile(b, sequences)))))


def paired(statistic, a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """(value, ci_low, ci_high) of ``statistic(a, b, sequences)`` with a paired bootstrap CI over sequences.

    a, b: (layer, sequence, head, bin) arrays of two models on the same sequences; each
    resample draws sequence indices with replacement and uses them for both.
    """
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired statistics need the same sequences: {a.shape[1]} vs {b.shape[1]}")
    value = statistic(a, b)
    if a.shape[1] < 2:
        return value, np.nan, np.nan
    low, high = metrics.bootstrap_ci(np.arange(a.shape[1]), stat=lambda s: statistic(a, b, s.astype(int)),
                                     n_boot=n_boot, seed=seed)
    return value, low, high


def _row(label, profiles, compared_with, statistic, value, low, high):
    return {"variant": label, "method": profiles.method, "compared with": compared_with, "statistic": statistic,
            "value": value, "ci_low": low, "ci_high": high}


def js_table(capture: Capture, target: str, labels: list[str], n_boot: int = 1000, seed: int = 0,
             sink: bool = True) -> pd.DataFrame:
    """Table 1, ours: JS (bits) of each label's mean attention distribution vs ``target``'s, same
    length; ``sink=False`` uses the distributions with position 0 removed."""
    field = "mass" if sink else "mass_no_sink"
    statistic = "JS (bits)" if sink else "JS without sink (bits)"
    return pd.DataFrame([
        _row(label, capture.at_length[label], target, statistic,
             *paired(js_of_means, getattr(capture.at_length[label], field), getattr(capture.at_length[target], field),
                     n_boot, seed))
        for label in labels])


def sink_table(capture: Capture, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per model at this length: attention on the first token, and row entropy with and without it,
    each the mean over layers, heads and sequences with a bootstrap 95% CI over sequences."""
    rows = []
    for label, profiles in capture.at_length.items():
        row = {"variant": label, "method": profiles.method}
        for name, values in (("sink mass", profiles.sink), ("entropy (nats)", profiles.entropy),
                             ("entropy without sink (nats)", profiles.entropy_no_sink)):
            per_sequence = values.mean(axis=(0, 2))  # (sequence,)
            low, high = metrics.bootstrap_ci(per_sequence, n_boot=n_boot, seed=seed) if len(per_sequence) > 1 \
                else (np.nan, np.nan)
            row |= {name: float(per_sequence.mean()), f"{name} low": low, f"{name} high": high}
        rows.append(row)
    return pd.DataFrame(rows)


def gap_table(capture: Capture, labels: list[str], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Gap (orders of magnitude) of each label's local curve at ``capture.length`` from the original's at L0."""
    reference = capture.reference_at_l0
    return pd.DataFrame([
        _row(label, capture.at_length[label], f"{reference.label} at {reference.length}", "gap (log10)",
             *paired(log_gap, capture.at_length[label].local, reference.local, n_boot, seed))
        for label in labels])


# ---- log ratios of two models' statistics (the claims' estimand)

def paired_log_ratio(statistic, first: np.ndarray, second: np.ndarray, target: np.ndarray, n_boot: int = 1000,
                     seed: int = 0, level: float = 0.95) -> tuple[float, float, float, int]:
    """(estimate, ci_low, ci_high, n) of ln(statistic(first, target) / statistic(second, target)).

    first, second, target: (layer, sequence, head, bin) arrays on the same sequences. The CI is a
    percentile bootstrap over sequences (``core.metrics.bootstrap_ci``): each of ``n_boot`` resamples
    (seeded) draws sequence indices once, with replacement, and computes both statistics on them. n = number of
    sequences. A statistic that is not positive (e.g. a model identical to the target) gives a
    NaN estimate; a resample that does gives a NaN interval (no CI). Fewer than 2 sequences: NaN interval.
    """
    n = first.shape[1]
    if second.shape[1] != n or target.shape[1] != n:
        raise ValueError(f"paired statistics need the same sequences: {n}, {second.shape[1]}, {target.shape[1]}")

    def log_ratio(sequences=None) -> float:
        top, bottom = float(statistic(first, target, sequences)), float(statistic(second, target, sequences))
        return math.log(top / bottom) if top > 0 and bottom > 0 else math.nan

    estimate = log_ratio()
    if n < 2:
        return estimate, math.nan, math.nan, n
    # the book's one bootstrap (core.metrics.bootstrap_ci) over sequence indices: each resample uses the same
    # indices for both statistics
    low, high = metrics.bootstrap_ci(np.arange(n), lambda drawn: log_ratio(drawn.astype(int)), n_boot=n_boot,
                                     seed=seed, level=level)
    if not (math.isfinite(low) and math.isfinite(high)):
        return estimate, math.nan, math.nan, n
    return estimate, low, high, n


def log_ratio_table(capture: Capture, statistic: str, first: str, others: list[str], target: str | None = None,
                    n_boot: int = 1000, seed: int = 0, sink: bool = True) -> pd.DataFrame:
    """One row per label of ``others``: ln(``first``'s statistic / its), paired over sequences.

    statistic "JS": JS (bits) of the mean distributions (``mass``; ``mass_no_sink`` when
    sink=False) against ``target`` at this length, or against the original model at L0 when
    ``target`` is None; "gap": ``log_gap`` of the local curves from the original model's at L0.
    Columns: first, other, statistic, estimate, ci_low, ci_high, n_units.
    """
    if statistic == "JS":
        field = "mass" if sink else "mass_no_sink"
        function, goal = js_of_means, capture.at_length[target] if target else capture.reference_at_l0
        name = f"JS to {goal.label}" + ("" if sink else " without sink")
    elif statistic == "gap":
        field, function, goal = "local", log_gap, capture.reference_at_l0
        name = "gap"
    else:
        raise ValueError(f"statistic={statistic!r}; expected 'JS' or 'gap'")
    rows = []
    for other in others:
        estimate, low, high, n = paired_log_ratio(function, getattr(capture.at_length[first], field),
                                                  getattr(capture.at_length[other], field), getattr(goal, field),
                                                  n_boot, seed)
        rows.append({"first": first, "other": other, "statistic": name, "estimate": estimate, "ci_low": low,
                     "ci_high": high, "n_units": n})
    return pd.DataFrame(rows, columns=["first", "other", "statistic", "estimate", "ci_low", "ci_high", "n_units"])
