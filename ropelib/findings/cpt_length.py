"""Finding 3 (the paper's Figs. 4e-f): continual pretraining on longer sequences lowers attention entropy.

The comparison: one NTK-extended model continually pretrained at a short length (the
pretraining length L0 in the committed ``ntk8-short``), one at a long length (``ntk8-long``,
8 L0), both on the same number of tokens, and the base model with the same NTK switch and
no training. Cells of the needle grid are paired across models (same prompts), so every
test below is paired by cell (length, depth):

  paired_cells(trials, first, second, beyond)  cells with length > beyond, both models' pass rate and entropy
  compare(pairs)       d = second - first per cell: mean entropy and pass-rate differences,
                       bootstrap 95% CIs over cells, one-sided Wilcoxon signed-rank p for "second lower"
  verdict_*            the three stated rules (see each function); glance_rows writes them out
  equal_token_recipes  the CPT recipes of a (short, long) length pair with the same tokens
  retrain              trains that pair from ``base`` into a directory (never ``data/models``)

Not here: running the models (``length_sweep``), plots.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from ropelib import metrics, models, recipes, results
from ropelib.organism import L0
from ropelib.recipes import CPT_WARMUP
from ropelib.tasks import needle
from ropelib.training import Stage

ALPHA = 0.05  # one-sided Wilcoxon level for "lower entropy"
# "much lower entropy" needs an effect, not only significance: 0.1 nats shrinks the effective
# number of attended keys, exp(H), by about 10% (exp(-0.1) = 0.905). Fixed before any real run.
MIN_ENTROPY_DROP = 0.1
MARGIN = 0.15  # equivalence margin on a pass-rate difference for "little to no change"
TOKENS_PER_STEP = 16 * L0  # tokens per optimizer step in the committed SHORT_8X / LONG_8X recipes
CHAPTER = "cpt-length"


def cpt_length(source: str) -> int | None:
    """Length of the last training stage of an organism checkpoint (None for other checkpoints)."""
    kind, path = models._resolve(source)
    if kind != "organism":
        return None
    manifest = json.loads((path / models.MANIFEST).read_text())
    return int(manifest["recipe"]["stages"][-1]["length"])


def check_cpt_length(source: str, expected: int, name: str) -> None:
    """Fail before any work when an organism checkpoint was not trained at the length the chapter says."""
    found = cpt_length(source)
    if found is not None and found != expected:
        raise ValueError(f"{name}={expected} but checkpoint {source!r} was continually pretrained at {found} tokens; "
                         f"set {name}={found} or retrain=True")


def paired_cells(trials: pd.DataFrame, first: str, second: str, beyond: int) -> pd.DataFrame:
    """Per cell (length > beyond, depth) measured for both methods: pass rate and entropy of each, second - first."""
    cells = needle.cell_table(trials)
    cells = cells[cells["length"] > beyond].set_index(["length", "depth"])
    columns = ["pass_rate", "entropy"]
    a = cells[cells["method"] == first][columns]
    b = cells[cells["method"] == second][columns]
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


RULE_ENTROPY = (f"replicated if the long-CPT model's entropy is lower than the short-CPT model's over cells beyond "
                f"the short CPT length by at least {MIN_ENTROPY_DROP} nats (mean paired difference) with a one-sided "
                f"Wilcoxon p < {ALPHA}; partly if lower but by less or not significantly; not replicated otherwise")
RULE_PASSES = ("replicated if the long-CPT model passes more needles beyond the short CPT length (mean paired "
               "pass-rate difference > 0, bootstrap 95% CI over cells above 0); partly if > 0 with the CI "
               "including 0; not replicated otherwise")
RULE_LITTLE_CHANGE = (f"replicated if the 95% CI of the short-CPT minus base pass rate beyond the short CPT length "
                      f"lies within +-{MARGIN} (equivalence margin); partly if the mean does; not replicated otherwise")


def verdict_lower_entropy(c: dict) -> str:
    if c["d_entropy"] <= -MIN_ENTROPY_DROP and c["p_entropy_lower"] < ALPHA:
        return "replicated"
    return "partly" if c["d_entropy"] < 0 else "not replicated"


def verdict_more_passes(c: dict) -> str:
    if c["d_pass"] > 0 and c["pass_ci_low"] > 0:
        return "replicated"
    return "partly" if c["d_pass"] > 0 else "not replicated"


def verdict_little_change(c: dict, margin: float = MARGIN) -> str:
    if -margin <= c["pass_ci_low"] and c["pass_ci_high"] <= margin:
        return "replicated"
    return "partly" if abs(c["d_pass"]) <= margin else "not replicated"


def comparisons(trials: pd.DataFrame, base: str, short: str, long: str, beyond: int,
                references: tuple[str, ...] = ()) -> pd.DataFrame:
    """The chapter's paired comparisons, one row each: short -> long, base -> short, and each
    further reference -> short (shown, not judged)."""
    rows = []
    pairs = [("long vs short", short, long), ("short vs base", base, short)]
    pairs += [(f"short vs {reference}", reference, short) for reference in references]
    for name, first, second in pairs:
        rows.append({"comparison": name, "first": first, "second": second, "beyond": beyond,
                     **compare(paired_cells(trials, first, second, beyond))})
    return pd.DataFrame(rows)


def glance_rows(table: pd.DataFrame) -> list[dict]:
    """Finding 3's rows of the glance page from :func:`comparisons`' table."""
    long_short = table.set_index("comparison").loc["long vs short"].to_dict()
    short_base = table.set_index("comparison").loc["short vs base"].to_dict()
    where = f"{int(long_short['cells'])} cells beyond {int(long_short['beyond'])} tokens"
    return [
        results.glance_row(3.1, "Finding 3", "Long-context CPT lowers attention entropy beyond the short CPT length",
                           "much lower entropy at long lengths (below 5 nats at ~64K)",
                           f"{long_short['d_entropy']:.3g} nats (long - short), Wilcoxon p = "
                           f"{long_short['p_entropy_lower']:.2g}, {where}",
                           verdict_lower_entropy(long_short), RULE_ENTROPY, CHAPTER,
                           long_short["entropy_ci_low"], long_short["entropy_ci_high"]),
        results.glance_row(3.2, "Finding 3", "Long-context CPT passes more needles beyond the short CPT length",
                           "far more needles passed", f"{long_short['d_pass']:+.3g} pass rate (long - short), {where}",
                           verdict_more_passes(long_short), RULE_PASSES, CHAPTER,
                           long_short["pass_ci_low"], long_short["pass_ci_high"]),
        results.glance_row(3.3, "Finding 3", "Short-context CPT barely changes the base model",
                           "little to no change from the original", f"{short_base['d_pass']:+.3g} pass rate "
                           f"(short - base), {short_base['d_entropy']:+.3g} nats entropy",
                           verdict_little_change(short_base), RULE_LITTLE_CHANGE, CHAPTER,
                           short_base["pass_ci_low"], short_base["pass_ci_high"]),
    ]


# --- retraining the pair -------------------------------------------------------------


def equal_token_recipes(short_length: int, long_length: int, train_tokens: int,
                        warmup: Stage = CPT_WARMUP) -> tuple[tuple[Stage, ...], ...]:
    """Stages of the short and the long CPT with the same tokens per step and the same steps.

    Both start with the same needle-heavy ``warmup`` stage (default ``recipes.CPT_WARMUP``,
    not counted in ``train_tokens``). Then a step holds T = max(16 L0, long_length) tokens, steps =
    round(train_tokens / T), batch size = T / length. As in the committed ``ntk8-long``,
    the long run first spends a third of its steps at long_length / 2 (a ramp) when that is
    still longer than short_length. With (256, 2048, 2,457,600) this reproduces
    ``SHORT_8X`` and ``LONG_8X`` exactly.
    """
    if not short_length < long_length:
        raise ValueError(f"short_length={short_length} must be below long_length={long_length}")
    step_tokens = max(TOKENS_PER_STEP, long_length)
    for length in (short_length, long_length):
        if step_tokens % length:
            raise ValueError(f"length {length} must divide the {step_tokens} tokens of a step (use powers of two)")
    steps = max(1, round(train_tokens / step_tokens))
    short = (warmup, Stage(short_length, steps, step_tokens // short_length))
    ramp_length, ramp_steps = long_length // 2, steps // 3
    if ramp_length > short_length and ramp_steps > 0:
        long = (warmup, Stage(ramp_length, ramp_steps, step_tokens // ramp_length),
                Stage(long_length, steps - ramp_steps, step_tokens // long_length))
    else:
        long = (warmup, Stage(long_length, steps, step_tokens // long_length))
    return short, long


def retrain(short_length: int, long_length: int, train_tokens: int, factor: float, directory: Path,
            seed: int = 0, warmup: Stage = CPT_WARMUP) -> tuple[str, str]:
    """Train the short and the long NTK CPT of ``base`` into ``directory``; returns the two "ntk:path" variants.

    Same hyperparameters as the committed ``ntk8-short`` / ``ntk8-long`` (``recipes.SPECS``),
    stages from :func:`equal_token_recipes`, NTK base for ``factor``. Slow: the committed
    pair took minutes of CPU each; nothing under ``data/models`` is touched.
    """
    short_stages, long_stages = equal_token_recipes(short_length, long_length, train_tokens, warmup)
    variants = []
    for role, stages in (("short", short_stages), ("long", long_stages)):
        template = recipes.SPECS[f"ntk8-{role}"]
        name = f"ntk{factor:g}-{role}-{stages[-1].length}"
        spec = replace(template, name=name, factor=float(factor), recipe=replace(template.recipe, stages=list(stages)),
                       purpose=f"finding 3 retrained: NTK ({factor:g}x) CPT at {stages[-1].length}, "
                               f"{sum(s.length * s.steps * s.batch_size for s in stages)} tokens")
        recipes.train_one(name, seed=seed, spec=spec, directory=Path(directory) / name)
        variants.append(f"ntk:{Path(directory) / name}")
    return variants[0], variants[1]
