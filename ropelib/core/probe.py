"""Attention rows for chosen queries, without ever building the L x L attention matrix.

``output_attentions=True`` needs eager attention and stores heads x L x L floats per
layer: 16 GiB per layer for a 7B model at 32K tokens. The paper's analyses only need a
few rows of that matrix: the attention of the last token(s) over the context (Figs. 2-3)
and of each generated answer token (entropy, Appendix C). This module registers an
attention implementation, ``"ropebook_probe"``, with transformers' ``AttentionInterface``
(and the matching mask function with ``AttentionMaskInterface``) that

1. computes the layer output by calling transformers' own ``sdpa_attention_forward`` with
   exactly the arguments the stock ``"sdpa"`` path gets, so outputs are bit-identical;
2. for the probed query rows only, recomputes in float32
   ``p_ij = softmax_j(scaling * q_i . k_j + mask_ij)`` from the post-RoPE q and k the
   layer received (so YaRN's temperature, folded into cos/sin, is included), with
   GQA head h reading kv head h // (heads / kv_heads), as ``repeat_kv`` does;
3. hands the rows (batch, heads, n_queries, kv_len) to the active recorder.

Memory: O(layers * heads * n_queries * L) for the stored rows, never O(L^2).

Masks: the mask side is ``sdpa_mask`` itself, so a padded batch gets the same boolean
mask as under ``"sdpa"`` and the probed rows use that mask. When the model runs without a
mask (no padding: SDPA's ``is_causal``), the probe masks explicitly: key j is visible
from query i iff ``kv_offset + j <= q_offset + i`` (absolute positions, KV cache included).

Not here: attention maps, gradients, training-mode dropout (probe rows are the
dropout-free distribution; use ``model.eval()``), beam search.
Generation capture (:func:`capture_generation`) is the last section of this module.

Usage::

    with probe.capture(model, queries=16) as rec:
        model(input_ids)
    rec.attention        # [layer] -> (batch, heads, 16, seq_len) float32
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

NAME = "ropebook_probe"
_CHUNK_BYTES = 64 * 2**20  # bound on the float32 copy of keys made per matmul chunk

# id(model.config) -> the recorder capturing that model (attention modules share the config)
_ACTIVE: dict[int, "Recorder"] = {}


def attention_rows(
    query: torch.Tensor,
    key: torch.Tensor,
    scaling: float,
    query_positions: torch.Tensor,
    key_offset: int = 0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Post-softmax attention rows ``p_ij = softmax_j(scaling * q_i . k_j + m_ij)`` in float32.

    query: (batch, heads, n, head_dim), the probed rows of the post-RoPE queries.
    key: (batch, kv_heads, kv_len, head_dim), post-RoPE keys (KV cache included).
    query_positions: (n,) absolute position of each probed query.
    mask: None -> explicit causal mask, m_ij = 0 if ``key_offset + j <= query_positions[i]``
    else -inf; or the model's own mask rows (batch|1, 1|heads, n, kv_len), boolean (True =
    visible) or additive float. Head h reads kv head h // (heads // kv_heads) (``repeat_kv``'s
    layout) without copying keys per head. A row with no visible key is all zeros.
    Returns (batch, heads, n, kv_len) float32.
    """
    batch, heads, n, head_dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    n_rep = heads // kv_heads
    grouped = query.reshape(batch, kv_heads, n_rep * n, head_dim)  # (b, kv_heads, n_rep*n, d)
    step = max(1, _CHUNK_BYTES // max(1, batch * kv_len * head_dim * 4))  # kv heads per float32 key copy
    if step >= kv_heads:
        scores = grouped.float() @ key.float().transpose(-1, -2)  # (b, kv_heads, n_rep*n, kv_len)
    else:
        scores = torch.empty(batch, kv_heads, n_rep * n, kv_len, dtype=torch.float32, device=query.device)
        for g in range(0, kv_heads, step):
            scores[:, g : g + step] = grouped[:, g : g + step].float() @ key[:, g : g + step].float().transpose(-1, -2)
    scores = scores.view(batch, heads, n, kv_len).mul_(scaling)  # (b, h, n, kv_len)
    if mask is None:
        key_positions = key_offset + torch.arange(kv_len, device=query.device)
        visible = key_positions[None, :] <= query_positions.to(query.device)[:, None]  # (n, kv_len)
        scores.masked_fill_(~visible, float("-inf"))
    elif mask.dtype == torch.bool:
        scores.masked_fill_(~mask, float("-inf"))
    else:
        scores.add_(mask.float())
    # softmax in place (no second (b, h, n, kv_len) buffer): exp(s - max) / sum
    row_max = scores.amax(dim=-1, keepdim=True).nan_to_num_(nan=0.0, neginf=0.0)
    scores.sub_(row_max).exp_()
    scores.div_(scores.sum(dim=-1, keepdim=True))
    return scores.nan_to_num_(nan=0.0)  # fully masked rows: 0/0 -> 0


@dataclass
class Forward:
    """What one forward pass of the model left in the recorder.

    ``query_positions``: (n,) absolute positions of the probed queries, in row order;
    ``key_offset``: absolute position of key column 0 (0 unless the cache drops keys);
    ``rows``: layer index -> (batch, heads, n, kv_len) float32, or what ``reduce`` made of it.
    """

    query_positions: torch.Tensor
    key_offset: int
    local: torch.Tensor  # (n,) row indices within this forward pass's queries
    rows: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def attention(self) -> list[torch.Tensor]:
        return [self.rows[layer] for layer in sorted(self.rows)]


# A selector maps (q_offset, q_len) of a forward pass to the row indices (n,) to probe.
Selector = Callable[[int, int], torch.Tensor]


class Recorder:
    """Collects probed rows: one :class:`Forward` per forward pass of the model, in ``forwards``."""

    def __init__(self, select: Selector, reduce: Callable | None = None, store_device=None):
        self.select = select
        self.reduce = reduce
        self.store_device = store_device
        self.forwards: list[Forward] = []
        self._pending_offsets: tuple[int, int] | None = None  # (q_offset, kv_offset), from the mask function

    def _only_forward(self) -> Forward:
        if len(self.forwards) != 1:
            raise RuntimeError(
                f"{len(self.forwards)} forward passes were captured; rec.attention needs exactly one "
                "(use rec.forwards[i].attention)"
            )
        return self.forwards[0]

    @property
    def attention(self) -> list[torch.Tensor]:
        """One tensor per layer: (batch, heads, n_queries, seq_len) float32."""
        return self._only_forward().attention

    @property
    def query_positions(self) -> torch.Tensor:
        """(n_queries,) absolute positions of the probed queries, in row order."""
        return self._only_forward().query_positions

    def _start_forward(self, q_len: int, kv_len: int) -> Forward:
        # Without a mask call (a ready-made 4D mask was passed) assume DynamicCache's layout:
        # the queries are the last q_len keys.
        q_offset, kv_offset = self._pending_offsets or (kv_len - q_len, 0)
        self._pending_offsets = None
        local = self.select(q_offset, q_len)
        forward = Forward(query_positions=q_offset + local, key_offset=kv_offset, local=local)
        self.forwards.append(forward)
        return forward

    def _observe(self, module, query, key, mask, scaling) -> None:
        """query (b, h, q_len, d), key (b, kv_heads, kv_len, d): what the layer's attention received."""
        layer = getattr(module, "layer_idx", None)
        if layer is None:
            raise RuntimeError(f"{type(module).__name__} has no layer_idx; ropelib.core.probe cannot tell layers apart")
        forward = self.forwards[-1] if self.forwards else None
        if forward is None or layer in forward.rows:  # a layer seen again: a new forward pass began
            forward = self._start_forward(query.shape[2], key.shape[2])
        local = forward.local.to(query.device)
        rows = attention_rows(
            query[:, :, local],
            key,
            query.shape[-1] ** -0.5 if scaling is None else scaling,
            forward.query_positions,
            forward.key_offset,
            None if mask is None else mask[:, :, local.to(mask.device), :],
        )
        if self.reduce is not None:
            rows = self.reduce(rows)
        if self.store_device is not None:
            rows = rows.to(self.store_device)
        forward.rows[layer] = rows


def _probe_mask(*args, **kwargs):
    """The mask side: transformers' ``sdpa_mask`` unchanged, noting the query/key offsets."""
    recorder = _ACTIVE.get(id(kwargs.get("config")))
    if recorder is not None:
        recorder._pending_offsets = (int(kwargs.get("q_offset", 0)), int(kwargs.get("kv_offset", 0)))
    return sdpa_mask(*args, **kwargs)


def _probe_attention(module, query, key, value, attention_mask, **kwargs):
    """The attention side: stock SDPA for the output, plus the probed rows for the recorder."""
    output = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    recorder = _ACTIVE.get(id(getattr(module, "config", None)))
    if recorder is not None:
        with torch.no_grad():
            recorder._observe(module, query.detach(), key.detach(), attention_mask, kwargs.get("scaling"))
    return output


def _register() -> None:
    AttentionInterface.register(NAME, _probe_attention)
    AttentionMaskInterface.register(NAME, _probe_mask)


@contextlib.contextmanager
def probing(model, recorder: Recorder) -> Iterator[Recorder]:
    """Switch ``model`` to the probe with ``recorder`` active; restore its attention on exit."""
    config = getattr(model, "config", None)
    if not hasattr(model, "set_attn_implementation") or not hasattr(config, "_attn_implementation"):
        raise ValueError(f"{type(model).__name__} is not a transformers PreTrainedModel; ropelib.core.probe needs one")
    if not type(model)._can_set_attn_implementation():
        raise ValueError(
            f"{type(model).__name__} does not dispatch attention through transformers' AttentionInterface, "
            "so ropelib.core.probe cannot see its attention"
        )
    if id(config) in _ACTIVE:
        raise RuntimeError("this model is already being probed; captures cannot be nested")
    previous = config._attn_implementation
    if previous != "sdpa":
        warnings.warn(
            f"model uses attn_implementation={previous!r}; while probed its outputs are those of 'sdpa'",
            stacklevel=3,
        )
    _register()
    _ACTIVE[id(config)] = recorder
    try:
        model.set_attn_implementation(NAME)
        if config._attn_implementation != NAME:
            raise ValueError(f"{type(model).__name__} refused attn_implementation={NAME!r}")
        yield recorder
    finally:
        _ACTIVE.pop(id(config), None)
        if config._attn_implementation != previous:
            model.set_attn_implementation(previous)


def _query_selector(queries) -> Selector:
    """int k: the last k queries of the forward pass; sequence/tensor: absolute positions (negative from the end)."""
    if isinstance(queries, bool) or not isinstance(queries, (int, Sequence, torch.Tensor)):
        raise ValueError(f"queries={queries!r}: expected an int k (last k positions) or a list of positions")
    if isinstance(queries, int):
        if queries < 1:
            raise ValueError(f"queries={queries!r}: the number of last positions must be >= 1")

        def last_k(q_offset: int, q_len: int) -> torch.Tensor:
            if queries > q_len:
                raise ValueError(f"queries={queries} but this forward pass has only {q_len} query positions")
            return torch.arange(q_len - queries, q_len)

        return last_k
    positions = torch.as_tensor(queries)
    integral = not (positions.dtype.is_floating_point or positions.dtype.is_complex or positions.dtype == torch.bool)
    if positions.ndim != 1 or positions.numel() == 0 or not integral:
        raise ValueError(f"queries={queries!r}: expected a non-empty 1-D list of integer positions")

    def explicit(q_offset: int, q_len: int) -> torch.Tensor:
        total = q_offset + q_len
        absolute = torch.where(positions < 0, positions + total, positions).long()
        outside = (absolute < q_offset) | (absolute >= total)
        if outside.any():
            raise ValueError(
                f"query positions {positions[outside].tolist()} are not among this forward pass's "
                f"queries [{q_offset}, {total})"
            )
        return absolute - q_offset

    return explicit


@contextlib.contextmanager
def capture(model, queries: int | Sequence[int] | torch.Tensor = 1, *, reduce: Callable | None = None,
            store_device: str | torch.device | None = None) -> Iterator[Recorder]:
    """Record the attention rows of ``queries`` in every layer during the forward pass(es) in the block.

    queries: int k (the last k positions of the forward pass), or absolute positions
    (negative counts from the end of the sequence, KV cache included). Positions index
    tokens (key columns), not RoPE positions: with left padding they include the pads, and
    the rows put zero mass on padding keys. ``reduce`` maps each
    (batch, heads, n, seq_len) tensor before it is stored (e.g. ``metrics.entropy``);
    ``store_device`` moves it (e.g. "cpu" to keep GPU memory free). Outputs are
    bit-identical to ``attn_implementation="sdpa"``; the previous implementation is restored
    on exit, exceptions included. After the block: ``rec.attention`` (list over layers) and
    ``rec.query_positions``; ``rec.forwards`` when several forward passes ran.
    """
    recorder = Recorder(_query_selector(queries), reduce, store_device)
    with probing(model, recorder):
        yield recorder


# ---------------------------------------------------------------------------------------------
# Generation capture
#
# Attention of every generated token, captured during ``model.generate``.
#
# Which rows: generating token t (t = 0 .. n_new-1) is the forward pass whose *last query*
# produces the logits that token t is picked from. For t = 0 that is the last prompt token
# (position P-1, in the prefill pass); for t >= 1 it is generated token t-1 (position
# P+t-1, the decode step). So ``rec.query_positions`` = P-1, P, ..., P+n_new-2, and row t
# is "the attention distribution when generating token t" (the paper's Appendix C). The
# same holds with or without a KV cache, since each forward pass's last row is recorded.
#
# Each row covers every key visible to its query (prompt and the answer so far): keys
# 0 .. P+t-1, summing to 1. ``stacked(keys="prompt")`` keeps only the P prompt keys (no
# renormalisation: the mass the token put on the prompt); ``stacked(keys="all")`` pads
# each row with zeros to P+n_new-1 keys (zeros are keys not yet generated, so entropy and
# sums are unchanged).
#
# Not here: beam search or assisted decoding (forward passes that do not follow the
# one-token-per-step pattern raise), reductions (``ropelib.core.metrics``).
#
# Usage::
#
#     with probe.capture_generation(model) as rec:
#         model.generate(input_ids, max_new_tokens=8, do_sample=False)
#     rec.stacked("prompt")   # (layers, batch, heads, 8, prompt_len)


def _last_query(q_offset: int, q_len: int) -> torch.Tensor:
    return torch.tensor([q_len - 1])


class GenerationRecorder(Recorder):
    """One forward pass per generated token; rows of each pass's last query."""

    def __init__(self, prompt_length: int | None = None, store_device=None):
        super().__init__(_last_query, store_device=store_device)
        self.expected_prompt_length = prompt_length

    @property
    def prompt_length(self) -> int:
        """P: one more than the position of the first recorded query (the last prompt token)."""
        if not self.forwards:
            raise RuntimeError("no forward pass was captured; call model.generate inside the block")
        return int(self.forwards[0].query_positions[0]) + 1

    @property
    def query_positions(self) -> torch.Tensor:
        """(n_new,) positions P-1 .. P+n_new-2 of the queries that produced each generated token."""
        positions = torch.cat([forward.query_positions for forward in self.forwards])
        expected = torch.arange(self.prompt_length - 1, self.prompt_length - 1 + len(positions))
        if not torch.equal(positions, expected):
            raise RuntimeError(
                f"captured query positions {positions.tolist()} do not advance one token per step "
                "(beam search, assisted decoding or chunked prefill are not supported)"
            )
        if self.expected_prompt_length is not None and self.prompt_length != self.expected_prompt_length:
            raise RuntimeError(
                f"prompt_length={self.expected_prompt_length} but the prompt had {self.prompt_length} tokens"
            )
        return positions

    @property
    def steps(self) -> list[list[torch.Tensor]]:
        """[token t][layer] -> (batch, heads, P+t) float32: the row that generated token t."""
        self.query_positions  # validates the step pattern
        return [[rows[:, :, 0, :] for rows in forward.attention] for forward in self.forwards]

    def stacked(self, keys: str = "all") -> torch.Tensor:
        """(layers, batch, heads, n_new, K) float32; K = P ("prompt") or P+n_new-1 ("all", zero-padded)."""
        if keys not in ("all", "prompt"):
            raise ValueError(f"keys={keys!r}: expected 'all' or 'prompt'")
        steps = self.steps
        width = self.prompt_length if keys == "prompt" else self.prompt_length + len(steps) - 1
        per_token = []
        for layers in steps:
            rows = torch.stack(layers)[..., :width]  # (layers, batch, heads, <= width)
            per_token.append(torch.nn.functional.pad(rows, (0, width - rows.shape[-1])))
        return torch.stack(per_token, dim=3)

    @property
    def attention(self) -> list[torch.Tensor]:
        """One tensor per layer: (batch, heads, n_new, P+n_new-1), as ``stacked("all")``."""
        return list(self.stacked("all").unbind(0))


@contextlib.contextmanager
def capture_generation(model, prompt_length: int | None = None, *, store_device=None) -> Iterator[GenerationRecorder]:
    """Record, for each token ``model.generate`` produces, the attention row that generated it.

    prompt_length: optional check of the prompt length P (it is inferred from the first
    forward pass). Greedy or sampled decoding, with or without KV cache. After the block:
    ``rec.steps``, ``rec.stacked(keys)``, ``rec.attention``, ``rec.query_positions``,
    ``rec.prompt_length``. Outputs (the generated tokens) are those of ``"sdpa"``.
    """
    recorder = GenerationRecorder(prompt_length, store_device)
    with probing(model, recorder):
        yield recorder
