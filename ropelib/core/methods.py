"""The RoPE extensions: one registry entry per method, the table every other module reads.

Each :class:`Method` says, in the same shape for every method (as transformers'
``ROPE_INIT_FUNCTIONS`` does for its rope types): how it rescales (``rescale``, one
signature for all), the transformers ``rope_type`` that realises it, whether it needs the
pretrained length L0, whether its frequencies follow the sequence length (``dynamic``),
whether the book runs it training-free on a model, whether the paper compares it, its
display name and its options with their defaults. Every list of methods in ropelib is a
filter of :data:`REGISTRY` (:func:`named`), in its order.

A variant may set a method's options: ``"yarn[beta_fast=16]"`` (:func:`parse`), checked
against the options the method declares.

Light on purpose (no torch, no transformers): ``ropelib.models.sources`` checks a
parameter's method names before any kernel starts, and ``ropelib.core.extensions`` turns an
entry into transformers' ``rope_parameters``.
Not here: the frequencies themselves and the switch of a model (``extensions``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable
from unittest import mock

# Code Llama's NTK (the paper's): the base raised 100x (10,000 -> 1,000,000), whatever s is
CODE_LLAMA_BASE_RATIO = 100.0
BASELINE = "rope"  # plain RoPE: what every extension is compared with


def ntk_aware_base(base: float, factor: float, head_dim: int) -> float:
    """NTK-aware base for a context ``factor`` times longer: b' = b * s^(d / (d - 2)).

    With this base the lowest frequency pair is interpolated by exactly s while the
    highest is (almost) unchanged.
    """
    return base * factor ** (head_dim / (head_dim - 2))


# ---------------------------------------------------------------------------------------------
# How each method rescales: rescale(base, factor, length, head_dim, options) -> the rope_parameters
# it sets besides rope_type and the pretrained rope_theta (length: L0, or None; options: defaults filled)


def _unchanged(base, factor, length, head_dim, options) -> dict:
    return {}


def _interpolated(base, factor, length, head_dim, options) -> dict:
    return {"factor": float(factor)}


def _ntk(base, factor, length, head_dim, options) -> dict:
    ntk_base = options["ntk_base"]
    if ntk_base is None:
        if head_dim is None:
            raise ValueError("method='ntk' needs ntk_base, or head_dim to derive it from factor")
        ntk_base = ntk_aware_base(base, factor, head_dim)
    if ntk_base < base:
        raise ValueError(f"ntk_base={ntk_base!r} must be >= the pretrained base {base}")
    return {"rope_theta": float(ntk_base)}


def _code_llama(base, factor, length, head_dim, options) -> dict:
    return {"rope_theta": float(base) * CODE_LLAMA_BASE_RATIO}


def _banded(base, factor, length, head_dim, options) -> dict:
    """YaRN's and Llama-3's: the factor, L0, then the method's band options as floats, in declared order."""
    return {"factor": float(factor), "original_max_position_embeddings": int(length),
            **{name: float(value) for name, value in options.items()}}


# ---------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class Method:
    name: str
    display: str  # what figures and tables call it
    rope_type: str  # transformers' rope type that realises it
    rescale: Callable[..., dict]  # (base, factor, length, head_dim, options) -> rope_parameters it sets
    options: dict = field(default_factory=dict)  # option -> default
    needs_original_length: bool = False
    dynamic: bool = False  # frequencies recomputed from the current sequence length
    training_free: bool = True  # the book runs it training-free on a model (a real model's line-up)
    paper: bool = False  # the paper compares it (and its CPT organisms are trained with it)
    variant_of: str = ""  # the same rescaling as another entry at a fixed setting (shown once in figures)


REGISTRY: dict[str, Method] = {m.name: m for m in (
    Method("rope", "RoPE", "default", _unchanged, paper=True),
    Method("pi", "PI", "linear", _interpolated, paper=True),
    # a fixed, larger base: transformers' default RoPE at that base
    Method("ntk", "NTK", "default", _ntk, {"ntk_base": None}, paper=True),
    Method("ntk100", "NTK x100 base", "default", _code_llama, paper=True, variant_of="ntk"),
    Method("yarn", "YaRN", "yarn", _banded, {"beta_fast": 32.0, "beta_slow": 1.0}, needs_original_length=True,
           paper=True),
    Method("dynamic_ntk", "Dynamic NTK", "dynamic", _interpolated, needs_original_length=True, dynamic=True),
    # Llama 3.1 adopted it with long-context continual pretraining; the book draws its frequencies only
    Method("llama3", "Llama-3", "llama3", _banded, {"low_freq_factor": 1.0, "high_freq_factor": 4.0},
           needs_original_length=True, training_free=False),
)}


def get(name: str) -> Method:
    """The entry of ``name``; ValueError listing the known methods."""
    if name not in REGISTRY:
        raise ValueError(f"method={name!r} is not a RoPE extension; expected one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def named(**flags) -> tuple[str, ...]:
    """The methods whose fields equal ``flags`` (e.g. ``training_free=True``), in the registry's order."""
    return tuple(m.name for m in REGISTRY.values() if all(getattr(m, k) == v for k, v in flags.items()))


def registered(method: Method):
    """A context manager: within its block, ``method`` is one more entry of the registry (a test's toy method)."""
    return mock.patch.dict(REGISTRY, {method.name: method})


# RoPE extensions, in the order the book shows them
METHODS = named()
# the extensions the paper compares with plain RoPE (ntk100 is the paper's NTK)
PAPER_EXTENSIONS = tuple(m for m in named(paper=True) if m != BASELINE)


# ---------------------------------------------------------------------------------------------
# A method with options: "yarn[beta_fast=16,beta_slow=2]"


def parse(text: str) -> tuple[str, dict]:
    """(method name, options) of ``name`` or ``name[option=number,...]``; ValueError (one line) when the
    method is unknown or an option is not one it declares or not a number."""
    name, bracket, rest = str(text).partition("[")
    method = get(name)
    if not bracket:
        return name, {}
    if not rest.endswith("]"):
        raise ValueError(f"{text!r}: options go in brackets, e.g. 'yarn[beta_fast=16]'")
    options = {}
    for item in filter(None, rest[:-1].split(",")):
        key, equals, value = item.partition("=")
        key = key.strip()
        if key not in method.options:
            raise ValueError(f"{text!r}: {name} has no option {key!r}; its options: "
                             f"{', '.join(method.options) or 'none'}")
        try:
            if not equals:
                raise ValueError
            options[key] = float(value)
        except ValueError:
            raise ValueError(f"{text!r}: option {key} needs a number, e.g. {key}=16") from None
    return name, options
