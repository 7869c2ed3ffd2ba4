"""Finding 2's tables and rules on synthetic trial tables, including the tables that must
NOT replicate: length alone, signal only in post-error tokens, tiny strata, no failures."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ropelib import results  # noqa: E402
from ropelib.findings.needle_entropy import analysis as na  # noqa: E402
from ropelib.findings.needle_entropy import plots as needle_plots  # noqa: E402
from ropelib.findings.needle_entropy import verdicts as nv  # noqa: E402

LENGTHS = [128, 256, 512, 1024]
DEPTHS = [0.0, 25.0, 50.0, 75.0, 100.0]
MEASURES = ("entropy_first", "entropy_teacher", "entropy")


def synthetic_trials(signal_in=MEASURES, seed: int = 0, per_cell: int = 6,
                     p_fail=(0.05, 0.3, 0.5, 0.85)) -> pd.DataFrame:
    """Two methods reading the same prompts; entropy rises with log length and failures get likelier
    with length. Measures in ``signal_in`` also carry +1 nat for a failure at a fixed length."""
    rng = np.random.default_rng(seed)
    rows = []
    for length, p in zip(LENGTHS, p_fail):
        for depth in DEPTHS:
            for i in range(per_cell):
                for method in ("A", "B"):
                    failed = bool(rng.random() < p)
                    base = np.log2(length) / 2 + rng.normal(scale=0.5)
                    borrowed = failed and rng.random() < 0.8
                    row = {m: base + (1.0 if failed and m in signal_in else 0.0) for m in MEASURES}
                    rows.append({
                        **row, "method": method, "length": length, "depth": depth, "prompt": f"{length}-{depth}-{i}",
                        "passed": not failed, "needle_mass": 0.05 if failed else 0.6, "borrowed": borrowed,
                        "borrowed_mass": 0.3 if borrowed else 0.0, "borrowed_count": 6 if borrowed else 0,
                        "borrowed_by_chance": failed and rng.random() < 0.2,
                        "value": "12345", "answer": "54321" if failed else "12345"})
    trials = pd.DataFrame(rows)
    trials["failed"] = ~trials["passed"]
    return trials


def analyse(trials, n=200):
    association = pd.concat([na.association_table(trials, m, n_boot=n, n_perm=n) for m in MEASURES])
    cells = na.cells(trials)
    topk = pd.concat([na.topk_table(cells, m, n_perm=n) for m in MEASURES])
    return association, topk, na.borrowed_table(trials)


@pytest.fixture(scope="module")
def signal():
    trials = synthetic_trials()
    return (trials, *analyse(trials))


def test_a_real_within_length_effect_replicates(signal):
    trials, association, topk, borrowed = signal
    pooled = association[(association["method"] == na.POOLED) & (association["measure"] == "entropy_first")].iloc[0]
    assert pooled["n"] == len(trials) and pooled["within_low"] > 0.6 and pooled["within_p"] < 0.01
    rows = {r["order"]: r for r in nv.glance_rows(association, topk, borrowed)}
    assert sorted(rows) == [2.1, 2.3, 2.4, 2.5]  # one row per claim
    assert rows[2.1]["verdict"] == "replicated" and rows[2.5]["verdict"] == "replicated"
    assert all(r["verdict"] in results.VERDICTS and r["rule"] and r["details"] for r in rows.values())


def test_length_alone_does_not_replicate():
    # entropy depends on length only: every measure, every claim about entropy must fail to replicate
    association, topk, borrowed = analyse(synthetic_trials(signal_in=()))
    rows = {r["order"]: r for r in nv.glance_rows(association, topk, borrowed)}
    assert rows[2.1]["verdict"] in ("not replicated", "inconclusive")  # never replicated, never partly
    assert rows[2.3]["verdict"] in ("not replicated", "inconclusive")  # length tops the entropies alone
    top = topk[(topk["method"] == na.POOLED) & (topk["measure"] == "entropy_first")].iloc[0]
    assert top["hit_rate"] > top["chance"]  # the old null (random ranking) would have been fooled
    assert top["p_value"] > 0.05 or top["hit_rate"] <= top["length_only"]


def test_signal_only_after_the_first_error_does_not_replicate():
    association, topk, borrowed = analyse(synthetic_trials(signal_in=("entropy",)))
    rows = {r["order"]: r for r in nv.glance_rows(association, topk, borrowed)}
    assert rows[2.1]["verdict"] in ("not replicated", "inconclusive")
    appendix_c = association[(association["method"] == na.POOLED) & (association["measure"] == "entropy")].iloc[0]
    assert appendix_c["within_low"] > 0.5  # the Appendix C mean alone would have said "replicated"


def _topk(statement, best_p=0.001, failing=69, **by_measure):
    """A pooled top-k table: measure -> (hit_rate, null, p_value, length_only)."""
    return pd.DataFrame([{"method": na.POOLED, "statement": statement, "measure": measure, "hit_rate": hit,
                          "hits": round(hit * failing), "failing": failing, "null": null, "p_value": p, "chance": 0.3,
                          "length_only": length_only, "best_p": best_p}
                         for measure, (hit, null, p, length_only) in by_measure.items()])


def test_noise_the_old_rule_graded_partly_is_inconclusive():
    statement = list(na.STATEMENTS)[1]
    noise = _topk(statement, entropy_first=(0.52, 0.50, 0.69, np.nan), entropy_teacher=(0.49, 0.50, 0.8, np.nan),
                  entropy=(0.6, 0.5, 0.01, np.nan))  # the non-causal measure is never judged
    assert nv.topk_verdict(noise, statement)[0] == "inconclusive"  # was "partly": above the null's mean, p = 0.69
    below = _topk(statement, entropy_first=(0.45, 0.50, 0.9, np.nan), entropy_teacher=(0.40, 0.50, 0.95, np.nan))
    assert nv.topk_verdict(below, statement)[0] == "not replicated"
    one = _topk(statement, entropy_first=(0.9, 0.5, 0.001, np.nan), entropy_teacher=(0.52, 0.5, 0.6, np.nan))
    assert nv.topk_verdict(one, statement)[0] == "partly"  # one measure significant: a significant part


def test_a_test_that_length_alone_passes_as_well_is_inconclusive():
    statement = list(na.STATEMENTS)[0]  # at a fixed depth: failing lengths; length alone ranks them too (row 2.3)
    same = _topk(statement, entropy_first=(1.0, 0.6, 0.001, 1.0), entropy_teacher=(1.0, 0.6, 0.001, 1.0))
    assert nv.topk_verdict(same, statement)[0] == "inconclusive"


def test_a_test_that_cannot_reach_significance_is_inconclusive_never_not_replicated():
    # SmolLM2's 2.3 and 2.4 (stop 31): 3 failing cells whose shuffles always hit (null 1.000), 1 failing cell
    statement = list(na.STATEMENTS)[0]
    saturated = _topk(statement, best_p=1.0, failing=3, entropy_first=(1.0, 1.0, 1.0, 1.0),
                      entropy_teacher=(1.0, 1.0, 1.0, 1.0))
    assert nv.topk_verdict(saturated, statement)[0] == "inconclusive"  # the old rule: "not replicated"
    single = _topk(list(na.STATEMENTS)[1], best_p=0.52, failing=1, entropy_first=(0.0, 0.522, 1.0, np.nan),
                   entropy_teacher=(0.0, 0.522, 1.0, np.nan))
    verdict, details = nv.topk_verdict(single, list(na.STATEMENTS)[1])
    assert verdict == "inconclusive" and "a perfect ranking 0.52" in details


def test_best_p_is_the_p_of_a_perfect_ranking_against_the_same_shuffles():
    cells = na.cells(synthetic_trials(per_cell=1, p_fail=(0.0, 0.0, 0.0, 0.3), seed=3))
    rows = na.topk_table(cells, "entropy_first", n_perm=200)
    pooled = rows[rows["method"] == na.POOLED].set_index("statement")
    assert (pooled["best_p"] <= pooled["p_value"] + 1e-12).all()  # no ranking gets a smaller p than a perfect one
    # entropy that rises with length, failures at the long lengths: shuffles within a length rank the failing
    # lengths first nearly always, so at a fixed depth even a perfect ranking is not evidence
    cells = na.cells(synthetic_trials(signal_in=()))
    length_only = na.topk_table(cells, "entropy_first", n_perm=200)
    fixed_depth = length_only[(length_only["method"] == na.POOLED)
                              & (length_only["statement"] == list(na.STATEMENTS)[0])].iloc[0]
    assert fixed_depth["best_p"] >= 0.05 and fixed_depth["hit_rate"] > fixed_depth["chance"]


def test_tiny_strata_are_inconclusive_and_strata_of_one_outcome_not_testable():
    trials = synthetic_trials(per_cell=1, p_fail=(0.0, 0.0, 0.3, 1.0))  # no stratum with 5 of each outcome
    association, topk, borrowed = analyse(trials, n=50)
    pooled = association[association["method"] == na.POOLED]
    assert pooled["strata"].eq(0).all() and pooled["mixed_strata"].gt(0).all()
    rows = {r["order"]: r for r in nv.glance_rows(association, topk, borrowed)}
    assert rows[2.1]["verdict"] == "inconclusive" and rows[2.1]["details"].startswith("too few trials")
    # every stratum is all-pass or all-fail: no within-length AUROC exists at all
    association, topk, borrowed = analyse(synthetic_trials(per_cell=1, p_fail=(0.0, 0.0, 0.0, 1.0)), n=50)
    assert association["mixed_strata"].eq(0).all()
    assert {r["order"]: r for r in nv.glance_rows(association, topk, borrowed)}[2.1]["verdict"] == "not testable"


def test_a_checkpoint_that_misses_its_gate_makes_every_row_not_testable(signal):
    _, association, topk, borrowed = signal
    rows = nv.glance_rows(association, topk, borrowed, unfit="cpt-rope retrieves 0.40 at 256")
    assert {r["verdict"] for r in rows} == {"not testable"} and "0.40" in rows[0]["details"]


def test_pooled_intervals_resample_prompts_not_trials(signal):
    trials, association, _, _ = signal
    by_trial = na.association_table(trials.drop(columns=["prompt"]), "entropy_first", n_boot=200, n_perm=20)
    clustered = association[(association["measure"] == "entropy_first") & (association["method"] == na.POOLED)]
    width = lambda row: row["within_high"] - row["within_low"]  # noqa: E731
    assert width(clustered.iloc[0]) >= width(by_trial.iloc[-1]) * 0.9  # shared prompts are not independent


def test_no_failures_is_not_testable():
    trials = synthetic_trials()
    trials["passed"], trials["failed"] = True, False
    rows = {r["order"]: r for r in nv.glance_rows(*analyse(trials, n=20))}
    assert rows[2.1]["verdict"] == "not testable" and rows[2.5]["verdict"] == "not testable"


def test_borrowing_at_chance_level_is_not_credited(signal):
    trials, *_ = signal
    borrowed = na.borrowed_table(trials.assign(borrowed_by_chance=trials["borrowed"]))
    assert np.isnan(borrowed.iloc[-1]["chance_p"])  # no discordant pairs
    assert nv.borrowed_verdict(borrowed)[0] == "partly"  # mass only


def test_digit_overlap_and_readable():
    assert na._digit_overlap("82678", "82876") == 1.0 and na._digit_overlap(" 82670§", "82876") == 0.8
    table = pd.DataFrame({"method": ["A"], "auroc": [0.81234], "auroc_low": [0.7], "auroc_high": [0.9],
                          "auroc_p": [0.000999]})
    assert na.readable(table).iloc[0].tolist() == ["A", "0.812 [0.700, 0.900]", "0.000999"]


def test_plots_draw_one_panel_per_method(signal):
    trials, *_ = signal
    figure = needle_plots.plot_heatmaps(na.cells(trials), cpt_length=512, pretrained_length=256)
    assert len([ax for ax in figure.axes if ax.get_visible() and ax.get_title() in ("A", "B")]) == 2


def _control_trials(rates: dict[str, float], lengths=(128, 512, 1024, 2048), prompts=60, seed=0):
    """Trials of every model on the same prompts; pass rate per model, the same at every length."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame([{"method": label, "length": length, "prompt": f"{length}-{i}", "passed": rng.random() < rate}
                         for label, rate in rates.items() for length in lengths for i in range(prompts)])


METHODS = {"RoPE (cpt-rope)": "rope", "PI (cpt-pi)": "pi", "NTK (cpt-ntk)": "ntk"}


def test_a_control_that_fails_retrieval_is_a_result_not_untestable():
    trials = _control_trials({"RoPE (cpt-rope)": 0.2, "PI (cpt-pi)": 0.95, "NTK (cpt-ntk)": 0.95})
    table = nv.retrieval_control(trials, METHODS, pretrained_length=256, cpt_length=1024)
    row = nv.retrieval_control_row(table, 256, 1024)
    assert row["verdict"] == "supported" and row["kind"] == "control" and row["rule"]
    assert set(table["band"]) == {"within", "beyond"}
    assert table.groupby("band")["prompts"].first().to_dict() == {"within": 120, "beyond": 60}  # 512, 1024; 2048


def test_retrieval_control_on_noise_is_inconclusive_and_a_control_as_good_is_not_supported():
    noise = _control_trials({"RoPE (cpt-rope)": 0.9, "PI (cpt-pi)": 0.92, "NTK (cpt-ntk)": 0.9}, prompts=30)
    row = nv.retrieval_control_row(nv.retrieval_control(noise, METHODS, 256, 1024), 256, 1024)
    assert row["verdict"] == "inconclusive"
    perfect = _control_trials({"RoPE (cpt-rope)": 1.0, "PI (cpt-pi)": 1.0, "NTK (cpt-ntk)": 1.0})
    row = nv.retrieval_control_row(nv.retrieval_control(perfect, METHODS, 256, 1024), 256, 1024)
    assert row["verdict"] == "not supported"  # every CI is exactly 0: the control retrieves as well
    assert nv.retrieval_control_row(pd.DataFrame(), 256, 1024)["verdict"] == "not testable"  # no control model
