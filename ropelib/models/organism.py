"""The model organism: tiny LLaMA-architecture models sized to train on two CPU cores.

Sizes S, M, L stand in for the paper's 3B / 7B / 13B axis. All share head dim 64 and a
pretraining length L0 = 256 tokens, with the RoPE base from
:func:`ropelib.core.geometry.mirror_base` so the slowest rotary pair spans as many training
lengths as LLaMA-2-7B's (13.3x). ``build`` returns a random-init ``LlamaForCausalLM``
(no download); nothing here trains (``training``) or loads (``models``).

Why head dim 64 (organism v1 had 32): with 32 pairs instead of 16 more of them are
slow, as in LLaMA-2 (64 pairs), and the models lean on them. History (organism v2,
measured 2026-11 on the old two-way split, 16 held-out documents): perplexity at 4 L0 over perplexity at L0 for plain RoPE, same recipe and seed:
head dim 32: 1.55 (1.83 with twice the L0 training; 1.34 with LLaMA-2's base 10,000 as
is); head dim 64: 1.94, and 2.68 with twice the L0 training, whose loss past 4 L0 exceeds
the unigram baseline: the explosion the paper starts from. Head dim 64 with the shorter
training retrieved only 56% of needles at L0, hence the longer main stage in ``recipes``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from transformers import LlamaConfig, LlamaForCausalLM

from ropelib.core.geometry import mirror_base
from ropelib.text.tokenizer import ByteTokenizer

L0 = 256  # the organism's pretraining length, its "4K"
HEAD_DIM = 64
BASE = mirror_base(HEAD_DIM, L0)


@dataclass(frozen=True)
class OrganismConfig:
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 2
    num_kv_heads: int = 2
    intermediate_size: int = 352
    head_dim: int = HEAD_DIM
    rope_base: float = BASE
    train_length: int = L0

    def to_llama(self, rope_parameters: dict | None = None, max_position: int | None = None) -> LlamaConfig:
        tok = ByteTokenizer()
        return LlamaConfig(
            vocab_size=tok.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            max_position_embeddings=max_position or self.train_length,
            rope_parameters=rope_parameters or {"rope_type": "default", "rope_theta": self.rope_base},
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            tie_word_embeddings=True,
            attn_implementation="sdpa",
        )

    def as_dict(self) -> dict:
        return asdict(self)


SIZES = {
    # v3: S is M with half its layers (v2-v3's 1-head, 64-wide S never formed the retrieval
    # circuit on the base recipe: 0/200 dev needles at L0, 2026-11-29; this S retrieved 200/200
    # at 128 tokens after the short curriculum in a scratch run, 2026-12-02)
    "S": OrganismConfig(num_layers=2),
    "M": OrganismConfig(),
    # v3: L has 4 layers (v2: 5) so that it trains on base's recipe and tokens within the budget
    "L": OrganismConfig(hidden_size=192, num_layers=4, num_heads=3, num_kv_heads=3, intermediate_size=512),
}


def build(config: OrganismConfig, seed: int = 0, **llama_kwargs) -> LlamaForCausalLM:
    """Random-init organism (weights depend only on ``seed``)."""
    import torch

    torch.manual_seed(seed)
    model = LlamaForCausalLM(config.to_llama(**llama_kwargs))
    return model


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())
