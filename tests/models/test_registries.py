"""Issue 36: a RoPE method and a real model are each ONE registry entry; model handles never switch silently.

- a toy method registered in ``core.methods`` passes every chapter's parameter check (params.validate, then
  the pre-flight ``sources.check_parameters``) and is applied by ``extensions.apply``, options included;
- a fake real model registered in ``models.real`` passes ``-p model NAME``'s pre-flight, its page's tables
  get ``-NAME`` names, and the glance table shows it as a model column;
- a ``ModelCache`` handle refuses to run once a later ``get`` switched its shared model to another method;
- ``sources.check_source`` checks a source once while its files are unchanged.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ropelib import results
from ropelib.core import extensions, methods
from ropelib.findings.glance import table as glance
from ropelib.models import lineup, real, sources, variants
from ropelib.models.load import LoadedModel
from ropelib.publish import params, plan, runner
from manifest_fixtures import huggingface_dir, organisms

LAYOUT = plan.default_layout()
TEMPLATES = sorted(p.stem for p in LAYOUT.root.joinpath("chapters").glob("*.ipynb"))


def _stretched(base, factor, length, head_dim, options) -> dict:
    return {"factor": float(factor) * options["stretch"]}


TOY = methods.Method("toy", "Toy", "linear", _stretched, {"stretch": 2.0})


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2,
                                        max_position_embeddings=16)).eval()


# ---------------------------------------------------------------------------------------------
# A toy RoPE method: one entry


def _with_toy_variants(declarations, source: str) -> dict:
    """Every variant-holding parameter of a chapter, its entries' methods replaced by the toy one on ``source``."""
    given = {}
    for name, parameter in declarations.items():
        default = parameter.default
        if sources.holds_variants(name) and default:
            toy = [f"toy[stretch=3]:{source}" if i == 0 else f"toy:{source}" for i, _ in enumerate(
                default if isinstance(default, list) else [default])]
            given[name] = toy if isinstance(default, list) else toy[0]
    return given


def test_a_toy_method_is_one_registry_entry(tmp_path, monkeypatch):
    source = str(huggingface_dir(organisms(monkeypatch, tmp_path), "hf"))
    checked = 0
    with methods.registered(TOY):
        for template in TEMPLATES:
            declarations = params.declared(LAYOUT.template(template))
            given = _with_toy_variants(declarations, source)
            if not given:
                continue
            parameters = params.validate(declarations, given, template)
            sources.check_parameters(parameters, template)  # every chapter's pre-flight accepts it
            checked += 1
        parsed = variants.parse([f"toy[stretch=3]:{source}", f"toy:{source}"])
        assert [(v.method, dict(v.options)) for v in parsed] == [("toy", {"stretch": 3.0}), ("toy", {})]
        assert parsed[0].label == "Toy stretch=3 (hf)" and parsed[1].label == "Toy (hf)"
        with pytest.raises(sources.SourceError, match="toy has no option 'beta_fast'; its options: stretch"):
            sources.check_variant(f"toy[beta_fast=3]:{source}", "parameter variants")

        model = tiny_llama()
        plain = model.model.rotary_emb.inv_freq.clone()
        extensions.apply(model, "toy", 2.0)  # default stretch 2: linear at factor 4
        torch.testing.assert_close(model.model.rotary_emb.inv_freq, plain / 4)
        extensions.apply(model, "toy", 2.0, stretch=3.0)
        torch.testing.assert_close(model.model.rotary_emb.inv_freq, plain / 6)
        assert extensions.describe(model)["method"] == "toy"
    assert checked >= 4, "chapters with variant parameters"
    assert "toy" not in methods.REGISTRY
    with pytest.raises(sources.SourceError, match="method 'toy'"):
        sources.check_variant(f"toy:{source}", "parameter variants")


def test_every_method_list_is_a_filter_of_the_registry():
    assert methods.METHODS == tuple(methods.REGISTRY)
    assert lineup.TRAINING_FREE == ("rope", "pi", "ntk", "ntk100", "yarn", "dynamic_ntk")
    assert methods.PAPER_EXTENSIONS == ("pi", "ntk", "ntk100", "yarn")
    assert methods.named(variant_of="") == ("rope", "pi", "ntk", "yarn", "dynamic_ntk", "llama3")


# ---------------------------------------------------------------------------------------------
# A fake real model: one entry


def fake_model(directory) -> real.RealModel:
    return real.RealModel("fake", "Fake-1M", "The fake model: a test's.\n", lambda: "fake weights v1",
                          find=lambda: directory, verify=lambda: directory, directory=lambda: directory,
                          prepare=lambda: directory)


def test_a_fake_real_model_is_one_registry_entry(tmp_path, monkeypatch):
    directory = huggingface_dir(organisms(monkeypatch, tmp_path), "fake-hf", max_positions=128)
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path / "results"))
    layout = plan.default_layout()
    with real.registered(fake_model(directory)):
        parameters = params.validate(params.declared(layout.template("needle-entropy")), {"model": "fake"}, "x")
        sources.check_parameters(parameters, "needle-entropy")  # -p model fake: the pre-flight accepts it
        assert sources.measured_model(parameters) == "fake" and sources.measures_only_real(parameters)
        job = runner.Job("needle-entropy", parameters, tmp_path / "page.ipynb")
        assert runner.is_real_model_page(parameters) and runner.model_files(job) == ("fake weights v1",)

        setup = lineup.resolve(model="fake")  # as every model chapter starts
        assert setup.pretrained_length == 128  # L0 from its config
        assert lineup.about(setup) == "The fake model: a test's.\n"
        assert setup.model == "fake"  # the line-up carries the model; the page passes it to the writers
        assert results.named("needle-trials", setup.model) == "needle-trials-fake"
        assert results.write_csv(pd.DataFrame({"a": [1]}), "needle-trials", model=setup.model).name == \
            "needle-trials-fake.csv"
        row = results.glance_row(2.1, "finding2", "a claim", "paper", 1.0, "replicated", "a rule", "needle-entropy")
        written = results.write_glance([row], "finding2", model=setup.model)
        assert written.name == "glance-finding2-fake.csv"
        assert list(pd.read_csv(written)["model"]) == ["fake"]

        assert list(glance.MODELS) == ["organism", "smollm2", "fake"]
        assert glance.MODELS["fake"] == "real model (Fake-1M)" and glance.MODEL_NAMES["fake"] == "Fake-1M"
        html = glance.claims_html(results.read_glance(tmp_path / "results"), plan.load(layout))
        assert "<th>real model (Fake-1M)</th>" in html
    assert list(glance.MODELS) == ["organism", "smollm2"]


# ---------------------------------------------------------------------------------------------
# ModelCache: a handle never runs another method silently


def test_a_handle_refuses_once_its_model_was_switched(monkeypatch):
    model = tiny_llama()
    loads = []
    monkeypatch.setattr(variants.models, "resolve", lambda source: ("organism", source))
    monkeypatch.setattr(variants.models, "load_resolved", lambda kind, path, **kw: loads.append(path) or
                        LoadedModel(model, None, str(path), kind))
    cache = variants.ModelCache()
    rope, pi = variants.Variant("rope", "m", "RoPE (m)"), variants.Variant("pi", "m", "PI (m)")
    first = cache.get(rope, 2.0)
    assert first.model is model and extensions.describe(first.model)["method"] == "rope"
    again = cache.get(rope, 2.0)
    assert first.model is again.model  # the same method: both handles stay valid
    second = cache.get(pi, 2.0)
    assert second.model is model and extensions.describe(model)["method"] == "pi" and loads == ["m"]
    with pytest.raises(variants.Switched, match="ran rope .* switched the shared model to pi"):
        first.model
    with pytest.raises(variants.Switched):
        tuple(again)
    assert cache.get(rope, 2.0).model is model  # asking again is the way


# ---------------------------------------------------------------------------------------------
# One source checked once


def test_a_source_is_checked_once_while_its_files_are_unchanged(tmp_path, monkeypatch):
    directory = huggingface_dir(tmp_path, "hf")
    calls = []
    check = sources._check_source
    monkeypatch.setattr(sources, "_check_source", lambda *args: calls.append(args) or check(*args))
    for _ in range(3):
        assert sources.check_source(str(directory), "parameter model") == directory
    assert len(calls) == 1
    (directory / "model.safetensors").write_bytes(b"changed")
    sources.check_source(str(directory), "parameter model")
    assert len(calls) == 2  # a changed file is checked again
    (directory / "model.safetensors").unlink()
    with pytest.raises(sources.SourceError, match="no \\*.safetensors"):
        sources.check_source(str(directory), "parameter model")
