"""benchmarks/power.py: units a claim's decision needs, from a row's own interval (never from prose)."""

import importlib.util
import math
from pathlib import Path

from ropelib.findings import claims

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("power_benchmark", ROOT / "benchmarks" / "power.py")
power = importlib.util.module_from_spec(spec)
spec.loader.exec_module(power)


def test_units_needed_follow_the_rows_spread_and_the_sesoi():
    claim = claims.claim(4.1)  # sesoi 0.1
    need = power.needed({"ci_low": 0.1, "ci_high": 0.3, "n_units": 10}, claim)
    sigma = 0.2 / (2 * 1.959964) * math.sqrt(10)
    assert abs(need["sigma"] - sigma) < 1e-4
    assert need["n_effect"] == math.ceil(((1.959964 + 0.841621) * sigma / 0.1) ** 2)
    assert need["n_absence"] > need["n_effect"] and need["n_needed"] == need["n_absence"]
    # a narrow interval from many units needs no more than the registry's minimum... never fewer
    assert power.needed({"ci_low": 0.0, "ci_high": 0.001, "n_units": 100}, claim)["n_needed"] == claim.min_units


def test_a_zero_width_or_missing_interval_says_the_need_is_unknown():
    claim = claims.claim(4.1)
    for row in ({"ci_low": 0.0, "ci_high": 0.0, "n_units": 10}, {"ci_low": None, "ci_high": None, "n_units": 10}):
        need = power.needed(row, claim)
        assert need["n_needed"] is None and "unknown" in need["why"]
