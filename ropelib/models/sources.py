"""Model sources named by chapter parameters, checked before any kernel starts.

A *source* is an organism checkpoint name (``data/models/<name>/``), ``smollm2`` (the real
pretrained model, ``ropelib.models.smollm2``) or the path of a local Hugging Face checkpoint
directory; a *variant* is ``"method:source"``. Parameters hold
sources by name: ``model`` and ``*_model`` hold a source, ``variants``, ``*_variants``,
``reference``, ``*_reference`` and ``*_variant`` hold variants. ``check_parameters``
validates every one of them in well under a second (json and hashing only: no torch, no
transformers), so ``ropebook run`` refuses a bad source with exit status 2 before
papermill starts a kernel:

- an organism name must exist, and its weights' sha256 must match its manifest;
- a path must exist, be a directory, hold ``config.json`` and ``*.safetensors`` weights
  (pickle-only checkpoints are refused: loading them can run code);
- ``smollm2`` (the real model) must be installed and its GGUF must match the pinned sha256;
- a method must be one of :data:`METHODS`.

Not here: loading (``models``), the RoPE switch (``extensions``).
"""

from __future__ import annotations

from pathlib import Path

from ropelib import paths
from ropelib.paths import sha256_file
from ropelib.models import manifest as manifests, smollm2
from ropelib.core.methods import METHODS

WEIGHTS, MANIFEST = manifests.WEIGHTS, manifests.MANIFEST
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


class SourceError(ValueError):
    """A one-line message naming the parameter and what was expected."""


def organism_names() -> list[str]:
    return manifests.names()


def is_path(source: str) -> bool:
    """A path (has a separator or starts with . or ~), as opposed to an organism name."""
    return "/" in source or source.startswith((".", "~"))


def check_source(source: str, where: str, verify_weights: bool = True) -> Path:
    """The checkpoint directory of ``source``, or SourceError saying what is wrong and what to do."""
    if not source:
        raise SourceError(f"{where}: empty model source; give an organism name or a local checkpoint directory")
    if source == smollm2.NAME:  # the real model: its package and the GGUF's sha256, before any kernel starts
        try:
            smollm2.check() if verify_weights else smollm2.gguf_path()
        except smollm2.SmolLM2Error as error:
            raise SourceError(f"{where}: {error}") from None
        return smollm2.directory()  # converted on first load (load.resolve), under paths.CACHE
    directory = Path(source).expanduser() if is_path(source) else paths.MODELS / source
    if not is_path(source) and not (directory / MANIFEST).is_file():
        raise SourceError(f"{where}: {source!r} is not an organism checkpoint (known: "
                          f"{', '.join(organism_names()) or 'none'}; the real model: {smollm2.NAME}; `make models` trains them) and not a path; "
                          "for a Hugging Face model pass its local directory (download it yourself, e.g. "
                          "`huggingface-cli download meta-llama/Llama-2-7b-hf --local-dir DIR`)")
    if (directory / MANIFEST).is_file():  # an organism checkpoint, in data/models or elsewhere
        if verify_weights:
            manifest = manifests.read(directory)
            weights = directory / WEIGHTS
            if not weights.is_file() or sha256_file(weights) != manifest.get("weights_sha256"):
                raise SourceError(f"{where}: {weights} is missing or does not match the sha256 in its manifest "
                                  "(tampered or partial file); restore it with `git checkout data/models` or "
                                  "retrain with `make models`")
        return directory
    if not directory.exists():
        raise SourceError(f"{where}: {source} does not exist; download the checkpoint (safetensors) yourself "
                          "and pass its local directory (ropebook never downloads)")
    if not directory.is_dir():
        raise SourceError(f"{where}: {source} is not a directory; pass the checkpoint's directory")
    if not (directory / "config.json").is_file():
        raise SourceError(f"{where}: {source} has no config.json; is it a Hugging Face checkpoint directory?")
    if not any(directory.glob("*.safetensors")):
        pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
        detail = f"pickle weights only ({', '.join(pickles[:3])}), which can run code when loaded" if pickles \
            else "no *.safetensors weights"
        raise SourceError(f"{where}: {source} holds {detail}; convert to safetensors once "
                          "(`model.save_pretrained(dir, safe_serialization=True)` in a trusted session)")
    return directory


def check_variant(spec: str, where: str, verify_weights: bool = True) -> tuple[str, str]:
    """``(method, source)`` of a ``"method:source"`` string, checked."""
    method, sep, source = str(spec).partition(":")
    if not sep or not source:
        raise SourceError(f"{where}: {spec!r} is not 'method:source', e.g. 'pi:cpt-pi' or 'rope:/models/Llama-2-7b-hf'")
    if method not in METHODS:
        raise SourceError(f"{where}: method {method!r} in {spec!r} is not one of {', '.join(METHODS)}")
    check_source(source, where, verify_weights)
    return method, source


def holds_source(name: str) -> bool:
    return name == "model" or name.endswith("_model")


def holds_variants(name: str) -> bool:
    return name in ("variants", "reference") or name.endswith(("_variants", "_reference", "_variant"))


def model_values(parameters: dict):
    """(parameter name, value, is a variant) for every non-empty source or variant the parameters hold, as
    the page will use them: a non-empty ``model`` replaces the line-up (every chapter then applies each
    training-free method to it and ignores ``variants`` and the other "method:source" parameters), so the
    replaced defaults are neither checked nor counted among the page's models."""
    replaced = bool(parameters.get("model"))
    for name, value in parameters.items():
        if replaced and not holds_source(name):
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item and (holds_source(name) or holds_variants(name)):
                yield name, item, not holds_source(name)


def named_sources(parameters: dict) -> set[str]:
    """Every model source the parameters name (``model``-like values, the source of each variant)."""
    return {item.partition(":")[2] if variant else item for _, item, variant in model_values(parameters)}


def check_parameters(parameters: dict, chapter: str = "") -> None:
    """Check every source-holding parameter of ``parameters`` (empty values mean "not given")."""
    prefix = f"{chapter}: " if chapter else ""
    verified: set[str] = set()
    for name, item, variant in model_values(parameters):
        where = f"{prefix}parameter {name}"
        if variant:
            verified.add(check_variant(item, where, verify_weights=item.partition(":")[2] not in verified)[1])
        else:
            check_source(item, where, verify_weights=item not in verified)
            verified.add(item)
