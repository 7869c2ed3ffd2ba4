"""ropelib.models.load: save/load round trip, and refusing tampered, pickle-only and missing checkpoints."""

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ropelib.core import extensions
from ropelib.models import load as models, organism
from ropelib.models.organism import OrganismConfig
from ropelib.text.tokenizer import ByteTokenizer

torch.set_num_threads(1)

MICRO = OrganismConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64,
                       head_dim=16, rope_base=100.0, train_length=32)


def save_micro(directory, seed=0):
    """A random micro organism saved like recipes.train_one saves one (the fields load_organism reads)."""
    model = organism.build(MICRO, seed=seed)
    manifest = {
        "name": directory.name,
        "organism": MICRO.as_dict(),
        "rope": {"method": "rope", "factor": 1.0, "extra": {}, "pretrained_base": MICRO.rope_base,
                 "pretrained_length": MICRO.train_length, "rope_parameters": dict(model.config.rope_parameters),
                 "max_position_embeddings": model.config.max_position_embeddings},
    }
    return model.eval(), models.save_organism(model, directory, manifest)


def test_round_trip(tmp_path):
    model, manifest = save_micro(tmp_path / "micro")
    assert sorted(p.name for p in (tmp_path / "micro").iterdir()) == [models.MANIFEST, models.WEIGHTS]
    loaded = models.load(str(tmp_path / "micro"))
    assert loaded.kind == "organism" and isinstance(loaded.tokenizer, ByteTokenizer)
    assert loaded.manifest == manifest == json.loads((tmp_path / "micro" / models.MANIFEST).read_text())
    assert not loaded.model.training
    assert extensions.describe(loaded.model)["pretrained_base"] == MICRO.rope_base
    tokens = torch.randint(0, 256, (1, 24))
    with torch.no_grad():
        assert torch.equal(loaded.model(tokens).logits, model(tokens).logits)
    model_, tokenizer = loaded  # unpacks like (model, tokenizer)
    assert model_ is loaded.model and tokenizer is loaded.tokenizer


def test_organism_name_resolves_in_the_models_folder(tmp_path, monkeypatch):
    save_micro(tmp_path / "tiny")
    monkeypatch.setattr(models.paths, "MODELS", tmp_path)
    assert models.load("tiny").source == str(tmp_path / "tiny")


def test_tampered_weights_are_refused(tmp_path):
    save_micro(tmp_path / "micro")
    weights = tmp_path / "micro" / models.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the last tensor
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256 does not match"):
        models.load(str(tmp_path / "micro"))
    assert models.load(str(tmp_path / "micro"), verify=False).kind == "organism"  # an explicit opt-out


def test_manifest_sha_mismatch_is_refused(tmp_path):
    _, manifest = save_micro(tmp_path / "micro")
    (tmp_path / "micro" / models.MANIFEST).write_text(json.dumps({**manifest, "weights_sha256": "0" * 64}))
    with pytest.raises(ValueError, match="sha256 does not match"):
        models.load(str(tmp_path / "micro"))


def test_organism_without_safetensors_is_refused(tmp_path):
    model, _ = save_micro(tmp_path / "micro")
    (tmp_path / "micro" / models.WEIGHTS).unlink()
    torch.save(model.state_dict(), tmp_path / "micro" / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="safetensors only"):
        models.load(str(tmp_path / "micro"))


def test_pickle_only_huggingface_directory_is_refused(tmp_path):
    config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    config.save_pretrained(tmp_path)
    torch.save(LlamaForCausalLM(config).state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match=r"pickle weights only \(pytorch_model.bin\).*safetensors"):
        models.load(str(tmp_path))


def test_missing_name_says_how_to_get_it(tmp_path, monkeypatch):
    save_micro(tmp_path / "tiny")
    monkeypatch.setattr(models.paths, "MODELS", tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        models.load("no-such-model")
    message = str(error.value)
    assert "no-such-model" in message and "known: tiny" in message
    assert "make models" in message and "huggingface-cli download" in message
    assert "\n" not in message


def test_missing_path_never_downloads(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        models.load(str(tmp_path / "absent" / "Llama-2-7b-hf"))


def test_non_rotary_model_is_refused(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models as tokenizer_models

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=10)).save_pretrained(tmp_path)
    PreTrainedTokenizerFast(tokenizer_object=Tokenizer(tokenizer_models.WordLevel({"a": 0}, unk_token="a"))
                            ).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no rotary embedding"):
        models.load(str(tmp_path))
