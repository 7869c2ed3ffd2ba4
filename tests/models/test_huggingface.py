"""Every model chapter runs on a local Hugging Face checkpoint by `-p model PATH` alone.

Random-init LLaMA (GQA), Qwen2 and Mistral directories with real fast tokenizers are built
offline (``hf_checkpoints``). The chapters read the pretrained length (64 tokens) and the
RoPE base from each config.json; their default lengths follow. Besides ``model``, only
knobs that make a run cheaper are set (fewer documents, needles and resamples), never the
line-up, lengths or references. Each run is a one-off page in a temporary folder: the
checkout stays clean.
"""

import json
import subprocess
import sys

import pytest

from hf_checkpoints import ARCHITECTURES, PRETRAINED_LENGTH, build, train_tokenizer
from ropelib.models import lineup
from ropelib.paths import ROOT

CHEAPER = {
    "perplexity": ["-p", "n_documents", "2"],
    "attention-patterns": ["-p", "n_sequences", "2", "-p", "n_queries", "4"],
    "needle-entropy": ["-p", "depths", "[0, 50, 100]", "-p", "n_boot", "100"],
    "cpt-length": [],
    "model-size": [],
    "entropy-intervention": ["-p", "depths", "[50]", "-p", "needles_per_depth", "10", "-p", "n_documents", "1"],
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    tokenizer = train_tokenizer(root / "tokenizer")
    return {name: build(name, root / name, tokenizer) for name in ARCHITECTURES}


def _git_status():
    return subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout


def test_geometry_comes_from_the_config(checkpoints):
    for path in checkpoints.values():
        geometry = lineup.geometry(str(path))
        assert (geometry.pretrained_length, geometry.base) == (PRETRAINED_LENGTH, 10000.0)
        setup = lineup.resolve(str(path))
        assert setup.reference == f"rope:{path}" and setup.long_reference == "" and setup.cpt_length == 0
        assert setup.lengths([]) == [32, 64, 128, 256, 512, 1024, 2048]


def test_tokenizer_adds_one_bos(checkpoints):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoints["llama"], local_files_only=True)
    ids = tokenizer.encode("def f(x):\n    return x")
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1


def test_loads_straight_onto_the_device_without_dispatch_hooks(checkpoints):
    """models.load passes device_map (accelerate): weights land on the device as they are read, and
    no accelerate hook wraps a module (the probe and the interventions hook modules themselves)."""
    import torch
    from transformers import AutoModelForCausalLM

    from ropelib.models import load as models

    for path in checkpoints.values():
        loaded = models.load(str(path), device="cpu")
        assert {p.device.type for p in loaded.model.parameters()} == {"cpu"}
        assert not any(hasattr(m, "_hf_hook") for m in loaded.model.modules())
        plain = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, attn_implementation="sdpa").eval()
        ids = torch.tensor([loaded.tokenizer.encode("def f(x):\n    return x + 1")])
        with torch.no_grad():
            assert torch.equal(loaded.model(ids).logits, plain(ids).logits)


@pytest.mark.parametrize("chapter, architecture", [
    *[(chapter, "llama") for chapter in CHEAPER],
    # the other architectures through the chapters whose code touches the model's own modules:
    # loading and perplexity, the attention probe, generation with capture, the logit interventions
    # (cpt-length and model-size reach the model only through needle-entropy's and perplexity's
    # code; Mistral's attention module is LLaMA's, Qwen2's adds q/k/v biases). An intervention
    # run costs about 2 minutes on 2 cores: one extra architecture, to keep `make test` short.
    ("perplexity", "qwen2"), ("needle-entropy", "qwen2"), ("entropy-intervention", "qwen2"),
    ("perplexity", "mistral"), ("attention-patterns", "mistral"),
])
def test_chapter_runs_on_a_local_checkpoint_by_one_parameter(chapter, architecture, checkpoints, tmp_path):
    before = _git_status()
    output = tmp_path / f"{chapter}.ipynb"
    command = [sys.executable, "-m", "ropelib", "run", chapter, "-p", "model", str(checkpoints[architecture]),
               *CHEAPER[chapter], "-o", str(output)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    nb = json.loads(output.read_text())
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "Traceback" not in text
    assert str(PRETRAINED_LENGTH) in text  # the page states the L0 it read from config.json
    assert _git_status() == before  # its tables, if any, went beside the page (tmp_path), never into data/
