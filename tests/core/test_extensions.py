"""ropelib.core.extensions: frequencies against transformers' registry and closed forms, apply in place, bad input."""

import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from ropelib.core import extensions
from ropelib.core.extensions import METHODS, apply, describe, frequencies

torch.set_num_threads(1)

HEAD_DIM, BASE, LENGTH = 128, 10_000.0, 4096  # LLaMA-2 geometry
FACTORS = (2, 4, 8, 16)


def default_inv_freq(base: float, dim: int = HEAD_DIM) -> torch.Tensor:
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))


def registry(rope_parameters: dict, max_position: int) -> tuple[torch.Tensor, float]:
    config = LlamaConfig(hidden_size=HEAD_DIM, num_attention_heads=1, head_dim=HEAD_DIM,
                         max_position_embeddings=max_position, rope_parameters=rope_parameters)
    return ROPE_INIT_FUNCTIONS[rope_parameters["rope_type"]](config)


def tiny_llama(seed: int = 0, max_position: int = 16, layers: int = 2) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_position,
                         attn_implementation="sdpa")
    return LlamaForCausalLM(config).eval()


# --- frequencies: closed forms and transformers' registry -------------------------------------

def test_rope_is_the_default_frequencies():
    inv_freq, scaling = frequencies("rope", HEAD_DIM, BASE)
    assert torch.equal(inv_freq, default_inv_freq(BASE)) and scaling == 1.0
    assert inv_freq.shape == (HEAD_DIM // 2,)


@pytest.mark.parametrize("factor", FACTORS)
def test_pi_divides_the_default_frequencies(factor):
    inv_freq, scaling = frequencies("pi", HEAD_DIM, BASE, factor)
    torch.testing.assert_close(inv_freq, default_inv_freq(BASE) / factor, rtol=1e-6, atol=0)
    expected, _ = registry({"rope_type": "linear", "rope_theta": BASE, "factor": float(factor)}, LENGTH * factor)
    assert torch.equal(inv_freq, expected) and scaling == 1.0


@pytest.mark.parametrize("factor", FACTORS)
def test_ntk_is_default_at_the_ntk_aware_base(factor):
    inv_freq, scaling = frequencies("ntk", HEAD_DIM, BASE, factor)
    new_base = BASE * factor ** (HEAD_DIM / (HEAD_DIM - 2))
    torch.testing.assert_close(inv_freq, default_inv_freq(new_base), rtol=1e-6, atol=0)
    assert scaling == 1.0
    # the lowest-frequency pair is interpolated by exactly s
    assert inv_freq[-1].item() == pytest.approx(default_inv_freq(BASE)[-1].item() / factor, rel=1e-5)


@pytest.mark.parametrize("ntk_base", [1e5, 5e5, 1e6])
def test_ntk_with_an_explicit_base(ntk_base):
    inv_freq, _ = frequencies("ntk", HEAD_DIM, BASE, ntk_base=ntk_base)
    assert torch.equal(inv_freq, default_inv_freq(ntk_base))


@pytest.mark.parametrize("factor", FACTORS)
def test_yarn_between_pi_and_rope_with_its_temperature(factor):
    inv_freq, scaling = frequencies("yarn", HEAD_DIM, BASE, factor, LENGTH)
    default = default_inv_freq(BASE)
    assert torch.all(inv_freq <= default * (1 + 1e-6)) and torch.all(inv_freq >= default / factor * (1 - 1e-6))
    assert inv_freq[0] == default[0] and inv_freq[-1] == pytest.approx(default[-1].item() / factor, rel=1e-6)
    assert scaling == pytest.approx(0.1 * math.log(factor) + 1)
    expected, expected_scaling = registry(
        {"rope_type": "yarn", "rope_theta": BASE, "factor": float(factor), "original_max_position_embeddings": LENGTH,
         "beta_fast": 32.0, "beta_slow": 1.0}, LENGTH * factor)
    assert torch.equal(inv_freq, expected) and scaling == expected_scaling


@pytest.mark.parametrize("factor", FACTORS)
def test_llama3_bounded_and_from_the_registry(factor):
    inv_freq, scaling = frequencies("llama3", HEAD_DIM, BASE, factor, LENGTH)
    default = default_inv_freq(BASE)
    assert torch.all(inv_freq <= default * (1 + 1e-6)) and torch.all(inv_freq >= default / factor * (1 - 1e-6))
    expected, _ = registry(
        {"rope_type": "llama3", "rope_theta": BASE, "factor": float(factor), "original_max_position_embeddings": LENGTH,
         "low_freq_factor": 1.0, "high_freq_factor": 4.0}, LENGTH * factor)
    assert torch.equal(inv_freq, expected) and scaling == 1.0


def test_dynamic_ntk_at_the_pretrained_length_is_rope():
    inv_freq, scaling = frequencies("dynamic_ntk", HEAD_DIM, BASE, 4, LENGTH)
    assert torch.equal(inv_freq, default_inv_freq(BASE)) and scaling == 1.0


# inv_freq at pair indices (0, 24, 32, 40, 63) and the cos/sin scaling, LLaMA-2 geometry
# (head_dim 128, base 10000, original length 4096). Computed once with transformers 5.23.0.
PAIRS = (0, 24, 32, 40, 63)
SNAPSHOTS = {
    "pi": {
        2: ([0.5, 0.015811389312148094, 0.004999999888241291, 0.0015811389312148094, 5.773909651907161e-05], 1.0),
        4: ([0.25, 0.007905694656074047, 0.0024999999441206455, 0.0007905694656074047, 2.8869548259535804e-05], 1.0),
        8: ([0.125, 0.0039528473280370235, 0.0012499999720603228, 0.00039528473280370235, 1.4434774129767902e-05], 1.0),
        16: ([0.0625, 0.0019764236640185118, 0.0006249999860301614, 0.00019764236640185118, 7.217387064883951e-06],
             1.0),
    },
    "ntk": {
        2: ([1.0, 0.02428409457206726, 0.007032275665551424, 0.002036431571468711, 5.773909651907161e-05], 1.0),
        4: ([1.0, 0.01864849589765072, 0.004945289809256792, 0.001311413710936904, 2.886955189751461e-05], 1.0),
        8: ([1.0, 0.01432074885815382, 0.003477663965895772, 0.0008445191779173911, 1.4434774129767902e-05], 1.0),
        16: ([1.0, 0.010997339151799679, 0.0024455892853438854, 0.000543850299436599, 7.217387974378653e-06], 1.0),
    },
    "yarn": {
        2: ([1.0, 0.02919025719165802, 0.007692307699471712, 0.0019460171461105347, 5.773909651907161e-05],
            1.0693147180559945),
        4: ([1.0, 0.027973996475338936, 0.006538461893796921, 0.0013378867879509926, 2.8869548259535804e-05],
            1.138629436111989),
        8: ([1.0, 0.02736586518585682, 0.0059615387581288815, 0.0010338216088712215, 1.4434774129767902e-05],
            1.2079441541679836),
        16: ([1.0, 0.02706180140376091, 0.005673076957464218, 0.0008817889611236751, 7.217387064883951e-06],
             1.2772588722239782),
    },
    "llama3": {
        2: ([1.0, 0.03162277862429619, 0.009999999776482582, 0.0021405904553830624, 5.773909651907161e-05], 1.0),
        4: ([1.0, 0.03162277862429619, 0.009999999776482582, 0.0016297467518597841, 2.8869548259535804e-05], 1.0),
        8: ([1.0, 0.03162277862429619, 0.009999999776482582, 0.001374324900098145, 1.4434774129767902e-05], 1.0),
        16: ([1.0, 0.03162277862429619, 0.009999999776482582, 0.0012466139160096645, 7.217387064883951e-06], 1.0),
    },
}


@pytest.mark.parametrize("method,factor", [(m, s) for m in SNAPSHOTS for s in FACTORS])
def test_llama2_snapshots(method, factor):
    inv_freq, scaling = frequencies(method, HEAD_DIM, BASE, factor, LENGTH)
    values, expected_scaling = SNAPSHOTS[method][factor]
    torch.testing.assert_close(inv_freq[list(PAIRS)], torch.tensor(values), rtol=1e-6, atol=0)
    assert scaling == pytest.approx(expected_scaling, rel=1e-12)


# --- apply: in place, weights untouched, reversible -------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_apply_in_place_leaves_weights_untouched(method):
    model = tiny_llama()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    assert apply(model, method, 4.0) is model
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert describe(model)["method"] == method


def test_switching_back_to_rope_matches_a_fresh_model():
    ids = torch.randint(0, 300, (1, 40), generator=torch.Generator().manual_seed(1))
    model = tiny_llama()
    with torch.no_grad():
        fresh = model(ids).logits
        for method in ("yarn", "pi", "dynamic_ntk", "rope"):
            apply(model, method, 4.0)
            switched = model(ids).logits
    assert torch.equal(switched, fresh)
    assert torch.equal(tiny_llama()(ids).logits.detach(), fresh)


def test_yarn_scaling_reaches_the_rotary_module():
    model = apply(tiny_llama(), "yarn", 4.0)
    assert model.model.rotary_emb.attention_scaling == pytest.approx(0.1 * math.log(4) + 1)
    assert describe(model)["attention_scaling"] == pytest.approx(0.1 * math.log(4) + 1)


def test_dynamic_ntk_does_not_keep_a_long_inputs_base():
    model = apply(tiny_llama(max_position=16), "dynamic_ntk", 4.0)
    rotary = model.model.rotary_emb
    generator = torch.Generator().manual_seed(2)
    short = torch.randint(0, 300, (1, 12), generator=generator)
    long = torch.randint(0, 300, (1, 80), generator=generator)
    with torch.no_grad():
        before = model(short).logits
        model(long)
        assert not torch.equal(rotary.inv_freq, rotary.original_inv_freq)  # the long pass grew the base
        after = model(short).logits
    assert torch.equal(before, after)


def test_a_prompt_fed_in_pieces_rotates_as_one_pass_inside_rotation_of_length():
    """Dynamic NTK's base follows each call's last position: a cached prefix and its continuation get
    another base than one pass over both, unless both run inside rotation_of_length(model, total)."""
    from transformers import DynamicCache

    model = apply(tiny_llama(max_position=16), "dynamic_ntk", 4.0)
    ids = torch.randint(0, 300, (1, 40), generator=torch.Generator().manual_seed(3))  # past L0 = 16
    prefix = 10  # shorter than L0: transformers alone would rotate it by the pretrained base

    def in_pieces():
        cache = DynamicCache(config=model.config)
        model(ids[:, :prefix], past_key_values=cache, use_cache=True)
        return model(ids[:, prefix:], past_key_values=cache, use_cache=True).logits

    with torch.no_grad():
        one_pass = model(ids).logits[:, prefix:]
        assert not torch.allclose(in_pieces(), one_pass, atol=1e-4)  # the test can fail
        with extensions.rotation_of_length(model, ids.shape[1]):
            assert torch.allclose(in_pieces(), one_pass, atol=1e-5)
        assert torch.equal(model(ids).logits[:, prefix:], one_pass)  # the module's own rule again after the block
    static = apply(tiny_llama(max_position=16), "ntk", 4.0)
    with torch.no_grad(), extensions.rotation_of_length(static, 40):  # a static RoPE: nothing to fix, nothing changed
        assert torch.equal(static(ids).logits, apply(tiny_llama(max_position=16), "ntk", 4.0)(ids).logits)
    with pytest.raises(ValueError, match="length=0"):
        with extensions.rotation_of_length(model, 0):
            pass
    with pytest.raises(RuntimeError, match="do not nest"):
        with extensions.rotation_of_length(model, 40), extensions.rotation_of_length(model, 50):
            pass
    assert model.model.rotary_emb.rope_type == "dynamic"  # restored after the error


# --- bad input ---------------------------------------------------------------------------------

def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="expected one of rope, pi, ntk, ntk100, yarn, dynamic_ntk, llama3"):
        frequencies("longrope", HEAD_DIM, BASE, 2.0, LENGTH)
    with pytest.raises(ValueError, match="is not a RoPE extension"):
        apply(tiny_llama(), "alibi", 2.0)


@pytest.mark.parametrize("factor", [0.5, 0, -2, True, "2"])
def test_factor_below_one_is_refused(factor):
    with pytest.raises(ValueError, match="must be a number >= 1"):
        frequencies("pi", HEAD_DIM, BASE, factor)
    with pytest.raises(ValueError, match="must be a number >= 1"):
        apply(tiny_llama(), "pi", factor)


@pytest.mark.parametrize("method", ["yarn", "dynamic_ntk", "llama3"])
def test_methods_needing_the_pretrained_length(method):
    with pytest.raises(ValueError, match="needs original_max_position"):
        frequencies(method, HEAD_DIM, BASE, 2.0)
    with pytest.raises(ValueError, match="needs original_max_position"):
        extensions.rope_parameters(method, BASE, 2.0)


def test_a_model_without_rotary_embedding_is_refused():
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=32, n_embd=32, n_layer=1, n_head=2,
                                      bos_token_id=0, eos_token_id=0))
    with pytest.raises(ValueError, match="has no rotary embedding"):
        apply(gpt2, "pi", 2.0)
    with pytest.raises(ValueError, match="has no rotary embedding"):
        describe(gpt2)


def test_frozen_pairs_stops_the_slow_pairs_only_inside_the_block():
    model = tiny_llama()
    rotary = model.model.rotary_emb
    before = rotary.inv_freq.clone()
    ids = torch.arange(3, 15).unsqueeze(0)
    logits = model(ids).logits
    pairs = before.numel()
    threshold = 2 * math.pi / float(before[pairs // 2])  # the pairs after this one are slower
    with extensions.frozen_pairs(model, threshold) as n_frozen:
        inside = rotary.inv_freq.clone()
        frozen_logits = model(ids).logits
    slow = extensions.wavelengths(before) > threshold
    assert n_frozen == int(slow.sum()) == pairs - pairs // 2 - 1
    assert torch.all(inside[slow] == 0) and torch.equal(inside[~slow], before[~slow])
    assert not torch.allclose(frozen_logits, logits)
    assert torch.equal(rotary.inv_freq, before) and torch.equal(model(ids).logits, logits)


def test_frozen_pairs_with_every_pair_frozen_ignores_position():
    """theta = 0 for all pairs: no position signal, so in one layer the last token's prediction
    depends on the set of tokens before it, not their order (attention sees only content)."""
    model = tiny_llama(layers=1)
    with extensions.frozen_pairs(model, 0.0) as n_frozen, torch.no_grad():
        assert n_frozen == model.model.rotary_emb.inv_freq.numel()
        a = model(torch.tensor([[5, 7, 7]])).logits[0, -1]
        b = model(torch.tensor([[7, 5, 7]])).logits[0, -1]
    assert torch.allclose(a, b, atol=1e-5)
    with torch.no_grad():  # with rotation, the order shows
        assert not torch.allclose(model(torch.tensor([[5, 7, 7]])).logits[0, -1],
                                  model(torch.tensor([[7, 5, 7]])).logits[0, -1], atol=1e-5)


def test_frozen_pairs_refuses_dynamic_ntk():
    model = extensions.apply(tiny_llama(), "dynamic_ntk", 2.0)
    with pytest.raises(ValueError, match="dynamic_ntk"):
        with extensions.frozen_pairs(model, 1.0):
            pass


def test_ntk100_raises_the_base_100_times_whatever_the_factor():
    for factor in (2.0, 4.0, 8.0):
        inv_freq, scaling = frequencies("ntk100", head_dim=64, base=663.0, factor=factor)
        expected, _ = frequencies("rope", head_dim=64, base=66300.0)
        assert torch.allclose(inv_freq, expected) and scaling == 1.0


def test_effective_bases_read_back_the_closed_forms():
    """The bases the rescaling page shows are read back from transformers' frequencies and match
    the closed forms: NTK-aware b s^(d/(d-2)), Code Llama 100 b, Dynamic NTK b (s l/L - s + 1)^(d/(d-2))."""
    from ropelib.findings.rope_rescaling import analysis as geometry_plots
    d, b, L, s = 128, 10000.0, 4096, 4.0
    table = geometry_plots.effective_bases(d, b, L, s).set_index(["method", "at length"])["b' / b"]
    assert table[("ntk", "any")] == pytest.approx(s ** (d / (d - 2)), rel=1e-3)
    assert table[("ntk100", "any")] == pytest.approx(100, rel=1e-3)
    assert table[("dynamic_ntk", "4,096")] == pytest.approx(1, rel=1e-3)
    assert table[("dynamic_ntk", "16,384")] == pytest.approx((s * s - s + 1) ** (d / (d - 2)), rel=1e-3)
    assert table[("dynamic_ntk", "16,384")] > 3 * table[("ntk", "any")]  # same s, a much stronger stretch
