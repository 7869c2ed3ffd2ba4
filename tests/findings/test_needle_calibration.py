"""Issue 35's calibration step: each method's main needles go where its retrieval is uncertain.

- ``choose`` picks the lengths nearest a pass rate of 1/2 (ties: the longer); a method that passes
  everywhere still gets lengths, and ``uncertain_lengths`` reports it has none;
- ``run`` keeps the calibration trials (their own seed and prompt ids) beside the main trials, which
  run at each method's chosen lengths only.
"""

from __future__ import annotations

import pandas as pd
import pytest

from ropelib.findings.needle_entropy import calibration


def _grid(rates: dict[str, dict[int, float]], per_length: int = 10) -> pd.DataFrame:
    rows = []
    for method, by_length in rates.items():
        for length, rate in by_length.items():
            passed = round(rate * per_length)
            rows += [{"method": method, "length": length, "passed": i < passed} for i in range(per_length)]
    return pd.DataFrame(rows)


def test_the_main_trials_go_where_the_pass_rate_is_nearest_one_half():
    table = _grid({"RoPE": {8192: 0.9, 10240: 0.6, 12288: 0.3, 16384: 0.0},
                   "NTK": {8192: 1.0, 12288: 1.0, 16384: 0.9},
                   "YaRN": {8192: 1.0, 12288: 0.5, 14336: 0.5, 16384: 0.1}})
    chosen = calibration.choose(table, n=2)
    assert chosen == {"RoPE": [10240, 12288], "NTK": [12288, 16384], "YaRN": [12288, 14336]}
    assert calibration.choose(table, n=1)["YaRN"] == [14336]  # a tie goes to the longer length
    assert calibration.uncertain_lengths(table) == {"RoPE": [10240, 12288], "NTK": [], "YaRN": [12288, 14336]}
    rates = calibration.rates(table)
    assert rates.loc[rates["method"] == "RoPE", "pass_rate"].tolist() == [0.9, 0.6, 0.3, 0.0]
    with pytest.raises(ValueError, match="at least one length"):
        calibration.choose(table, n=0)


def test_run_keeps_the_calibration_trials_and_runs_the_main_ones_at_the_chosen_lengths(monkeypatch):
    calls = []
    outcomes = {"A": {8192: [True, True], 12288: [True, False], 16384: [False, False]},
                "B": {8192: [True, False], 12288: [False, False], 16384: [False, False]}}

    def fake_collect(variants, factor, lengths, depths, needles, seed=0, lengths_of=None, **options):
        calls.append(dict(lengths=lengths, seed=seed, lengths_of=lengths_of, options=options))
        rows = [{"method": label, "length": length, "depth": 50.0, "prompt": f"{length}-50-{b}",
                 "haystack": f"{length}-50", "passed": passed}
                for label in variants for length in (lengths_of or {}).get(label, lengths)
                for b, passed in enumerate(outcomes[label][length])]
        return pd.DataFrame(rows)

    monkeypatch.setattr(calibration, "collect_trials", fake_collect)
    trials, rates, chosen = calibration.run(["A", "B"], 2.0, [8192, 12288, 16384], [50], 2, [10, 50], 4, n=1,
                                            seed=3, shared_haystack=True)
    assert calls[0]["seed"] == 3 + calibration.SEED_OFFSET and calls[1]["seed"] == 3  # prompts never reused
    assert calls[0]["options"] == calls[1]["options"] == {"shared_haystack": True}
    assert chosen == {"A": [12288], "B": [8192]} and calls[1]["lengths_of"] == chosen
    assert trials.groupby("phase").size().to_dict() == {"calibration": 12, "main": 4}
    main = trials[trials["phase"] == "main"]
    assert set(zip(main["method"], main["length"])) == {("A", 12288), ("B", 8192)}
    calibration_rows = trials[trials["phase"] == "calibration"]
    assert calibration_rows["prompt"].str.startswith("c").all() and calibration_rows["haystack"].str.startswith("c").all()
    assert not main["prompt"].str.startswith("c").any()
    assert rates.set_index(["method", "length"]).loc[("A", 12288), "pass_rate"] == 0.5


def test_a_part_runs_one_of_the_chosen_lengths_and_the_parts_make_the_whole(monkeypatch):
    # a split run (issue 35): page k runs the k-th chosen length of every method; the pooled page (part 0) all
    outcomes = {8192: [True, True], 12288: [True, False], 16384: [False, True]}

    def fake_collect(variants, factor, lengths, depths, needles, seed=0, lengths_of=None, **options):
        return pd.DataFrame([{"method": label, "length": length, "depth": 50.0, "prompt": f"{length}-50-{b}",
                              "haystack": f"{length}-50", "passed": passed}
                             for label in variants for length in (lengths_of or {}).get(label, lengths)
                             for b, passed in enumerate(outcomes[length])])

    monkeypatch.setattr(calibration, "collect_trials", fake_collect)
    run = lambda part: calibration.run(["A"], 2.0, [8192, 12288, 16384], [50], 2, [50], 2, n=2, part=part)  # noqa: E731
    whole, _, both = run(0)
    parts = [run(k) for k in (1, 2)]
    assert both == {"A": [12288, 16384]} and [ran for _, _, ran in parts] == [{"A": [12288]}, {"A": [16384]}]
    mains = [trials[trials["phase"] == "main"] for trials, _, _ in parts]
    assert pd.concat(mains, ignore_index=True).equals(whole[whole["phase"] == "main"].reset_index(drop=True))
    alone, _, none_run = calibration.run(["A"], 2.0, [8192, 12288, 16384], [50], 2, [50], 2, n=2, main=False)
    assert none_run == {"A": []} and alone.equals(whole[whole["phase"] == "calibration"])  # a calibration page
    for part in (-1, 3):
        with pytest.raises(ValueError, match=rf"^part={part}: expected 0 \(every chosen length\) or 1..2"):
            run(part)


def test_equal_distances_from_one_half_are_ties_that_go_to_the_longer_length():
    # 2/3 and 1/3 are both 1/6 from 1/2; as floats 2/3 - 1/2 < 1/2 - 1/3, which once chose the 2/3 lengths
    rates = {8192: 2, 10240: 1, 12288: 2, 14336: 1, 16384: 2}  # passes of 3 (SmolLM2 NTK's calibration)
    table = pd.DataFrame([{"method": "NTK", "length": length, "passed": b < passed}
                          for length, passed in rates.items() for b in range(3)])
    assert calibration.choose(table, 2) == {"NTK": [14336, 16384]}
    assert calibration.choose(table, 3) == {"NTK": [12288, 14336, 16384]}
