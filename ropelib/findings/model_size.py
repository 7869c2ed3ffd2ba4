"""Appendix "Model size" (the paper's Figs. 5, 7 and App. A/B): does PI help a larger model more?

The paper runs its needle grids on MiniMA-2-3B and LLaMA-2-13B as well as LLaMA-2-7B and
reads "PI helps the 13B more than the 3B" off the figures. Here each size has a pair of
variants, plain RoPE on the base checkpoint and PI on its PI continual pretraining, and
PI's gain over RoPE beyond L0 is measured per size, on the same cells and documents:

  size_pairs       the chapter's variant lists -> variants and {size: (RoPE label, PI label)}
  size_table       per size: parameters, pass rates of RoPE and PI at and beyond L0
  needle_gain      per cell (length > L0, depth): pass rate(PI) - pass rate(RoPE)
  ppl_gain         per (document, length > L0): ln ppl(RoPE) - ln ppl(PI), i.e. the loss saved (nats/token)
  gains(...)       both gains per size: mean over cells / documents, bootstrap 95% CI
  size_trend(...)  gain(largest) - gain(smallest), paired over cells / documents, with its CI
  verdict(...)     the stated rule (see RULE); glance_rows writes both verdicts out

Not here: running the models (``length_sweep``), plots.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ropelib import metrics, results, variants
from ropelib.tasks import needle

CHAPTER = "model-size"
RULE = ("replicated if PI helps the largest size (gain over RoPE beyond L0 > 0), the gains grow with size (point "
        "estimates non-decreasing from the smallest to the largest size) and the largest-minus-smallest gain has a "
        "paired bootstrap 95% CI above 0; partly if PI helps the largest size and more than the smallest, but the "
        "gains are not monotone or the CI includes 0; not replicated otherwise")


def size_pairs(rope_variants: list[str], pi_variants: list[str], sizes: list[str]) -> tuple[list, dict]:
    """Parse the chapter's three parallel lists (smallest size first) before any model is loaded.

    Returns (every Variant, RoPE of each size then PI of each size; {size: (RoPE label, PI label)}).
    """
    if not len(rope_variants) == len(pi_variants) == len(sizes) >= 2:
        raise ValueError(f"rope_variants, pi_variants and sizes must have the same length >= 2, got "
                         f"{len(rope_variants)}, {len(pi_variants)}, {len(sizes)}")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"sizes has duplicates: {sizes}")
    rope = variants.parse(rope_variants, "rope_variants")
    pi = variants.parse(pi_variants, "pi_variants")
    return rope + pi, {size: (r.label, p.label) for size, r, p in zip(sizes, rope, pi)}


def size_table(trials: pd.DataFrame, parameters: dict, pairs: dict[str, tuple[str, str]], pretrained_length: int) -> pd.DataFrame:
    """Per size: parameter count, and the pass rate of RoPE and PI at L0 and beyond it (all depths pooled)."""
    rows = []
    for size, (rope, pi) in pairs.items():
        row = {"size": size, "parameters": parameters[rope]}
        for name, method in (("RoPE", rope), ("PI", pi)):
            mine = trials[trials["method"] == method]
            at = mine[mine["length"] == pretrained_length]["passed"]
            beyond = mine[mine["length"] > pretrained_length]["passed"]
            row[f"{name} pass at L0"] = float(at.mean()) if len(at) else float("nan")
            row[f"{name} pass beyond L0"] = float(beyond.mean()) if len(beyond) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index("size")


def needle_gain(trials: pd.DataFrame, rope: str, pi: str, beyond: int) -> pd.Series:
    """Per cell (length > beyond, depth): pass rate(PI) - pass rate(RoPE); indexed by (length, depth)."""
    cells = needle.cell_table(trials)
    cells = cells[cells["length"] > beyond].set_index(["length", "depth"])
    return (cells[cells["method"] == pi]["pass_rate"] - cells[cells["method"] == rope]["pass_rate"]).dropna()


def ppl_gain(ppl: pd.DataFrame, rope: str, pi: str, beyond: int) -> pd.Series:
    """Per (length > beyond, document): loss(RoPE) - loss(PI) = ln ppl(RoPE) - ln ppl(PI), nats/token."""
    rows = ppl[ppl["length"] > beyond].set_index(["length", "document"])
    return (rows[rows["method"] == rope]["loss"] - rows[rows["method"] == pi]["loss"]).dropna()


def _mean_ci(values: pd.Series) -> tuple[float, float, float]:
    values = values.to_numpy(float)
    if values.size < 2:
        return float(np.mean(values)) if values.size else float("nan"), float("nan"), float("nan")
    if np.all(values == values[0]):  # constant: the bootstrap interval collapses to the value
        return float(values[0]), float(values[0]), float(values[0])
    low, high = metrics.bootstrap_ci(values)
    return float(values.mean()), low, high


def gains(trials: pd.DataFrame, ppl: pd.DataFrame, pairs: dict[str, tuple[str, str]], beyond: int) -> pd.DataFrame:
    """One row per (size, metric): PI's mean gain over RoPE beyond ``beyond`` with a bootstrap 95% CI.

    ``pairs``: size label -> (RoPE method label, PI method label), smallest size first.
    """
    rows = []
    for size, (rope, pi) in pairs.items():
        for metric, values in (("needle pass rate", needle_gain(trials, rope, pi, beyond)),
                               ("loss saved (nats/token)", ppl_gain(ppl, rope, pi, beyond))):
            mean, low, high = _mean_ci(values)
            rows.append({"size": size, "metric": metric, "gain": mean, "ci_low": low, "ci_high": high,
                         "n": len(values)})
    return pd.DataFrame(rows)


def size_trend(trials: pd.DataFrame, ppl: pd.DataFrame, pairs: dict[str, tuple[str, str]], beyond: int) -> pd.DataFrame:
    """Per metric: the largest size's gain, gain(largest) - gain(smallest) paired by cell / document with a
    bootstrap 95% CI, and whether the per-size gains are non-decreasing in size."""
    sizes = list(pairs)
    smallest, largest = pairs[sizes[0]], pairs[sizes[-1]]
    table = gains(trials, ppl, pairs, beyond)
    rows = []
    for metric, gain in (("needle pass rate", needle_gain), ("loss saved (nats/token)", ppl_gain)):
        source = trials if metric == "needle pass rate" else ppl
        difference = (gain(source, *largest, beyond) - gain(source, *smallest, beyond)).dropna()
        mean, low, high = _mean_ci(difference)
        per_size = table[table["metric"] == metric]["gain"].to_numpy(float)
        rows.append({"metric": metric, "smallest": sizes[0], "largest": sizes[-1], "largest_gain": per_size[-1],
                     "difference": mean,
                     "ci_low": low, "ci_high": high, "n": len(difference),
                     "monotone": bool(np.all(np.diff(per_size) >= 0))})
    return pd.DataFrame(rows)


def verdict(trend: dict) -> str:
    """:data:`RULE` on one row of :func:`size_trend` (a gain nobody gets is not "helping more")."""
    if not (trend["largest_gain"] > 0 and trend["difference"] > 0):
        return "not replicated"
    return "replicated" if trend["monotone"] and trend["ci_low"] > 0 else "partly"


def glance_rows(trend: pd.DataFrame) -> list[dict]:
    """The appendix's rows of the glance page, one per metric of :func:`size_trend`."""
    rows = []
    for order, row in zip((9.1, 9.2), trend.to_dict("records")):
        paper = ("PI passes more needles at 13B than at 3B (Figs. 5, 7)" if row["metric"] == "needle pass rate"
                 else "not measured by size (Fig. 1: same PPL trend at 3B and 13B)")
        rows.append(results.glance_row(
            order, "Model size", f"PI helps the larger model more ({row['metric']} beyond L0)", paper,
            f"{row['difference']:+.3g} gain ({row['largest']} - {row['smallest']}), "
            f"{'monotone' if row['monotone'] else 'not monotone'} in size",
            verdict(row), RULE, CHAPTER, row["ci_low"], row["ci_high"]))
    return rows
