"""ropelib.core.geometry and the organism's RoPE base, against LLaMA-2-7B's numbers."""

import math

import pytest

from ropelib.core import geometry
from ropelib.models import organism
from ropelib.findings.model_organism.report import fraction_matching_base
from ropelib.core.geometry import (LLAMA2_7B, RopeGeometry, fraction_longer_than, geometry_table, longest_wavelength_ratio,
                              mirror_base, pair_wavelengths)


def test_llama2_wavelengths():
    waves = pair_wavelengths(128, 10_000.0)
    assert len(waves) == 64
    assert waves[0] == pytest.approx(2 * math.pi)
    assert waves[-1] == pytest.approx(2 * math.pi * 10_000 ** (126 / 128))
    assert all(a < b for a, b in zip(waves, waves[1:]))


def test_llama2_long_pairs():
    """18 of LLaMA-2's 64 pairs never complete a period in 4096 tokens; 9 not even in 4 x 4096."""
    assert sum(w > 4096 for w in pair_wavelengths(128, 10_000.0)) == 18
    assert fraction_longer_than(128, 10_000.0, 4096) == 18 / 64
    assert fraction_longer_than(128, 10_000.0, 4 * 4096) == 9 / 64
    assert round(longest_wavelength_ratio(128, 10_000.0, 4096), 2) == 13.28


def test_mirror_base_reproduces_the_reference():
    assert mirror_base(128, 4096) == pytest.approx(10_000.0, rel=1e-12)
    other = RopeGeometry("x", 64, 2_000.0, 1000)
    assert mirror_base(64, 1000, reference=other) == pytest.approx(2_000.0, rel=1e-12)


def test_organism_base_mirrors_llama2_longest_wavelength():
    assert organism.BASE == mirror_base(organism.HEAD_DIM, organism.L0)
    assert organism.BASE == pytest.approx(663.06, abs=0.01)
    assert longest_wavelength_ratio(organism.HEAD_DIM, organism.BASE, organism.L0) == pytest.approx(
        longest_wavelength_ratio(128, 10_000.0, 4096), rel=1e-12)
    # 13 of 32 pairs longer than L0 (LLaMA-2: 18 of 64), 6 longer than 4 L0 (LLaMA-2: 9 of 64)
    assert fraction_longer_than(organism.HEAD_DIM, organism.BASE, organism.L0) == 13 / 32
    assert fraction_longer_than(organism.HEAD_DIM, organism.BASE, 4 * organism.L0) == 6 / 32


def test_fraction_matching_base():
    """The alternative the chapter shows: ~194 puts the L0 crossing where LLaMA-2's is, and one pair beyond 4 L0."""
    assert fraction_matching_base(4096) == pytest.approx(10_000.0, rel=1e-12)
    base = fraction_matching_base(organism.L0)
    assert base == pytest.approx(194.3, abs=0.1)
    crossing = math.log(organism.L0 / (2 * math.pi)) / math.log(base)
    assert crossing == pytest.approx(math.log(4096 / (2 * math.pi)) / math.log(10_000.0))
    assert fraction_longer_than(organism.HEAD_DIM, base, 4 * organism.L0) == 1 / 32


def test_geometry_table():
    table = geometry_table(LLAMA2_7B, RopeGeometry("organism", organism.HEAD_DIM, organism.BASE, organism.L0))
    assert table.loc["LLaMA-2-7B", "pairs with wavelength > L"] == 18
    assert table.loc["LLaMA-2-7B", "fraction > L"] == 0.281
    assert table.loc["organism", "longest wavelength / L"] == table.loc["LLaMA-2-7B", "longest wavelength / L"] == 13.28


@pytest.mark.parametrize("head_dim", [0, 3, -2])
def test_bad_head_dim(head_dim):
    with pytest.raises(ValueError, match="positive even"):
        pair_wavelengths(head_dim, 10_000.0)


def test_llama3_reference_is_longer_than_llama2():
    assert geometry.LLAMA3_8B.train_length == 2 * LLAMA2_7B.train_length
    assert longest_wavelength_ratio(128, geometry.LLAMA3_8B.base, 8192) > 13.28


def test_run_plan_shows_the_organism_geometry_it_trains():
    """The rope-rescaling page for the organism must use the head dim and base the models have."""
    from ropelib.publish import plan

    [run] = [r for r in plan.load() if r.chapter == "rope-rescaling" and r.parameters.get("label") == "organism"]
    assert run.parameters["head_dim"] == organism.HEAD_DIM
    assert run.parameters["base"] == pytest.approx(organism.BASE, rel=1e-12)
    assert run.parameters["train_length"] == organism.L0
