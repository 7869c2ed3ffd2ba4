"""Appendix "Model size" (the paper's Figs. 5, 7 and App. A/B): does PI help a larger model more?

The paper runs its needle grids on MiniMA-2-3B and LLaMA-2-13B as well as LLaMA-2-7B and
reads "PI helps the 13B more than the 3B" off the figures. Here each size has a pair of
variants, plain RoPE on the base checkpoint and PI on its PI continual pretraining, and
PI's gain over RoPE beyond L0 is measured per size, on the same cells and documents:

  size_pairs       the chapter's variant lists (or ``model``: one size) -> variants, {size: (RoPE, PI)}
  geometry         L0 (shared by every size's base) and the PI CPT length, from the checkpoints
  grid_lengths, marks   the grid (default RATIOS x L0) and the figures' vertical lines
  checkpoint_facts per size, from the manifests: parameters, training tokens, gates
  tokens_line      whether the sizes were trained on the same tokens, computed
  size_table       per size: parameters, pass rates of RoPE and PI at and beyond L0
  needle_gain      per cell (length > L0, depth): pass rate(PI) - pass rate(RoPE)
  ppl_gain         per (document, length > L0): ln ppl(RoPE) - ln ppl(PI), i.e. the loss saved (nats/token)
  gains(...)       both gains per size: mean over cells / documents, bootstrap 95% CI
  size_trend(...)  gain(largest) - gain(smallest), paired over cells / documents, with its CI
  testability      why the size claim cannot be judged: one size only, or a checkpoint missed its gate
  verdict(...)     the stated rule (RULE); glance_rows: one row per claim; verdict_lines: the page's

Not here: running the models (``length_sweep``), plots.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ropelib.models import lineup, organism, variants
from ropelib.core import metrics
from ropelib import results
from ropelib.findings import verdicts
from ropelib.findings import sweep as length_sweep
from ropelib.tasks import needle
from ropelib.tasks.common import check_lengths

CHAPTER = "model-size"
RATIOS = (1, 2, 4, 8)  # default grid: these multiples of L0 (the organism: 256 ... 2048)
RULE = ("not testable with fewer than two sizes, or (needles only) when a size's base or PI checkpoint missed its "
        "retrieval gate; not replicated if PI helps no size more than RoPE (largest size's gain <= 0); otherwise on "
        "the largest-minus-smallest gain's paired bootstrap 95% CI: replicated if above 0 and the gains are "
        "non-decreasing in size, partly if above 0 but not monotone, not replicated if at or below 0, else "
        "inconclusive")


def size_pairs(rope_variants: list[str], pi_variants: list[str], sizes: list[str], model: str = "") -> tuple[list, dict]:
    """Parse the chapter's three parallel lists (smallest size first) before any model is loaded.

    ``model`` set replaces them: one size, plain RoPE and training-free PI on that checkpoint.
    Returns (every Variant, RoPE of each size then PI of each size; {size: (RoPE label, PI label)}).
    """
    if model:
        rope_variants, pi_variants, sizes = [f"rope:{model}"], [f"pi:{model}"], [model.rstrip("/").split("/")[-1]]
    if not len(rope_variants) == len(pi_variants) == len(sizes) >= 1:
        raise ValueError(f"rope_variants, pi_variants and sizes must have the same length >= 1, got "
                         f"{len(rope_variants)}, {len(pi_variants)}, {len(sizes)}")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"sizes has duplicates: {sizes}")
    rope = variants.parse(rope_variants, "rope_variants")
    pi = variants.parse(pi_variants, "pi_variants")
    return rope + pi, {size: (r.label, p.label) for size, r, p in zip(sizes, rope, pi)}


def geometry(all_variants: list) -> tuple[int, int]:
    """(L0, PI CPT length or 0): L0 from each size's base (they must agree), the CPT length from the PI
    checkpoints (``lineup.resolve``: their longest training length above L0; 0 when training-free)."""
    rope = all_variants[:len(all_variants) // 2]
    found = {v.label: lineup.geometry(v.source).pretrained_length for v in rope}
    if len(set(found.values())) > 1:
        raise ValueError(f"the sizes' base models have different pretraining lengths {found}; compare sizes of one "
                         "family, pretrained at the same length")
    line = lineup.resolve(variants=[f"{v.method}:{v.source}" for v in all_variants[len(rope):]],
                          reference=f"rope:{rope[0].source}")
    return line.pretrained_length, line.cpt_length


def grid_lengths(lengths: list[int], pretrained_length: int) -> list[int]:
    """The grid's lengths, sorted: as given (at least one beyond L0), or ``RATIOS`` x L0 when empty."""
    lengths = check_lengths(sorted(lengths) or [r * pretrained_length for r in RATIOS])
    if not any(length > pretrained_length for length in lengths):
        raise ValueError(f"lengths={lengths}: at least one must exceed L0={pretrained_length}")
    return lengths


def marks(pretrained_length: int, cpt_length: int) -> dict[str, int]:
    """Vertical lines for the figures: L0, and the PI CPT length when there is one."""
    return {f"L0 = {pretrained_length}": pretrained_length} | ({f"PI CPT = {cpt_length}": cpt_length} if cpt_length else {})


def verdict_lines(rows: list[dict]) -> list[str]:
    """Each claim: verdict, ours with its CI, details (what the page prints)."""
    return [f"{r['order']} {r['claim']}: {r['verdict'].upper()}\n  ours: {r['ours']}"
            + (f", 95% CI [{r['ci_low']:.3g}, {r['ci_high']:.3g}]" if r["ci_low"] is not None else "")
            + f"\n  {r['details']}" for r in rows]


def _parameters(manifest: dict):
    if not manifest:
        return ""  # a Hugging Face checkpoint: counted once loaded (size_table)
    return organism.parameter_count(organism.build(organism.OrganismConfig(**manifest["organism"])))


def checkpoint_facts(all_variants: list, sizes: list[str]) -> pd.DataFrame:
    """Per size, from the manifests: parameters, training tokens of the base (``tokens_seen``) and of its
    PI CPT, each checkpoint's gate. Blank for checkpoints without a manifest (Hugging Face)."""
    half = len(all_variants) // 2
    rows = []
    for size, rope, pi in zip(sizes, all_variants[:half], all_variants[half:]):
        base, cpt = length_sweep.manifest_of(rope.source), length_sweep.manifest_of(pi.source)
        rows.append({"size": size, "base": rope.source, "parameters": _parameters(base),
                     "base tokens": base.get("tokens_seen", ""), "PI checkpoint": pi.source,
                     "PI": "training-free (on the base)" if pi.source == rope.source else "continual pretraining",
                     "PI CPT tokens": cpt.get("tokens_seen", "") if pi.source != rope.source else "",
                     "base gate": length_sweep.gate_status(rope.source)[1],
                     "PI gate": length_sweep.gate_status(pi.source)[1]})
    return pd.DataFrame(rows).set_index("size")


def tokens_line(facts: pd.DataFrame) -> str:
    """Training tokens per size, and whether they are equal across sizes (computed from the facts table)."""
    parts = []
    for column, what in (("base tokens", "base models"), ("PI CPT tokens", "PI CPTs")):
        known = {size: t for size, t in facts[column].items() if t != ""}
        if not known:
            parts.append(f"{what}: none recorded (Hugging Face checkpoints, or training-free PI)")
        elif len(set(known.values())) == 1:
            parts.append(f"{what}: {next(iter(known.values())):,} tokens each, equal across {len(known)} sizes")
        else:
            parts.append(f"{what}: NOT equal ({', '.join(f'{s} {t:,}' for s, t in known.items())})")
    return "training tokens: " + "; ".join(parts)


def testability(all_variants: list, pairs: dict, role: str = "retrieval") -> str:
    """"" when the size claim can be judged, else why not: one size only, or a checkpoint unfit for
    ``role`` (``ropelib.findings.verdicts.not_testable_reason``: the retrieval gate counts for the
    needles, not for the loss; a Hugging Face checkpoint has no gate)."""
    if len(pairs) < 2:
        return f"only one size ({', '.join(pairs)}): nothing to compare across sizes"
    reason = verdicts.not_testable_reason(all_variants, role=role)
    return (f"retrieval gate not passed: {reason}" if role == "retrieval" else reason) if reason else ""


def reasons(all_variants: list, pairs: dict) -> dict[str, str]:
    """metric -> :func:`testability` for the role its claim gives the checkpoints (:data:`CLAIMS`)."""
    return {metric: testability(all_variants, pairs, role) for metric, (*_, role) in CLAIMS.items()}


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


METRICS = (("needle pass rate", needle_gain), ("loss saved (nats/token)", ppl_gain))


def gains(trials: pd.DataFrame, ppl: pd.DataFrame, pairs: dict[str, tuple[str, str]], beyond: int) -> pd.DataFrame:
    """One row per (size, metric): PI's mean gain over RoPE beyond ``beyond`` with a bootstrap 95% CI.

    ``pairs``: size label -> (RoPE method label, PI method label), smallest size first.
    """
    rows = []
    for size, (rope, pi) in pairs.items():
        for metric, gain in METRICS:
            values = gain(trials if metric == "needle pass rate" else ppl, rope, pi, beyond)
            mean, low, high = _mean_ci(values)
            rows.append({"size": size, "metric": metric, "gain": mean, "ci_low": low, "ci_high": high,
                         "n": len(values)})
    return pd.DataFrame(rows)


def size_trend(trials: pd.DataFrame, ppl: pd.DataFrame, pairs: dict[str, tuple[str, str]], beyond: int) -> pd.DataFrame:
    """Per metric: the largest size's gain, gain(largest) - gain(smallest) paired by cell / document with a
    bootstrap 95% CI, and whether the per-size gains are non-decreasing in size. Empty with one size."""
    sizes = list(pairs)
    if len(sizes) < 2:
        return pd.DataFrame(columns=["metric", "smallest", "largest", "largest_gain", "difference", "ci_low",
                                     "ci_high", "n", "monotone"])
    smallest, largest = pairs[sizes[0]], pairs[sizes[-1]]
    table = gains(trials, ppl, pairs, beyond)
    rows = []
    for metric, gain in METRICS:
        source = trials if metric == "needle pass rate" else ppl
        difference = (gain(source, *largest, beyond) - gain(source, *smallest, beyond)).dropna()
        mean, low, high = _mean_ci(difference)
        per_size = table[table["metric"] == metric]["gain"].to_numpy(float)
        rows.append({"metric": metric, "smallest": sizes[0], "largest": sizes[-1], "largest_gain": per_size[-1],
                     "difference": mean, "ci_low": low, "ci_high": high, "n": len(difference),
                     "monotone": bool(np.all(np.diff(per_size) >= 0))})
    return pd.DataFrame(rows)


def verdict(trend: dict | None, testable: bool = True) -> str:
    """:data:`RULE` on one row of :func:`size_trend` (a gain nobody gets is not "helping more")."""
    if not testable or trend is None:
        return "not testable"
    if not trend["largest_gain"] > 0:
        return "not replicated"
    grade = verdicts.graded(trend["ci_low"], trend["ci_high"])
    return "partly" if grade == "replicated" and not trend["monotone"] else grade


# metric -> (order, kind, the paper's statement, the role the claim gives the checkpoints)
CLAIMS = {"needle pass rate": (9.1, "paper", "PI passes more needles at 13B than at 3B (Figs. 5, 7)", "retrieval"),
          "loss saved (nats/token)": (9.2, "beyond", "not measured by size (Fig. 1: same PPL trend at 3B and 13B)",
                                      "perplexity")}


def glance_rows(gain_table: pd.DataFrame, trend: pd.DataFrame, reason: str | dict = "") -> list[dict]:
    """One row per claim (needles: the paper's; loss saved: ours, beyond it), per-size gains in ``details``.

    ``reason`` (:func:`testability`, or :func:`reasons` per metric) non-empty: that row is "not
    testable" and says why.
    """
    rows = []
    by_metric = trend.set_index("metric") if len(trend) else None
    for metric, (order, kind, paper, _) in CLAIMS.items():
        why = reason.get(metric, "") if isinstance(reason, dict) else reason
        per_size = gain_table[gain_table["metric"] == metric]
        details = "PI - RoPE beyond L0 per size: " + ", ".join(
            f"{r['size']} {r['gain']:+.3g} [{r['ci_low']:.3g}, {r['ci_high']:.3g}]" for _, r in per_size.iterrows())
        row = None if why or by_metric is None else by_metric.loc[metric].to_dict()
        if row is None:
            ours, low, high = "not testable", None, None
            details = f"{why}; {details}"
        else:
            ours, low, high = (f"{row['difference']:+.3g} gain ({row['largest']} - {row['smallest']})",
                               row["ci_low"], row["ci_high"])
            details += f"; {'monotone' if row['monotone'] else 'not monotone'} in size"
        rows.append(results.glance_row(order, "Model size", f"PI helps the larger model more ({metric} beyond L0)",
                                       paper, ours, verdict(row), RULE, CHAPTER, low, high, kind=kind,
                                       details=details))
    return rows
