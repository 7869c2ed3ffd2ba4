"""RoPE geometry: how a base, head dim and training length place wavelengths.

Pair j of a head of dim d rotates with theta_j = b^(-2j/d), so its wavelength is
lambda_j = 2*pi * b^(2j/d) tokens. A pair with lambda_j > L (the training length) never
completes a period during training; how many such pairs there are, and how far the
longest one reaches beyond L, is what makes extrapolation hard.

The organism cannot copy LLaMA-2's numbers exactly (32 pairs and 256 tokens instead of
64 and 4096). :func:`mirror_base` picks its base so the *longest* wavelength reaches as
far beyond the training length as LLaMA-2's does (13.3x); :func:`geometry_table` shows
what that choice does to the other two statistics. Not here: the extensions themselves
(``extensions``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class RopeGeometry:
    name: str
    head_dim: int
    base: float
    train_length: int


LLAMA2_7B = RopeGeometry("LLaMA-2-7B", head_dim=128, base=10_000.0, train_length=4096)
LLAMA3_8B = RopeGeometry("LLaMA-3-8B", head_dim=128, base=500_000.0, train_length=8192)


def pair_wavelengths(head_dim: int, base: float) -> list[float]:
    """lambda_j = 2*pi * b^(2j/d), j = 0 .. d/2 - 1, in tokens."""
    if head_dim < 2 or head_dim % 2:
        raise ValueError(f"head_dim={head_dim!r} must be a positive even int")
    return [2 * math.pi * base ** (2 * j / head_dim) for j in range(head_dim // 2)]


def fraction_longer_than(head_dim: int, base: float, length: float) -> float:
    """Fraction of frequency pairs whose wavelength exceeds ``length`` tokens."""
    waves = pair_wavelengths(head_dim, base)
    return sum(w > length for w in waves) / len(waves)


def longest_wavelength_ratio(head_dim: int, base: float, length: float) -> float:
    """lambda_max / L: how many training lengths the slowest pair's period spans."""
    return max(pair_wavelengths(head_dim, base)) / length


def mirror_base(head_dim: int, train_length: int, reference: RopeGeometry = LLAMA2_7B) -> float:
    """Base whose longest wavelength spans as many training lengths as ``reference``'s.

    Solves 2*pi * b^((d-2)/d) = r * L for b, with r = lambda_max / L of the reference:
    b = (r * L / (2*pi))^(d / (d - 2)).
    """
    ratio = longest_wavelength_ratio(reference.head_dim, reference.base, reference.train_length)
    return (ratio * train_length / (2 * math.pi)) ** (head_dim / (head_dim - 2))


def geometry_row(g: RopeGeometry) -> dict:
    return {
        "model": g.name,
        "head dim": g.head_dim,
        "base": round(g.base, 1),
        "training length": g.train_length,
        "pairs": g.head_dim // 2,
        "pairs with wavelength > L": sum(w > g.train_length for w in pair_wavelengths(g.head_dim, g.base)),
        "fraction > L": round(fraction_longer_than(g.head_dim, g.base, g.train_length), 3),
        "fraction > 4L": round(fraction_longer_than(g.head_dim, g.base, 4 * g.train_length), 3),
        "longest wavelength / L": round(longest_wavelength_ratio(g.head_dim, g.base, g.train_length), 2),
    }


def geometry_table(*geometries: RopeGeometry) -> pd.DataFrame:
    """One row per geometry: the statistics that say how hard extrapolation is."""
    return pd.DataFrame([geometry_row(g) for g in geometries]).set_index("model")
