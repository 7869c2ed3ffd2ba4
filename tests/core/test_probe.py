"""ropelib.core.probe: rows equal eager attention, outputs unchanged, scoped, masks and generation handled."""

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.integrations.sdpa_attention import repeat_kv

from ropelib.core import metrics, probe
from ropelib.core.extensions import METHODS, apply

torch.set_num_threads(1)

VOCAB, PRETRAINED = 300, 16
ATOL = 1e-5


def tiny_llama(seed: int = 0, kv_heads: int = 2) -> LlamaForCausalLM:
    """hidden 64, 2 layers, 4 heads of dim 16 sharing 2 kv heads (GQA), pretrained length 16."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=PRETRAINED,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, attn_implementation="sdpa")
    return LlamaForCausalLM(config).eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def eager_attentions(model, input_ids, attention_mask=None) -> list[torch.Tensor]:
    """The reference: output_attentions=True under eager attention, [layer] -> (batch, heads, L, L)."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        return list(model(input_ids, attention_mask=attention_mask, output_attentions=True).attentions)
    finally:
        model.set_attn_implementation(previous)


def assert_rows_equal(rows: list[torch.Tensor], reference: list[torch.Tensor]) -> None:
    assert len(rows) == len(reference)
    for probed, eager in zip(rows, reference):
        assert probed.dtype == torch.float32 and probed.shape == eager.shape
        torch.testing.assert_close(probed, eager.float(), atol=ATOL, rtol=0)


# --- rows equal eager attention; logits unchanged -----------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_rows_and_logits_for_every_method(method):
    model = apply(tiny_llama(), method, 4.0)
    ids = tokens(2, 40)  # past the pretrained length 16, so every method acts
    with torch.no_grad():
        logits = model(ids).logits
        with probe.capture(model, queries=6) as last:
            probed_logits = model(ids).logits
        with probe.capture(model, queries=[0, 5, -1, 17]) as explicit:
            model(ids)
    assert torch.equal(probed_logits, logits)
    reference = eager_attentions(model, ids)
    assert torch.equal(last.query_positions, torch.arange(34, 40))
    assert_rows_equal(last.attention, [a[:, :, -6:] for a in reference])
    assert torch.equal(explicit.query_positions, torch.tensor([0, 5, 39, 17]))
    assert_rows_equal(explicit.attention, [a[:, :, [0, 5, 39, 17]] for a in reference])


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_gqa_head_mapping_matches_repeat_kv(kv_heads):
    model = tiny_llama(kv_heads=kv_heads)
    ids = tokens(3, 24)
    with torch.no_grad(), probe.capture(model, queries=3) as rec:
        model(ids)
    assert_rows_equal(rec.attention, [a[:, :, -3:] for a in eager_attentions(model, ids)])


def test_attention_rows_against_a_direct_computation():
    generator = torch.Generator().manual_seed(3)
    query = torch.randn(2, 6, 3, 8, generator=generator)  # (batch, heads, n, d)
    key = torch.randn(2, 2, 10, 8, generator=generator)  # (batch, kv_heads, kv_len, d)
    positions = torch.tensor([4, 9, 0])
    rows = probe.attention_rows(query, key, 0.3, positions)
    scores = query @ repeat_kv(key, 3).transpose(-1, -2) * 0.3
    future = torch.arange(10)[None, :] > positions[:, None]
    expected = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
    torch.testing.assert_close(rows, expected, atol=1e-6, rtol=0)
    assert rows[..., 0, 5:].abs().max() == 0 and rows[..., 2, 1:].abs().max() == 0
    no_key_visible = probe.attention_rows(query, key, 0.3, positions, key_offset=20)
    assert torch.equal(no_key_visible, torch.zeros_like(no_key_visible))  # fully masked rows are 0, not NaN


def test_yarn_temperature_is_inside_the_rows():
    """cos and sin carry YaRN's factor a, so layer-0 logit differences scale by exactly a^2."""
    model = apply(tiny_llama(), "yarn", 4.0)
    rotary, ids = model.model.rotary_emb, tokens(1, 30)
    a = 0.1 * math.log(4.0) + 1
    assert rotary.attention_scaling == pytest.approx(a)
    with torch.no_grad():
        with probe.capture(model, queries=1) as tempered:
            model(ids)
        rotary.attention_scaling = 1.0
        with probe.capture(model, queries=1) as plain:
            model(ids)
    log_ratio = lambda rows: rows.double().log() - rows.double().log()[..., :1]  # noqa: E731
    torch.testing.assert_close(log_ratio(tempered.attention[0]), a**2 * log_ratio(plain.attention[0]),
                               atol=1e-4, rtol=1e-4)


# --- scoped: restores the implementation; outputs unchanged afterwards ---------------------------

def test_restores_the_attention_implementation():
    model, ids = tiny_llama(), tokens(1, 20)
    with torch.no_grad():
        before = model(ids).logits
        with probe.capture(model, queries=2):
            assert model.config._attn_implementation == probe.NAME
            model(ids)
        assert model.config._attn_implementation == "sdpa"
        with pytest.raises(ZeroDivisionError), probe.capture(model, queries=2):
            model(ids)
            1 / 0
        assert model.config._attn_implementation == "sdpa"
        with pytest.raises(ValueError, match="not among this forward pass's queries"):
            with probe.capture(model, queries=[25]):
                model(ids)
        assert model.config._attn_implementation == "sdpa"
        assert torch.equal(model(ids).logits, before)


def test_an_eager_model_is_warned_and_restored():
    model = tiny_llama()
    model.set_attn_implementation("eager")
    with pytest.warns(UserWarning, match="outputs are those of 'sdpa'"), probe.capture(model):
        model(tokens(1, 8))
    assert model.config._attn_implementation == "eager"


def test_unsupported_models_and_bad_queries():
    with pytest.raises(ValueError, match="not a transformers PreTrainedModel"), probe.capture(torch.nn.Linear(2, 2)):
        pass
    for queries in (0, [], 1.5, [[1, 2]], True):
        with pytest.raises(ValueError, match="queries="), probe.capture(tiny_llama(), queries=queries):
            pass
    model = tiny_llama()
    with probe.capture(model), pytest.raises(RuntimeError, match="cannot be nested"), probe.capture(model):
        pass


def test_a_model_outside_the_attention_interface_is_refused(monkeypatch):
    monkeypatch.setattr(LlamaForCausalLM, "_can_set_attn_implementation_cached_value", False)
    with pytest.raises(ValueError, match="does not dispatch attention through transformers' AttentionInterface"):
        with probe.capture(tiny_llama()):
            pass


def test_several_forward_passes_are_kept_apart():
    model = tiny_llama()
    with torch.no_grad(), probe.capture(model, queries=2, reduce=metrics.entropy, store_device="cpu") as rec:
        model(tokens(1, 10))
        model(tokens(1, 12))
    assert len(rec.forwards) == 2 and rec.forwards[1].attention[0].shape == (1, 4, 2)  # entropies
    with pytest.raises(RuntimeError, match="2 forward passes"):
        rec.attention


# --- masks and the KV cache --------------------------------------------------------------------

def test_left_padded_batch_uses_the_padding_mask():
    model, ids = tiny_llama(), tokens(2, 20)
    mask = torch.ones_like(ids)
    mask[0, :7] = 0
    ids[0, :7] = 0  # left padding of the first example
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits
        with probe.capture(model, queries=4) as rec:
            probed = model(ids, attention_mask=mask).logits
    assert torch.equal(probed, logits)
    assert_rows_equal(rec.attention, [a[:, :, -4:] for a in eager_attentions(model, ids, mask)])
    assert rec.attention[0][0, :, :, :7].abs().max() == 0  # no mass on padding


def test_queries_after_a_kv_cache():
    model, ids = tiny_llama(), tokens(2, 30)
    with torch.no_grad():
        cache = model(ids[:, :24], use_cache=True).past_key_values
        with probe.capture(model, queries=[-1, 25]) as rec:
            model(ids[:, 24:], past_key_values=cache)
    assert torch.equal(rec.query_positions, torch.tensor([29, 25]))
    assert_rows_equal(rec.attention, [a[:, :, [29, 25]] for a in eager_attentions(model, ids)])


# --- generation --------------------------------------------------------------------------------

@pytest.mark.parametrize("use_cache", [True, False])
def test_generated_tokens_rows_match_a_full_eager_pass(use_cache):
    model, prompt, new = apply(tiny_llama(), "ntk", 4.0), tokens(2, 20), 5
    settings = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, use_cache=use_cache)
    with torch.no_grad():
        plain = model.generate(prompt, **settings)
        with probe.capture_generation(model, prompt_length=20) as rec:
            generated = model.generate(prompt, **settings)
    assert torch.equal(generated, plain) and generated.shape == (2, 20 + new)
    assert rec.prompt_length == 20 and torch.equal(rec.query_positions, torch.arange(19, 19 + new))
    # token t is generated by the query at position 19 + t, which sees keys 0 .. 19 + t
    reference = eager_attentions(model, generated[:, :-1])
    assert_rows_equal(rec.attention, [a[:, :, 19:] for a in reference])
    stacked = rec.stacked("prompt")
    assert stacked.shape == (2, 2, 4, new, 20)
    torch.testing.assert_close(stacked, torch.stack([a[:, :, 19:, :20] for a in reference]), atol=ATOL, rtol=0)
    assert [step[0].shape[-1] for step in rec.steps] == list(range(20, 20 + new))


def test_generation_with_left_padding():
    model, prompt = tiny_llama(), tokens(2, 16)
    mask = torch.ones_like(prompt)
    mask[1, :5], prompt[1, :5] = 0, 0
    settings = dict(max_new_tokens=4, min_new_tokens=4, do_sample=False)
    with torch.no_grad(), probe.capture_generation(model) as rec:
        generated = model.generate(prompt, attention_mask=mask, **settings)
    full_mask = torch.cat([mask, torch.ones(2, 3, dtype=mask.dtype)], dim=1)
    reference = eager_attentions(model, generated[:, :-1], full_mask)
    assert_rows_equal(rec.attention, [a[:, :, 15:] for a in reference])
