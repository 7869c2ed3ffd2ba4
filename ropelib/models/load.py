"""Saving and loading checkpoints: the organism's and local Hugging Face ones.

``load(name_or_path)`` accepts
  - an organism name (``base``, ``cpt-pi``, ...) -> ``data/models/<name>/``,
  - a local organism directory (``model.safetensors`` + ``manifest.json``),
  - a local Hugging Face model directory (``config.json`` + ``*.safetensors``).
Anything else (a hub id, a path that does not exist) is refused with what to do: ropebook
never downloads. Checks are ``sources.check_source``'s, the same the CLI runs before a
kernel starts. It reads safetensors only (never pickle), uses ``trust_remote_code=False`` unless the
caller opts in, verifies an organism's weight sha256 against its manifest, and never
touches the network. It returns a :class:`LoadedModel` (model in eval mode, tokenizer,
and where it came from).
Not here: training (``training``), the RoPE switch (``extensions``).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ropelib.core import extensions
from ropelib import paths, progress
from ropelib.models import manifest as manifests, real, sources
from ropelib.paths import sha256_file, write_json_atomic
from ropelib.models.organism import OrganismConfig
from ropelib.text.tokenizer import ByteTokenizer

WEIGHTS, MANIFEST = manifests.WEIGHTS, manifests.MANIFEST


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    source: str
    kind: str  # "organism" or "huggingface"
    manifest: dict = field(default_factory=dict)

    def __iter__(self):  # allows `model, tokenizer = load(...)`
        return iter((self.model, self.tokenizer))


def save_organism(model, directory: Path, manifest: dict) -> dict:
    """Write weights and manifest atomically (temp files, then rename; weights last-verified)."""
    from safetensors.torch import save_model

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=WEIGHTS, suffix=".tmp")
    os.close(fd)
    save_model(model, tmp)
    manifest = {**manifest, "weights_sha256": sha256_file(Path(tmp))}
    os.replace(tmp, directory / WEIGHTS)
    write_json_atomic(directory / MANIFEST, manifest)
    return manifest


def organism_dir(name: str) -> Path:
    return paths.MODELS / name


def resolve(name_or_path: str) -> tuple[str, Path]:
    """("organism" | "huggingface", directory); FileNotFoundError naming what is missing."""
    path = Path(name_or_path).expanduser()
    if sources.is_path(str(name_or_path)) and path.is_dir() and (path / MANIFEST).exists():
        return "organism", path  # an organism checkpoint elsewhere (e.g. the finding-3 retraining)
    try:
        directory = sources.check_source(str(name_or_path), f"model {name_or_path!r}", verify_weights=False)
    except sources.SourceError as error:
        raise FileNotFoundError(str(error)) from None
    model = real.get(str(name_or_path))
    if model is not None:
        directory = model.prepare()  # e.g. the GGUF converted once to safetensors (verified before converting)
    return ("organism" if (directory / MANIFEST).exists() else "huggingface"), directory


def load_organism(directory: Path, verify: bool = True) -> LoadedModel:
    from safetensors.torch import load_model
    from transformers import LlamaForCausalLM

    directory = Path(directory)
    weights = directory / WEIGHTS
    if not weights.exists():
        raise FileNotFoundError(f"{directory} has no {WEIGHTS}; organism checkpoints are safetensors only")
    manifest = manifests.read(directory)
    if verify and sha256_file(weights) != manifest.get("weights_sha256"):
        raise ValueError(f"{weights}: sha256 does not match its manifest (tampered or partial file); retrain with `make models`")
    config = OrganismConfig(**manifest["organism"])
    rope = manifest["rope"]
    model = LlamaForCausalLM(config.to_llama(rope_parameters=dict(rope["rope_parameters"]),
                                             max_position=rope.get("max_position_embeddings")))
    load_model(model, str(weights))
    model.eval()
    extensions.record_pretrained(model, rope["pretrained_base"], rope["pretrained_length"],
                                 method=rope["method"], factor=rope["factor"], **rope.get("extra", {}))
    return LoadedModel(model, ByteTokenizer(), str(directory), "organism", manifest)


def _require_safetensors(directory: Path) -> None:
    """Refuse a local directory whose weights are pickle files only (they can run code when loaded)."""
    if not directory.is_dir() or any(directory.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
    if pickles:
        raise ValueError(
            f"{directory} holds pickle weights only ({', '.join(pickles[:3])}); ropebook loads safetensors only. "
            "Convert them once (e.g. `model.save_pretrained(dir, safe_serialization=True)` in a trusted session) "
            "or use a safetensors release of the checkpoint"
        )


def load_huggingface(source: str, trust_remote_code: bool = False, device: str = "cpu", dtype=None) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _require_safetensors(Path(source).expanduser())
    kwargs = dict(trust_remote_code=trust_remote_code, use_safetensors=True, local_files_only=True)
    try:
        with progress.no_transformers_bars():  # no "Loading weights" progress bar printed into a page
            tokenizer = AutoTokenizer.from_pretrained(source, **{k: v for k, v in kwargs.items()
                                                                 if k != "use_safetensors"})
            # device_map (through accelerate) puts every tensor straight on the device: a 7B bfloat16
            # checkpoint never passes through host RAM as a whole model first
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype(dtype), attn_implementation="sdpa",
                                                         device_map=str(device), **kwargs)
    except OSError as err:
        raise FileNotFoundError(
            f"could not load {source!r} from local files ({str(err).splitlines()[0]}); ropebook never downloads: "
            "download the checkpoint (safetensors) yourself and pass its directory"
        ) from err
    extensions._rotary_module(model)  # refuses non-rotary models with a clear message
    model.eval()
    return LoadedModel(model, tokenizer, source, "huggingface", {})


DTYPES = ("auto", "float32", "bfloat16", "float16")


def torch_dtype(dtype: str | None):
    """"auto" / None -> "auto" (the checkpoint's own dtype; float32 for the organism), else the torch dtype."""
    import torch

    if dtype in (None, "auto"):
        return "auto"
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}; expected one of {DTYPES}")
    return getattr(torch, dtype)


def load(name_or_path: str, *, trust_remote_code: bool = False, device: str = "cpu", dtype: str | None = None,
         verify: bool = True) -> LoadedModel:
    """Model + tokenizer from an organism name or a local path (see module docstring), on ``device``
    in ``dtype`` ("auto": as stored, e.g. bfloat16 for LLaMA-3, float16 for LLaMA-2)."""
    kind, path = resolve(str(name_or_path))
    return load_resolved(kind, path, trust_remote_code=trust_remote_code, device=device, dtype=dtype, verify=verify)


def load_resolved(kind: str, path: Path, *, trust_remote_code: bool = False, device: str = "cpu",
                  dtype: str | None = None, verify: bool = True) -> LoadedModel:
    """:func:`load` for a (kind, directory) that :func:`resolve` returned."""
    if kind == "organism":
        loaded = load_organism(path, verify=verify)
        dtype = torch_dtype(dtype)
        loaded.model.to(device, **({} if dtype == "auto" else {"dtype": dtype}))
        return loaded
    return load_huggingface(str(path), trust_remote_code, device, dtype)
