"""RoPE extensions, wired through transformers' own rope registry.

Plain RoPE rotates the pair (h_2j, h_2j+1) of a query/key at position m by the angle
m * theta_j with theta_j = b^(-2j/d), j = 0 .. d/2 - 1 (b: base, d: head dim). Every
extension below changes the inverse frequencies theta_j (and, for YaRN, the scale of
cos/sin). The formulas live in ``transformers.modeling_rope_utils``; this module only
maps the paper's names and parameters onto that registry, so what we evaluate is
exactly what a transformers user runs.

Public API:
  METHODS                 the method names, in the order the book shows them
  rope_parameters(...)    the ``config.rope_parameters`` dict for a method
  frequencies(...)        inv_freq and attention scaling, no model needed
  apply(model, ...)       switch a loaded LLaMA-family model in place (weights untouched)
  describe(model)         the active method and its parameters
  frozen_pairs(model, w)  scoped ablation: pairs with wavelength > w stop rotating
  rotation_of_length(model, n)  scoped: every call rotates as one pass over n tokens (dynamic NTK fed in pieces)

Not here: training, evaluation, or any RoPE maths of our own.
"""

from __future__ import annotations

import contextlib
import copy
import math

import torch
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from ropelib.core import methods
from ropelib.core.methods import CODE_LLAMA_BASE_RATIO, METHODS, ntk_aware_base  # noqa: F401 (the public API)


def length_dependent(method: str) -> bool:
    """Do ``method``'s rotations depend on the sequence length (so a prefix's logits change with it)?"""
    return methods.get(method).dynamic


_STATE_ATTR = "_ropebook_state"


def _check(method: str, factor: float, original_max_position: int | None) -> methods.Method:
    entry = methods.get(method)
    if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not factor >= 1:
        raise ValueError(f"factor={factor!r} must be a number >= 1 (the context extension ratio s)")
    if entry.needs_original_length and not original_max_position:
        raise ValueError(f"method={method!r} needs original_max_position (the pretrained context length)")
    if original_max_position is not None and original_max_position < 1:
        raise ValueError(f"original_max_position={original_max_position!r} must be a positive int")
    return entry


def rope_parameters(
    method: str,
    base: float,
    factor: float = 1.0,
    original_max_position: int | None = None,
    head_dim: int | None = None,
    **extra,
) -> dict:
    """The transformers ``rope_parameters`` dict that realises ``method`` (its registry entry's ``rescale``).

    ``extra``: the method's options (``methods.REGISTRY[method].options``, defaults filled in), e.g.
    ``ntk`` takes ``ntk_base=`` (the paper's explicit sweep, e.g. 1e6) or derives the base from
    ``factor`` by :func:`ntk_aware_base` (needs ``head_dim``); ``yarn`` accepts ``beta_fast``
    (default 32) and ``beta_slow`` (default 1); ``llama3`` accepts ``low_freq_factor`` (1) and
    ``high_freq_factor`` (4).
    """
    entry = _check(method, factor, original_max_position)
    unknown = set(extra) - set(entry.options)
    if unknown:
        raise ValueError(f"unexpected parameter(s) for method={method!r}: {', '.join(sorted(unknown))}")
    params: dict = {"rope_type": entry.rope_type, "rope_theta": float(base)}
    params.update(entry.rescale(base, factor, original_max_position, head_dim, {**entry.options, **extra}))
    return params


def _compute(config) -> tuple[torch.Tensor, float]:
    rope_type = config.rope_parameters["rope_type"]
    if rope_type == "default":
        base = config.rope_parameters["rope_theta"]
        dim = config.head_dim
        return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim)), 1.0
    return ROPE_INIT_FUNCTIONS[rope_type](config)


def _max_positions(method: str, length: int, factor: float) -> int:
    """config.max_position_embeddings for ``method``: dynamic NTK reads the pretrained length from it."""
    return length if methods.get(method).dynamic else max(length, int(length * factor))


def frequencies(
    method: str,
    head_dim: int,
    base: float,
    factor: float = 1.0,
    original_max_position: int | None = None,
    **extra,
) -> tuple[torch.Tensor, float]:
    """Inverse frequencies theta_j (shape [head_dim // 2]) and the cos/sin scaling of ``method``.

    - ``rope``: theta_j = b^(-2j/d); scaling 1.
    - ``pi``: theta_j / s (position m -> m/s); scaling 1.
    - ``ntk``: b' ^(-2j/d) with b' = ntk_base, or b * s^(d/(d-2)) (NTK-aware); scaling 1.
    - ``ntk100``: b' = 100 b, Code Llama's NTK as the paper uses it (x4.2 for NTK-aware
      at s = 4, d = 64); ``factor`` does not change it; scaling 1.
    - ``yarn``: per pair, gamma_j * theta_j + (1 - gamma_j) * theta_j / s, where the ramp
      gamma_j rises from 0 for pairs completing fewer than beta_slow rotations within L
      (interpolated like PI) to 1 for pairs completing more than beta_fast (kept as is);
      scaling 0.1 ln s + 1 on cos and sin, hence (0.1 ln s + 1)^2 on the attention logits.
    - ``dynamic_ntk``: NTK-aware base recomputed from the current length l:
      b * (s * l / L - (s - 1))^(d/(d-2)); returned here at l = L (i.e. plain RoPE).
    - ``llama3``: Llama-3.1 bands: wavelength < L/high_freq_factor kept, > L/low_freq_factor
      divided by s, smooth in between; scaling 1.

    L is ``original_max_position``; pure function, no model needed.
    """
    params = rope_parameters(method, base, factor, original_max_position, head_dim=head_dim, **extra)
    config = LlamaConfig(
        hidden_size=head_dim,
        num_attention_heads=1,
        head_dim=head_dim,
        # as in apply(): the extended length, except for dynamic NTK, which reads L from it
        max_position_embeddings=_max_positions(method, int(original_max_position or 1), factor),
        rope_parameters=params,
    )
    inv_freq, scaling = _compute(config)
    return inv_freq, float(scaling)


def _rotary_module(model) -> torch.nn.Module:
    inner = getattr(model, "model", model)
    rotary = getattr(inner, "rotary_emb", None)
    if rotary is None or not hasattr(rotary, "inv_freq"):
        raise ValueError(
            f"{type(model).__name__} has no rotary embedding (model.model.rotary_emb); "
            "ropelib.core.extensions supports LLaMA-family models with RoPE"
        )
    return rotary


def _pretrained(model) -> dict:
    """Base and length the checkpoint was pretrained with, recorded before the first switch."""
    state = getattr(model, _STATE_ATTR, None)
    if state is None:
        params = model.config.rope_parameters or {}
        if params.get("rope_type", "default") != "default":
            raise ValueError(
                "this model already uses rope_type="
                f"{params['rope_type']!r}; load it through ropelib.models.load.load, which records its pretrained RoPE"
            )
        state = {
            "base": float(params["rope_theta"]),
            "original_max_position": int(
                params.get("original_max_position_embeddings") or model.config.max_position_embeddings
            ),
            "method": "rope",
            "factor": 1.0,
            "extra": {},
        }
        setattr(model, _STATE_ATTR, state)
    return state


def record_pretrained(model, base: float, original_max_position: int, method: str = "rope",
                      factor: float = 1.0, **extra) -> None:
    """Tell ``apply`` which RoPE a checkpoint was pretrained with (used by ``models.load``)."""
    setattr(model, _STATE_ATTR, {
        "base": float(base),
        "original_max_position": int(original_max_position),
        "method": method,
        "factor": float(factor),
        "extra": dict(extra),
    })


_FIXED_LENGTH_ATTR = "_ropebook_fixed_length"


def _reset_dynamic_cache(rotary, args):
    # transformers' dynamic NTK only ever grows its cached base; resetting before each
    # forward makes every call use the base of its own length (identical for generation,
    # where lengths only grow, and correct for a sweep over lengths in any order).
    if getattr(rotary, _FIXED_LENGTH_ATTR, None) is not None:
        return  # inside rotation_of_length(): one length's frequencies for the whole block
    rotary.inv_freq = rotary.original_inv_freq.clone()
    rotary.max_seq_len_cached = rotary.original_max_seq_len


def apply(model, method: str, factor: float = 1.0, *, original_max_position: int | None = None, **extra):
    """Switch ``model`` to ``method`` in place; weights are untouched. Returns the model.

    The pretrained base and length come from the model itself (recorded at the first
    call); ``original_max_position`` overrides the length. Extra keyword arguments are
    the method's own (see :func:`rope_parameters`).
    """
    rotary = _rotary_module(model)
    state = _pretrained(model)
    length = int(original_max_position or state["original_max_position"])
    head_dim = getattr(model.config, "head_dim", None) or model.config.hidden_size // model.config.num_attention_heads
    params = rope_parameters(method, state["base"], factor, length, head_dim=head_dim, **copy.deepcopy(extra))

    config = model.config
    config.rope_parameters = params
    # dynamic NTK reads the pretrained length from max_position_embeddings
    config.max_position_embeddings = _max_positions(method, length, factor)
    device = rotary.inv_freq.device
    new_rotary = type(rotary)(config).to(device)
    if methods.get(method).dynamic:
        new_rotary.register_forward_pre_hook(_reset_dynamic_cache)
    getattr(model, "model", model).rotary_emb = new_rotary
    state.update(method=method, factor=float(factor), extra=dict(extra), applied_length=length)
    return model


def describe(model) -> dict:
    """The active method and its parameters, as chapters print them."""
    rotary = _rotary_module(model)  # first: a model without RoPE gets the one-line error
    state = _pretrained(model)
    return {
        "method": state["method"],
        "factor": state["factor"],
        "pretrained_base": state["base"],
        "pretrained_length": state["original_max_position"],
        "rope_type": model.config.rope_parameters.get("rope_type"),
        "rope_theta": model.config.rope_parameters.get("rope_theta"),
        "attention_scaling": float(rotary.attention_scaling),
        **state["extra"],
    }


def wavelengths(inv_freq: torch.Tensor) -> torch.Tensor:
    """Wavelength 2*pi/theta_j of each pair, in tokens."""
    return 2 * math.pi / inv_freq


@contextlib.contextmanager
def rotation_of_length(model, length: int):
    """Within the block, every forward pass rotates as one pass over ``length`` tokens would.

    Dynamic NTK recomputes its base from each call's last position l: b * (s * l / L - (s - 1))^(d/(d-2))
    past L, the pretrained base up to L (transformers' ``dynamic_rope_update``). A prompt fed in pieces (a
    cached prefix, then the rest in chunks) would so rotate each piece by another base. Here the
    frequencies are those the rotary module computes for a call ending at position ``length`` - 1, and
    transformers' update is off until the block ends: the pieces get the keys of one pass. Methods that
    rotate by position alone: nothing changes. Restored on exit, exceptions included; blocks do not nest.
    How the update is paused leans on a detail of transformers (checked on 5.x): its decorator recomputes
    only when the module's ``rope_type`` contains "dynamic", so the block names the module "default"
    meanwhile. If that changes, tests/core/test_extensions.py (pieces = one pass within 1e-5) fails.
    """
    if length < 1:
        raise ValueError(f"length={length!r} must be a positive number of tokens")
    rotary = _rotary_module(model)
    if not methods.get(_pretrained(model)["method"]).dynamic:
        yield
        return
    if getattr(rotary, _FIXED_LENGTH_ATTR, None) is not None:
        raise RuntimeError(f"rotation_of_length({length}) inside rotation_of_length"
                           f"({getattr(rotary, _FIXED_LENGTH_ATTR)}): the blocks do not nest")
    device = rotary.inv_freq.device
    with torch.no_grad():  # the frequencies of one pass over `length` tokens, by the module's own rule
        rotary(torch.zeros(1, device=device), torch.tensor([[length - 1]], device=device))
    rope_type = rotary.rope_type
    setattr(rotary, _FIXED_LENGTH_ATTR, length)
    rotary.rope_type = "default"  # transformers' dynamic_rope_update leaves a "default" module alone
    try:
        yield
    finally:
        rotary.rope_type = rope_type
        setattr(rotary, _FIXED_LENGTH_ATTR, None)


@contextlib.contextmanager
def frozen_pairs(model, min_wavelength: float):
    """Within the block, the pairs with wavelength 2*pi/theta_j > ``min_wavelength`` do not rotate.

    An ablation, not an extension: theta_j = 0 for those pairs removes the positional signal
    they carry while their q.k content stays. The loss it costs inside the training length
    measures how much a model relies on the rotation of the pairs that never complete a
    period in training (the ones whose unseen angles past that length are blamed for the
    extrapolation failure). Yields how many pairs are frozen; restores them on exit.
    """
    rotary = _rotary_module(model)
    if methods.get(_pretrained(model)["method"]).dynamic:
        raise ValueError(f"frozen_pairs: {_pretrained(model)['method']} recomputes its frequencies at every call; use another method")
    saved = rotary.inv_freq.clone()
    frozen = wavelengths(saved) > min_wavelength
    rotary.inv_freq = torch.where(frozen, torch.zeros_like(saved), saved)
    try:
        yield int(frozen.sum())
    finally:
        rotary.inv_freq = saved
