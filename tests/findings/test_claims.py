"""The one grading rule (``ropelib.findings.claims``) on synthetic intervals that must not pass,
and the registry's shape."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ropelib import results
from ropelib.findings import claims

REGISTRY = claims.load()
ABOVE = claims.claim(1.1)  # direction +1, null 0, sesoi ln 1.2
NONE = claims.claim(3.3)  # direction 0: a claim of no effect


def test_the_registry_declares_every_field_of_every_claim():
    assert len(REGISTRY) >= 18
    for order, claim in REGISTRY.items():
        assert claim.min_units >= 8, order
        assert claim.sesoi > 0 and claim.sesoi_why.strip(), order
        assert claim.direction in (-1, 0, 1) and claim.unit.strip() and claim.estimand.strip(), order
        assert claim.kind in results.KINDS
        assert f"sesoi {claim.sesoi:g}" in claim.rule and claim.unit in claim.rule
    assert claims.changes() and all("date" in c and "after_results" in c for c in claims.changes())


def test_a_zero_width_interval_from_ten_units_is_inconclusive():
    assert claims.grade(ABOVE, 0.0, 0.0, 0.0, 10)[0] == "inconclusive"
    assert claims.grade(ABOVE, 0.3, 0.3, 0.3, 10)[0] == "inconclusive"  # not even on the claimed side


def test_an_interval_inside_the_sesoi_band_is_not_replicated():
    assert claims.grade(ABOVE, 0.01, -0.1, 0.15, 20) == ("not replicated", "CI inside null +- sesoi (equivalence)")


def test_an_interval_crossing_a_bound_is_inconclusive():
    assert claims.grade(ABOVE, 0.05, -0.1, 0.4, 20)[0] == "inconclusive"
    assert claims.grade(ABOVE, -0.05, -0.4, 0.1, 20)[0] == "inconclusive"


def test_fewer_than_the_minimum_units_is_inconclusive_whatever_the_interval():
    assert claims.grade(ABOVE, 2.0, 1.5, 2.5, 7)[0] == "inconclusive"
    assert claims.grade(ABOVE, 0.0, -0.01, 0.01, 3)[0] == "inconclusive"  # no absence from 3 units either


def test_an_interval_past_the_null_is_replicated_and_the_other_side_not():
    assert claims.grade(ABOVE, 0.5, 0.01, 1.0, 8)[0] == "replicated"
    assert claims.grade(ABOVE, -0.5, -1.0, -0.01, 8)[0] == "not replicated"
    below = claims.claim(3.1)  # direction -1
    assert claims.grade(below, -0.5, -0.7, -0.3, 30)[0] == "replicated"
    assert claims.grade(below, 0.5, 0.3, 0.7, 30)[0] == "not replicated"


def test_a_claim_of_no_effect_needs_its_interval_inside_the_band():
    assert claims.grade(NONE, 0.0, -0.05, 0.05, 30)[0] == "replicated"
    assert claims.grade(NONE, 0.0, -0.3, 0.3, 30)[0] == "inconclusive"  # noise is not absence
    assert claims.grade(NONE, 0.5, 0.2, 0.8, 30)[0] == "not replicated"
    assert claims.grade(NONE, 0.0, 0.0, 0.0, 30)[0] == "inconclusive"


def test_non_finite_intervals_are_inconclusive():
    assert claims.grade(ABOVE, 0.2, math.nan, math.nan, 30)[0] == "inconclusive"


def _parts(*intervals):
    return [claims.part(ABOVE, f"p{i}", (lo + hi) / 2, lo, hi, 20) for i, (lo, hi) in enumerate(intervals)]


def test_parts_combine_and_the_row_shows_the_weakest():
    assert claims.combine(ABOVE, _parts((0.1, 0.3), (0.2, 0.5)))[0] == "replicated"
    verdict, decisive = claims.combine(ABOVE, _parts((0.1, 0.3), (-0.05, 0.05)))
    assert verdict == "partly" and decisive.name == "p1"
    assert claims.combine(ABOVE, _parts((-0.05, 0.05), (-0.5, -0.2)))[0] == "not replicated"
    assert claims.combine(ABOVE, _parts((-0.05, 0.5), (-0.05, 0.05)))[0] == "inconclusive"


def test_a_row_carries_the_structured_columns_and_its_caveats():
    parts = _parts((0.1, 0.3))
    row = claims.row(ABOVE, parts, "organism", caveats=["cpt-pi misses 'retrieves at L0'"],
                     sensitivity=_parts((-0.05, 0.05)))
    assert set(results.STRUCTURED) <= set(row) and set(row) == set(results.GLANCE_COLUMNS)
    assert row["verdict"] == "replicated" and row["n_units"] == 20 and row["sesoi"] == ABOVE.sesoi
    assert "differs" in row["sensitivity"] and "retrieves at L0" in row["caveats"]
    control = claims.row(claims.claim(1.25), _parts((0.1, 0.3)), "organism")
    assert control["verdict"] == "supported"
    assert ": supported (" in control["parts"] and "replicated" not in control["parts"]  # its parts in its words


def test_bootstrap_of_identical_differences_collapses_and_is_not_a_ci():
    mean, low, high, n = claims.bootstrap_mean(np.zeros(10))
    assert (low, high, n) == (0.0, 0.0, 10)
    assert claims.grade(ABOVE, mean, low, high, n)[0] == "inconclusive"


def test_newcombe_keeps_width_at_zero_discordant_pairs():
    # 10 prompts, none rescued, none broken: the bootstrap says [0, 0]; the rate interval does not
    diff, low, high = claims.newcombe_paired(0, 0, 0, 10)
    assert diff == 0 and low < -0.2 and high > 0.2
    rescue = claims.claim(4.1)
    assert claims.grade(rescue, diff, low, high, 10)[0] == "inconclusive"  # cannot exclude a rescue of 0.1
    diff, low, high = claims.newcombe_paired(0, 0, 0, 200)
    assert claims.grade(rescue, diff, low, high, 200)[0] == "not replicated"  # now it can


def test_wilson_matches_scipy():
    rate, low, high = claims.wilson(3, 10)
    assert rate == 0.3 and 0.1 < low < 0.11 and 0.6 < high < 0.61


def test_newcombe_keeps_width_with_no_discordant_pair_and_perfect_agreement():
    diff, low, high = claims.newcombe_paired(15, 0, 0, 15)
    assert diff == 0 and low < -0.03 and high > 0.03


def test_an_interval_wide_only_by_rounding_error_is_zero_width():
    values = np.full(10, 0.1) + np.arange(10) * 1e-17
    mean, low, high, n = claims.bootstrap_mean(values)
    assert claims.grade(ABOVE, mean, low, high, n)[0] == "inconclusive"


def test_a_part_that_could_not_have_shown_the_effect_is_never_not_replicated():
    top = claims.claim(2.3)
    # every failing cell is a hit, and so is every shuffle: hit rate 1 - reference 1 = 0, Wilson CI shifted
    rate, low, high = claims.wilson(200, 200)
    assert claims.part(top, "x", rate - 1, low - 1, high - 1, 200).grade == "not replicated"  # without best
    graded = claims.part(top, "x", rate - 1, low - 1, high - 1, 200, best=(rate - 1, low - 1, high - 1))
    assert graded.grade == "inconclusive" and "could not have shown" in graded.reason
    # where a perfect ranking would have shown it, a null result stands
    rate, low, high = claims.wilson(5, 20)
    best = tuple(x - 0.25 for x in claims.wilson(20, 20))
    assert claims.part(top, "x", rate - 0.25, low - 0.25, high - 0.25, 20, best=best).grade != "replicated"
