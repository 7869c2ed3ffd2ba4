"""ropelib.core.interventions: query scaling by position, scoped, seen by the probe, right under a KV cache; sinks."""

import copy
import math

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ropelib.core import metrics, probe
from ropelib.core.interventions import (first_token_entropies, fit_entropy_matched_temperature, fixed_temperature,
                                   log_length_factor, log_length_scaling, scaled_queries)

torch.set_num_threads(1)

VOCAB, L0 = 300, 16
ATOL = 1e-5


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    """hidden 64, 2 layers, 4 heads of dim 16 on 2 kv heads; weights large enough that rows are far from uniform."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=L0,
                         initializer_range=0.15, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                         attn_implementation="sdpa")
    return LlamaForCausalLM(config).eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def logits_of(model, ids) -> torch.Tensor:
    return model(ids).logits


@torch.no_grad()
def q_proj_output(model, ids, layer: int = 0) -> torch.Tensor:
    """What layer ``layer``'s q_proj returned (after any scaling hook), (batch, seq, heads * head_dim)."""
    seen = []
    handle = model.model.layers[layer].self_attn.q_proj.register_forward_hook(lambda m, a, out: seen.append(out))
    try:
        model(ids)
    finally:
        handle.remove()
    return seen[0]


# --- the factor --------------------------------------------------------------------------------

def test_log_length_factor_numbers():
    factor = log_length_factor(torch.arange(4 * L0), alpha=0.5, train_length=L0)
    assert factor.dtype == torch.float32
    assert torch.equal(factor[:L0], torch.ones(L0))  # n = p + 1 <= L0: untouched
    assert factor[4 * L0 - 1].item() == pytest.approx(1 + 0.5 * math.log(4), abs=1e-6)  # n = 4 L0
    assert factor[4 * L0 - 1].item() == pytest.approx(1.6931472, abs=1e-6)
    assert factor[2 * L0 - 1].item() == pytest.approx(1 + 0.5 * math.log(2), abs=1e-6)
    assert torch.all(factor[1:] >= factor[:-1])


# --- scoped and exact --------------------------------------------------------------------------

def test_alpha_zero_is_bit_identical_and_exit_restores():
    model, ids = tiny_llama(), tokens(2, 4 * L0)
    before = logits_of(model, ids)
    with log_length_scaling(model, 0.0, L0):
        assert torch.equal(logits_of(model, ids), before)
    with log_length_scaling(model, 0.5, L0):
        scaled = logits_of(model, ids)
    assert not torch.allclose(scaled[:, L0:], before[:, L0:])
    torch.testing.assert_close(scaled[:, :L0], before[:, :L0], atol=ATOL, rtol=0)  # n <= L0: factor 1
    assert torch.equal(logits_of(model, ids), before)
    with pytest.raises(KeyError), fixed_temperature(model, 0.5):
        raise KeyError("inside the block")
    assert torch.equal(logits_of(model, ids), before)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_queries_below_l0_untouched_and_above_scaled_by_the_formula():
    model, ids = tiny_llama(), tokens(2, 4 * L0)
    plain = q_proj_output(model, ids)
    with log_length_scaling(model, 0.5, L0):
        scaled = q_proj_output(model, ids)
    assert torch.equal(scaled[:, :L0], plain[:, :L0])
    factor = 1 + 0.5 * torch.log(torch.arange(L0 + 1, 4 * L0 + 1) / L0)  # n = p + 1 for p = L0 .. 4 L0 - 1
    torch.testing.assert_close(scaled[:, L0:], plain[:, L0:] * factor[None, :, None], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(scaled[:, -1] / plain[:, -1], torch.full_like(plain[:, -1], 1.6931472), atol=1e-4, rtol=0)


def test_constant_factor_equals_scaling_q_weights_and_probe_sees_it():
    c = 1.7
    model, ids = tiny_llama(), tokens(2, 40)
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for layer in reference.model.layers:
            layer.self_attn.q_proj.weight.mul_(c)
    with torch.no_grad():
        expected = reference(ids).logits
        reference.set_attn_implementation("eager")
        eager_rows = [a[:, :, -3:] for a in reference(ids, output_attentions=True).attentions]
        with fixed_temperature(model, 1 / c), probe.capture(model, queries=3) as inner:
            logits = model(ids).logits
        with probe.capture(model, queries=3) as outer, scaled_queries(model, lambda p: torch.full(p.shape, c)):
            model(ids)
    torch.testing.assert_close(logits, expected, atol=ATOL, rtol=1e-5)
    for rec in (inner, outer):  # either nesting order: the probe rows are the scaled rows
        for rows, eager in zip(rec.attention, eager_rows):
            torch.testing.assert_close(rows, eager, atol=ATOL, rtol=0)


def test_nested_interventions_multiply():
    model, ids = tiny_llama(), tokens(1, 24)
    with fixed_temperature(model, 0.5), fixed_temperature(model, 0.8):
        nested = logits_of(model, ids)
    with fixed_temperature(model, 0.4):
        single = logits_of(model, ids)
    torch.testing.assert_close(nested, single, atol=ATOL, rtol=1e-5)


def test_probe_rows_under_log_scaling_have_lower_entropy():
    model, ids = tiny_llama(), tokens(2, 4 * L0)
    queries = list(range(L0, 4 * L0))  # every query beyond L0
    with torch.no_grad():
        with probe.capture(model, queries=queries) as plain:
            model(ids)
        with log_length_scaling(model, 1.0, L0), probe.capture(model, queries=queries) as scaled:
            model(ids)
    first_layer = plain.attention[0]  # (batch, heads, queries, keys)
    assert first_layer.amax() < 0.99 and metrics.entropy(first_layer).amin() > 0.1  # not one-hot
    # layer 0 sees the same logits times c > 1: every row's entropy falls (dH/dc = -c Var_p(s) < 0)
    assert torch.all(metrics.entropy(scaled.attention[0]) < metrics.entropy(first_layer))
    mean = [torch.stack([metrics.entropy(r) for r in rec.attention]).mean() for rec in (plain, scaled)]
    assert mean[1] < mean[0] - 0.05


# --- first-token entropy and the entropy-matched temperature ----------------------------------

def test_first_token_entropy_is_the_row_that_generates_the_first_answer_token():
    model, prompts = tiny_llama(), tokens(3, 30, seed=5)
    entropies = first_token_entropies(model, prompts.tolist(), batch_size=2)
    with torch.no_grad(), probe.capture_generation(model, prompt_length=30) as rec:
        model.generate(prompts, max_new_tokens=2, min_new_tokens=2, do_sample=False)
    first_row = rec.stacked("prompt")[:, :, :, 0]  # (layers, batch, heads, keys)
    expected = metrics.entropy(first_row).double().mean(dim=(0, 2))
    np.testing.assert_allclose(entropies, expected.numpy(), atol=1e-5)
    assert entropies.shape == (3,)


def test_fitted_temperature_reproduces_the_reference_entropy():
    model = tiny_llama()
    prompts = {L0: tokens(4, L0, seed=7).tolist(), 4 * L0: tokens(4, 4 * L0, seed=8).tolist()}
    taus = fit_entropy_matched_temperature(model, prompts, reference_length=L0, xtol=1e-6)
    target = first_token_entropies(model, prompts[L0]).mean()
    assert taus[L0] == 1.0
    assert first_token_entropies(model, prompts[4 * L0]).mean() > target + 0.1  # the gap the fit closes
    assert 0 < taus[4 * L0] < 1
    with fixed_temperature(model, taus[4 * L0]):
        matched = first_token_entropies(model, prompts[4 * L0]).mean()
    assert matched == pytest.approx(target, abs=1e-3)


def test_unreachable_target_gives_nan_and_a_warning():
    model = tiny_llama()
    prompts = {L0: tokens(2, L0, seed=7).tolist(), 4 * L0: tokens(2, 4 * L0, seed=8).tolist()}
    with pytest.warns(UserWarning, match="no tau"):
        taus = fit_entropy_matched_temperature(model, prompts, reference_length=L0, bracket=(0.99, 1.01))
    assert math.isnan(taus[4 * L0])


# --- generation with a KV cache ------------------------------------------------------------------

def test_greedy_generation_with_cache_matches_full_forward_recomputation():
    model, prompt = tiny_llama(), tokens(2, 40, seed=3)
    with torch.no_grad(), log_length_scaling(model, 1.0, L0):
        out = model.generate(prompt, max_new_tokens=3, min_new_tokens=3, do_sample=False, use_cache=True,
                             output_logits=True, return_dict_in_generate=True)
        sequence, manual_logits = prompt, []
        for _ in range(3):  # full forward, no cache: positions 0 .. len-1 from scratch
            last = model(sequence, use_cache=False).logits[:, -1]
            manual_logits.append(last)
            sequence = torch.cat([sequence, last.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out.sequences, sequence)
    for cached, full in zip(out.logits, manual_logits):
        torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-4)
    plain_last = logits_of(model, prompt)[:, -1]
    assert not torch.allclose(plain_last, manual_logits[0], atol=1e-3)  # the intervention acted


# --- arguments ---------------------------------------------------------------------------------

def test_bad_arguments():
    model = tiny_llama()
    for tau in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="tau"):
            fixed_temperature(model, tau)
    with pytest.raises(ValueError, match="alpha"):
        log_length_scaling(model, -0.1, L0)
    with pytest.raises(ValueError, match="q_proj"), scaled_queries(torch.nn.Linear(2, 2), lambda p: p):
        pass
    with pytest.raises(ValueError, match="reference_length"):
        fit_entropy_matched_temperature(model, {32: tokens(1, 32).tolist()}, reference_length=L0)


# --- attention sinks (metrics) --------------------------------------------------------------------

def test_sink_mass_and_sink_free_rows():
    model, ids = tiny_llama(), tokens(2, 40)
    with torch.no_grad(), probe.capture(model, queries=5) as rec:
        model(ids)
    rows = torch.stack(rec.attention)  # (layer, batch, head, query, key)
    mass = metrics.sink_mass(rows)
    assert mass.shape == rows.shape[:-1] and torch.all((mass >= 0) & (mass <= 1))
    free = metrics.without_sink(rows)
    assert free.shape[-1] == rows.shape[-1] - 1
    torch.testing.assert_close(free.sum(-1), torch.ones(rows.shape[:-1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(free * (1 - mass[..., None]), rows[..., 1:], atol=1e-6, rtol=0)
    np.testing.assert_allclose(metrics.without_sink(rows.numpy()), free.numpy(), atol=1e-6)
    only_sink = np.array([[1.0, 0.0, 0.0], [0.5, 0.25, 0.25]])
    np.testing.assert_allclose(metrics.without_sink(only_sink), [[0.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(metrics.sink_mass(only_sink), [1.0, 0.5])
    assert torch.equal(metrics.without_sink(torch.tensor(only_sink)), torch.tensor([[0.0, 0.0], [0.5, 0.5]],
                                                                                       dtype=torch.float64))
