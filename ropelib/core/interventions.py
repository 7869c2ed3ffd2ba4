"""Scoped, weight-free interventions on attention sharpness: does lower entropy fix retrieval?

Every intervention here multiplies the query of every attention layer at absolute position
p by a factor c_p, so each logit of that query is multiplied by it, an inverse temperature:

    s_pj = c_p * scaling * q_p . k_j,        p_pj = softmax_j(s_pj)

For fixed logits, H(softmax(c s)) = -sum_j p_j ln p_j falls as c grows: dH/dc = -c Var_p(s)
<= 0 (strictly unless the row's visible logits are all equal). Keys, values and the KV cache
are untouched; weights are never changed.

  log_length_scaling(model, alpha, L0)  c_p = 1 + alpha ln(max(1, n / L0)), n = p + 1
  fixed_temperature(model, tau)         c_p = 1 / tau at every position
  scaled_queries(model, factor)         any c_p = factor(position_ids); the two above use it
  first_token_entropies(model, prompts) per prompt: entropy of the row predicting the first answer token
  fit_entropy_matched_temperature(...)  per length, the tau whose first-token entropy matches L0's

n = p + 1 is the number of tokens the query sees (causal attention, no padding), so every
position of a training-length sequence (n <= L0) keeps c = 1 exactly and is bit-identical.
With padding, p is the model's position id (``generate`` counts only real tokens).

Where the ideas come from (all sharpen attention as the context grows):
  - Scalable-Softmax (SSMax, arXiv 2501.19399): logits times s ln n, s learned per head,
    because the largest softmax weight fades as n grows. For n >= L0 our factor with
    alpha = 1 / ln L0 is ln n / ln L0, SSMax's form normalised to 1 at the training length.
  - YaRN: logits times (0.1 ln s + 1)^2, s = L / L0, one constant for every query: a fixed
    temperature chosen from the length (``fixed_temperature``).
  - Llama 4's attention temperature tuning: q_p times 1 + 0.1 ln(1 + floor((p + 1) / 8192)),
    in its no-RoPE layers: a per-position query scale like ours, in steps.
  - InfoScale (arXiv 2501.08570): a training-free scale chosen so that attention entropy stays
    invariant as n grows. ``fit_entropy_matched_temperature`` does that empirically: per
    length, one temperature that brings the mean first-token entropy back to its L0 value.

Design: a forward pre-hook on each attention module reads the ``position_ids`` it receives
(absolute positions, KV cache included: prefill gets 0..P-1, decode step t gets P+t) and a
forward hook on its ``q_proj`` multiplies the projection by c. RoPE rotates q (YaRN also
multiplies cos and sin by a constant): linear in q, so scaling before it is scaling after
it. The scaled query then reaches whatever attention implementation runs: "sdpa", "eager",
or ``ropelib.core.probe``'s "ropebook_probe", whose rows are therefore the rows under the
intervention (entropy is measured under it). We do not register a second attention
function with ``AttentionInterface``: the probe already swaps
``config._attn_implementation``, and two swapped implementations hide one another
depending on which context is entered first; hooks before attention compose in any order.
Nested interventions multiply their factors. On exit the hooks are removed, so outputs
are bit-identical to before.

Not here: the chapter's prompts, needle scoring (``tasks.needle``), verdicts
(``findings.intervention_verdicts``).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import scipy.optimize
import torch

from ropelib.core import metrics, probe

# A factor maps position ids (batch|1, q_len) long to c (batch|1, q_len) float32.
Factor = Callable[[torch.Tensor], torch.Tensor]


def log_length_factor(positions: torch.Tensor, alpha: float, train_length: int) -> torch.Tensor:
    """c_p = 1 + alpha ln(max(1, n / L0)) with n = p + 1, float32, the shape of ``positions``.

    Computed in float64, then rounded: n <= L0 gives exactly 1; n = 4 L0, alpha = 0.5 gives
    1 + 0.5 ln 4 = 1.693147.
    """
    n = torch.as_tensor(positions).double() + 1
    return (1 + alpha * torch.log(torch.clamp(n / train_length, min=1.0))).float()


def _attention_modules(model) -> list[torch.nn.Module]:
    modules = [m for m in model.modules() if hasattr(m, "q_proj") and hasattr(m, "layer_idx")]
    if not modules:
        raise ValueError(f"{type(model).__name__} has no attention modules with a q_proj (LLaMA-family models only)")
    return modules


@contextlib.contextmanager
def scaled_queries(model, factor: Factor) -> Iterator[None]:
    """Within the block, every layer's query at position p is multiplied by ``factor(p)``.

    ``factor`` gets the position ids the attention module receives, (batch|1, q_len), and
    returns c of the same shape. The multiplication is done in float32 and rounded once to
    the projection's dtype. Hooks are removed on exit, exceptions included.
    """
    pending: dict[int, torch.Tensor] = {}  # id(attention module) -> (batch|1, q_len, 1) factor of this call
    handles = []

    def note_positions(module, args, kwargs):
        position_ids = kwargs.get("position_ids")
        if position_ids is None:
            raise RuntimeError(f"{type(module).__name__} got no position_ids; cannot place its queries")
        positions = position_ids if position_ids.ndim == 2 else position_ids.view(1, -1)
        pending[id(module)] = factor(positions).float()[..., None]

    def scale_query(attention):
        def hook(q_proj, args, output):  # output: (batch, q_len, heads * head_dim)
            c = pending.pop(id(attention)).to(output.device)
            return (output.float() * c).to(output.dtype)
        return hook

    try:
        for attention in _attention_modules(model):
            handles.append(attention.register_forward_pre_hook(note_positions, with_kwargs=True))
            handles.append(attention.q_proj.register_forward_hook(scale_query(attention)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def log_length_scaling(model, alpha: float, train_length: int):
    """Context manager: logits of the query at position p times 1 + alpha ln(max(1, (p + 1) / L0))."""
    if not alpha >= 0 or train_length < 1:
        raise ValueError(f"need alpha >= 0 and train_length >= 1, got {alpha!r}, {train_length!r}")
    return scaled_queries(model, lambda positions: log_length_factor(positions, alpha, train_length))


def fixed_temperature(model, tau: float):
    """Context manager: every attention logit divided by ``tau`` (tau < 1 sharpens, tau = 1 is a no-op)."""
    if not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"tau={tau!r} must be a positive finite number")
    return scaled_queries(model, lambda positions: torch.full(positions.shape, 1.0 / tau, device=positions.device))


@torch.no_grad()
def first_token_entropies(model, prompts: Sequence[Sequence[int]] | torch.Tensor, batch_size: int = 8) -> np.ndarray:
    """(n_prompts,) float64: entropy (nats) of the attention row of each prompt's last token.

    That row is the one whose output predicts the first answer token (the prefill pass of
    ``generate``, as ``probe.capture_generation`` row 0): H = -sum_j p_j ln p_j over all
    prompt keys, averaged over heads and layers with equal weight. Prompts must all have the
    same length (batches run unpadded). Runs under whatever intervention is active.
    """
    device = next(model.parameters()).device
    ids = torch.as_tensor(prompts if isinstance(prompts, torch.Tensor) else list(map(list, prompts)), device=device)
    out = []
    for start in range(0, len(ids), batch_size):
        with probe.capture(model, queries=1, reduce=metrics.entropy, store_device="cpu") as rec:
            model(ids[start:start + batch_size], use_cache=False, logits_to_keep=1)
        per_layer = torch.stack(rec.attention)  # (layers, batch, heads, 1)
        out.append(per_layer.double().mean(dim=(0, 2, 3)))  # (batch,)
    return torch.cat(out).numpy()


def fit_entropy_matched_temperature(model, prompts_by_length: Mapping[int, Sequence[Sequence[int]]],
                                    reference_length: int, bracket: tuple[float, float] = (0.02, 50.0),
                                    xtol: float = 1e-4, batch_size: int = 8) -> dict[int, float]:
    """length -> tau such that mean first-token entropy at that length under tau equals H_ref.

    H_ref = mean of :func:`first_token_entropies` over ``prompts_by_length[reference_length]``
    (the chapter: dev-split needle prompts at L0) with no temperature. For each other length,
    g(tau) = mean entropy under ``fixed_temperature(tau)`` - H_ref is evaluated at tau = 1
    (no intervention); the root is sought between 1 and the bracket end g points to
    (tau < 1 when entropy is too high), by ``scipy.optimize.brentq`` to ``xtol``. Each
    evaluation is one forward pass per batch of prompts; brentq needs about 8-12. g is not
    guaranteed monotone (later layers see the sharper earlier layers' outputs), brentq only
    needs a sign change. No sign change within the bracket: NaN and a warning.
    The reference length gets tau = 1.
    """
    if reference_length not in prompts_by_length:
        raise ValueError(f"reference_length={reference_length} has no prompts in prompts_by_length")
    target = float(first_token_entropies(model, prompts_by_length[reference_length], batch_size).mean())
    taus: dict[int, float] = {}
    for length, prompts in prompts_by_length.items():
        if length == reference_length:
            taus[length] = 1.0
            continue
        memo: dict[float, float] = {}

        def gap(tau: float) -> float:
            if tau not in memo:
                with fixed_temperature(model, tau):
                    memo[tau] = float(first_token_entropies(model, prompts, batch_size).mean()) - target
            return memo[tau]

        at_one = gap(1.0)
        end = bracket[0] if at_one > 0 else bracket[1]
        if at_one == 0:
            taus[length] = 1.0
        elif np.sign(gap(end)) == np.sign(at_one):
            warnings.warn(f"length {length}: no tau in [{min(1.0, end)}, {max(1.0, end)}] matches the "
                          f"reference entropy {target:.4f} (gap {at_one:+.4f} at tau=1, {gap(end):+.4f} at {end})",
                          stacklevel=2)
            taus[length] = float("nan")
        else:
            taus[length] = float(scipy.optimize.brentq(gap, min(1.0, end), max(1.0, end), xtol=xtol))
    return taus
