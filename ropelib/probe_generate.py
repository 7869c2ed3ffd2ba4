"""Attention of every generated token, captured during ``model.generate``.

Which rows: generating token t (t = 0 .. n_new-1) is the forward pass whose *last query*
produces the logits that token t is picked from. For t = 0 that is the last prompt token
(position P-1, in the prefill pass); for t >= 1 it is generated token t-1 (position
P+t-1, the decode step). So ``rec.query_positions`` = P-1, P, ..., P+n_new-2, and row t
is "the attention distribution when generating token t" (the paper's Appendix C). The
same holds with or without a KV cache, since each forward pass's last row is recorded.

Each row covers every key visible to its query (prompt and the answer so far): keys
0 .. P+t-1, summing to 1. ``stacked(keys="prompt")`` keeps only the P prompt keys (no
renormalisation: the mass the token put on the prompt); ``stacked(keys="all")`` pads
each row with zeros to P+n_new-1 keys (zeros are keys not yet generated, so entropy and
sums are unchanged).

Not here: beam search or assisted decoding (forward passes that do not follow the
one-token-per-step pattern raise), reductions (``ropelib.metrics``).

Usage::

    with probe.capture_generation(model) as rec:
        model.generate(input_ids, max_new_tokens=8, do_sample=False)
    rec.stacked("prompt")   # (layers, batch, heads, 8, prompt_len)
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from ropelib.probe import Recorder, probing


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
