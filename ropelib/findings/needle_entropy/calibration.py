"""Where each method's needles are uncertain: the calibration step before a needle grid (issue 35).

Finding 2's test compares passed and failed needles *within* a (method, length) stratum, so a
stratum that always passes or always fails adds cost and nothing else. On a real model the
lengths where a method's retrieval is uncertain are not known in advance (SmolLM2: plain RoPE
passes 9 of 10 at 8K and fails 10 of 10 at 12K), so the page first runs a few needles per method
on a grid of lengths between L0 and 2 L0, then puts its main trials where they decide:

    rate(method, L) = passed / trials on the calibration grid at length L
    chosen(method)  = the ``n`` grid lengths with the smallest |rate - 1/2| (ties: the longer length)

A length with LOW <= rate <= HIGH is *uncertain*; a method with none (it passes, or fails,
everywhere on the grid) is reported as such, and its trials still go to the closest lengths.
The calibration trials are data too: they stay in the page's trial table (``phase`` =
"calibration"), drawn with their own seed and prompt ids ("c" + the grid's id), so no prompt
is read twice; every statistic of the page uses them with the main trials.

Unlike ``analysis.collect_trials`` (one grid for every variant): each variant gets its own
lengths here. Not here: running the needles (``analysis.collect_trials``), statistics.
"""

from __future__ import annotations

import pandas as pd

from ropelib.findings.needle_entropy.analysis import collect_trials

LOW, HIGH = 0.2, 0.8  # a pass rate in [LOW, HIGH] makes a length uncertain (issue 35)
SEED_OFFSET = 7919  # the calibration's prompts are drawn apart from the main grid's


# ---- the step

def run(variants, factor: float, grid: list[int], grid_depths: list[float], grid_needles: int, depths: list[float],
        needles_per_cell: int, n: int = 2, seed: int = 0, part: int = 0, main: bool = True,
        **options) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Calibrate on ``grid``, then the main trials at each variant's ``n`` chosen lengths. A split run's pages,
    when one method's trials take longer than a page may (the pooled page, ``part`` = 0, reads them back):
    ``part`` = k runs only the k-th chosen length (1-based, in increasing order); ``main`` False runs the
    calibration alone.

    Returns (every trial, calibration first, ``phase`` "calibration" or "main"; the calibration's
    :func:`rates`; the lengths whose main trials ran, per variant label: none without ``main``)."""
    if not 0 <= part <= n:
        raise ValueError(f"part={part}: expected 0 (every chosen length) or 1..{n} (one of the {n} chosen lengths)")
    calibration = calibrate(variants, factor, grid, grid_depths, grid_needles, seed=seed, **options)
    if not main:
        return calibration, rates(calibration), {label: [] for label in dict.fromkeys(calibration["method"])}
    chosen = choose(calibration, n)
    running = {label: lengths[part - 1:part] for label, lengths in chosen.items()} if part else chosen
    trials = collect_trials(variants, factor, grid, depths, needles_per_cell, seed=seed, lengths_of=running, **options)
    return pd.concat([calibration, trials.assign(phase="main")], ignore_index=True), rates(calibration), running


def calibrate(variants, factor: float, lengths: list[int], depths: list[float], needles_per_cell: int,
              seed: int = 0, **options) -> pd.DataFrame:
    """The calibration trials: every variant on ``lengths`` x ``depths`` x ``needles_per_cell``, with prompts
    of their own (``SEED_OFFSET``; prompt and haystack ids prefixed "c"), ``phase`` = "calibration"."""
    trials = collect_trials(variants, factor, lengths, depths, needles_per_cell, seed=seed + SEED_OFFSET, **options)
    renamed = {column: "c" + trials[column].astype(str) for column in ("prompt", "haystack") if column in trials}
    return trials.assign(**renamed, phase="calibration")


def rates(calibration: pd.DataFrame) -> pd.DataFrame:
    """Per (method, length): trials, passed, pass rate, and whether the rate is uncertain (LOW..HIGH)."""
    table = (calibration.groupby(["method", "length"], sort=False)["passed"]
             .agg(trials="size", passed="sum").reset_index())
    table["pass_rate"] = table["passed"] / table["trials"]
    table["uncertain"] = table["pass_rate"].between(LOW, HIGH)
    return table


def choose(calibration: pd.DataFrame, n: int = 2) -> dict[str, list[int]]:
    """Each method's ``n`` lengths nearest a pass rate of 1/2 (ties: the longer), in increasing order."""
    if n < 1:
        raise ValueError(f"n={n}: at least one length per method")
    chosen = {}
    for method, table in rates(calibration).groupby("method", sort=False):
        # |passed / trials - 1/2| as |2 passed - trials| / (2 trials): equal rationals give equal floats, so
        # 2/3 and 1/3 tie (1/6 each) and go to the longer length; the difference of floats would not
        distance = (2 * table["passed"] - table["trials"]).abs() / (2 * table["trials"])
        ranked = table.assign(distance=distance).sort_values(["distance", "length"], ascending=[True, False])
        chosen[method] = sorted(int(length) for length in ranked["length"].head(n))
    return chosen


def uncertain_lengths(calibration: pd.DataFrame) -> dict[str, list[int]]:
    """Per method, the grid lengths whose calibration pass rate lies in [LOW, HIGH] (may be empty)."""
    table = rates(calibration)
    return {method: [int(x) for x in rows.loc[rows["uncertain"], "length"]]
            for method, rows in table.groupby("method", sort=False)}
