"""ropelib.findings.needle_analysis (and its plots) on synthetic needle trial tables."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ropelib import results  # noqa: E402
from ropelib.findings import needle_analysis as na  # noqa: E402
from ropelib.findings import needle_verdicts as nv  # noqa: E402
from ropelib.findings import needle_plots  # noqa: E402

LENGTHS = [128, 256, 512, 1024]
DEPTHS = [0.0, 50.0, 100.0]


def synthetic_trials(within_signal: bool, seed: int = 0, per_cell: int = 6) -> pd.DataFrame:
    """Two methods; entropy rises with log length and failures get likelier with length.

    within_signal: failures also carry +1 nat at a fixed length (finding 2 true beyond the
    confound); otherwise entropy depends on length only (finding 2 explained by length).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for method in ("A", "B"):
        for length in LENGTHS:
            p_fail = {128: 0.05, 256: 0.2, 512: 0.5, 1024: 0.85}[length]
            for depth in DEPTHS:
                for _ in range(per_cell):
                    failed = bool(rng.random() < p_fail)
                    entropy = np.log2(length) / 2 + rng.normal(scale=0.5) + (1.0 if within_signal and failed else 0.0)
                    borrowed = failed and rng.random() < 0.8
                    by_chance = failed and rng.random() < 0.2
                    rows.append({
                        "method": method, "length": length, "depth": depth, "passed": not failed,
                        "entropy": entropy, "needle_mass": 0.05 if failed else 0.6,
                        "borrowed": borrowed, "borrowed_mass": 0.3 if borrowed else 0.0,
                        "borrowed_count": 6 if borrowed else 0, "borrowed_by_chance": by_chance,
                        "value": "12345", "answer": "54321" if failed else "12345",
                    })
    trials = pd.DataFrame(rows)
    trials["failed"] = ~trials["passed"]
    return trials


@pytest.fixture(scope="module")
def signal():
    trials = synthetic_trials(within_signal=True)
    return trials, na.association_table(trials, n_boot=200, n_perm=200)


def test_association_table_detects_a_within_length_effect(signal):
    trials, table = signal
    assert list(table["method"]) == ["A", "B", na.POOLED]
    pooled = table.iloc[-1]
    assert pooled["n"] == len(trials) and pooled["failed"] == trials["failed"].sum()
    assert pooled["within_low"] > 0.6 and pooled["within_p"] < 0.01
    assert pooled["auroc_low"] > 0.6
    both = trials.groupby(["method", "length"])["failed"].agg(lambda f: 0 < f.sum() < len(f))
    assert pooled["strata"] == both.sum() >= 6  # (method, length) strata having both outcomes


def test_confounded_data_is_not_credited_within_length():
    trials = synthetic_trials(within_signal=False)
    table = na.association_table(trials, n_boot=200, n_perm=200)
    pooled = table.iloc[-1]
    assert pooled["auroc_low"] > 0.5  # raw association, carried by length
    assert pooled["within_low"] < 0.5 < pooled["within_high"]
    assert nv.verdicts(table, na.topk_table(na.cells(trials)), na.borrowed_table(trials))["finding"] == "partly"


def test_logistic_table_separates_entropy_from_length(signal):
    trials, _ = signal
    table = na.logistic_table(trials)
    pooled = table.iloc[-1]
    assert pooled["converged"] and pooled["entropy_coef_low"] > 0
    assert pooled["converged_within"] and pooled["entropy_within_low"] > 0
    confounded = na.logistic_table(synthetic_trials(within_signal=False, per_cell=20)).iloc[-1]
    assert confounded["entropy_coef_low"] < 0 < confounded["entropy_coef_high"]
    assert confounded["entropy_within_low"] < 0 < confounded["entropy_within_high"]


def test_within_length_logistic_is_not_fooled_by_a_nonlinear_length_effect():
    # failures and entropy both jump at the longest length, and within a length failures
    # have *lower* entropy: a linear log-length term cannot follow the jump, so entropy
    # absorbs it (positive coefficient); per-length intercepts leave only the within-length sign
    rng = np.random.default_rng(1)
    rows = []
    for length in (128, 256, 512, 1024, 2048):
        for _ in range(200):
            failed = bool(rng.random() < (0.95 if length == 2048 else 0.1))
            entropy = np.log2(length) + 2.0 * (length == 2048) + rng.normal(scale=0.3) - (0.4 if failed else 0.0)
            rows.append({"method": "A", "length": length, "depth": 0.0, "failed": failed, "entropy": entropy})
    pooled = na.logistic_table(pd.DataFrame(rows)).iloc[-1]
    assert pooled["entropy_coef_low"] > 0
    assert pooled["converged_within"] and pooled["entropy_within_high"] < 0


def test_digit_overlap():
    assert na._digit_overlap("82678", "82876") == 1.0
    assert na._digit_overlap(" 82670§", "82876") == 0.8
    assert na._digit_overlap("11111", "12345") == 0.2
    assert na._digit_overlap("", "12345") == 0.0


def test_readable_merges_intervals():
    table = pd.DataFrame({"method": ["A"], "auroc": [0.81234], "auroc_low": [0.7], "auroc_high": [0.9],
                          "auroc_p": [0.000999], "within": [np.nan], "within_low": [np.nan], "within_high": [np.nan]})
    shown = na.readable(table)
    assert list(shown.columns) == ["method", "auroc", "auroc_p", "within"]
    assert shown.iloc[0].tolist() == ["A", "0.812 [0.700, 0.900]", "0.000999", "n/a"]


def test_cells_and_topk_table(signal):
    trials, _ = signal
    cell_frame = na.cells(trials)
    assert len(cell_frame) == 2 * len(LENGTHS) * len(DEPTHS)
    reordered = na.cells(pd.concat([trials[trials["method"] == "B"], trials[trials["method"] == "A"]]))
    assert list(dict.fromkeys(reordered["method"])) == ["B", "A"]  # the trials' order, not alphabetical
    assert (cell_frame["failed"] == (cell_frame["pass_rate"] < 0.5)).all()
    top = na.topk_table(cell_frame)
    assert set(top["statement"]) == set(na.STATEMENTS)
    assert len(top) == 2 * 3
    pooled = top[top["method"] == na.POOLED]
    assert (pooled["hit_rate"] >= 0).all() and (pooled["chance"] < 1).all()


def test_borrowed_table(signal):
    trials, _ = signal
    table = na.borrowed_table(trials)
    pooled = table.iloc[-1]
    failed = trials[trials["failed"]]
    assert pooled["failed"] == len(failed)
    assert pooled["borrowed"] == pytest.approx(failed["borrowed"].mean())
    assert pooled["by_chance"] == pytest.approx(failed["borrowed_by_chance"].mean())
    assert pooled["chance_p"] < 0.01  # 80% in the own context vs 20% in an unseen one
    assert pooled["places"] == 6
    assert pooled["garbled"] == 1.0  # "54321" is "12345" scrambled
    assert pooled["number"] == 1.0  # every wrong answer is a 5-digit number
    assert pooled["mass_borrowed"] == 0.3 and pooled["mass_needle"] == 0.05
    assert pooled["more_on_borrowed"] == 1.0 and pooled["mass_p"] < 0.01


def test_borrowing_at_chance_level_is_not_credited(signal):
    trials, table = signal
    trials = trials.assign(borrowed_by_chance=trials["borrowed"])  # found as often in an unseen context
    borrowed = na.borrowed_table(trials)
    assert np.isnan(borrowed.iloc[-1]["chance_p"])  # no discordant pairs
    assert nv.verdicts(table, na.topk_table(na.cells(trials)), borrowed)["borrowed"] == "partly"  # mass only


def test_glance_rows_have_verdicts_and_write(signal, tmp_path):
    trials, table = signal
    rows = nv.glance_rows(table, na.topk_table(na.cells(trials)), na.borrowed_table(trials))
    assert [r["order"] for r in rows] == [2.0, 2.1, 2.2, 2.3, 2.4, 2.5]
    assert rows[0]["verdict"] == "replicated"  # signal within length
    assert rows[-1]["verdict"] == "replicated"  # 80% borrowed vs 20% by chance, more mass there than on the needle
    assert all(r["verdict"] in results.VERDICTS and r["rule"] for r in rows)
    path = results.write_glance(rows, "finding2", directory=tmp_path)
    assert len(pd.read_csv(path)) == 6


def test_no_failures_is_not_replicated():
    trials = synthetic_trials(within_signal=True)
    trials["passed"], trials["failed"] = True, False
    table = na.association_table(trials, n_boot=20, n_perm=20)
    verdict = nv.verdicts(table, na.topk_table(na.cells(trials)), na.borrowed_table(trials))
    assert verdict["finding"] == "not replicated" and verdict["borrowed"] == "not replicated"
    assert len(nv.glance_rows(table, na.topk_table(na.cells(trials)), na.borrowed_table(trials))) == 6


def test_plots_draw_one_panel_per_method(signal):
    trials, _ = signal
    figure = needle_plots.plot_heatmaps(na.cells(trials), cpt_length=512, pretrained_length=256)
    assert len([ax for ax in figure.axes if ax.get_visible() and ax.get_title() in ("A", "B")]) == 2
    figure = needle_plots.plot_entropy_by_outcome(trials, cpt_length=512, pretrained_length=256)
    assert len([ax for ax in figure.axes if ax.get_title() in ("A", "B")]) == 2
    assert needle_plots._boundary(LENGTHS, 512) == 3.0
