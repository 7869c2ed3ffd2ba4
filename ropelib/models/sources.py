"""Model sources named by chapter parameters, checked before any kernel starts.

A *source* is an organism checkpoint name (``data/models/<name>/``), a real pretrained
model's name (``ropelib.models.real``, e.g. ``smollm2``) or the path of a local Hugging Face
checkpoint directory; a *variant* is ``"method:source"`` (``"yarn[beta_fast=16]:source"`` sets
the method's options, ``methods.parse``). Parameters hold
sources by name: ``model`` and ``*_model`` hold a source, ``variants``, ``*_variants``,
``reference``, ``*_reference`` and ``*_variant`` hold variants. ``check_parameters``
validates every one of them in well under a second (json and hashing only: no torch, no
transformers), so ``ropebook run`` refuses a bad source with exit status 2 before
papermill starts a kernel:

- an organism name must exist, and its weights' sha256 must match its manifest;
- a path must exist, be a directory, hold ``config.json`` and ``*.safetensors`` weights
  (pickle-only checkpoints are refused: loading them can run code);
- a real model must be installed and verify (e.g. its GGUF's pinned sha256);
- a method must be in the registry (``ropelib.core.methods``), its options ones it declares.

Which model a page measures is answered here, once, from its parameters (:func:`measured_model`).
A source that passed is remembered per (source, verify_weights) for the rest of the process while
its directory's files are unchanged, so a kernel does not check the same checkpoint a dozen times.

Not here: loading (``models``), the RoPE switch (``extensions``).
"""

from __future__ import annotations

from pathlib import Path

from ropelib import paths, results
from ropelib.paths import sha256_file
from ropelib.models import manifest as manifests, real
from ropelib.core import methods

WEIGHTS, MANIFEST = manifests.WEIGHTS, manifests.MANIFEST
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


class SourceError(ValueError):
    """A one-line message naming the parameter and what was expected."""


def organism_names() -> list[str]:
    return manifests.names()


def is_path(source: str) -> bool:
    """A path (has a separator or starts with . or ~), as opposed to an organism name."""
    return "/" in source or source.startswith((".", "~"))


# ---------------------------------------------------------------------------------------------
# One source


_checked: dict[tuple, tuple] = {}  # (source, verify_weights, models folder) -> (files' stamp, directory)


def _stamp(directory: Path) -> tuple:
    """Name, size and modification time of each file in ``directory``: what a recheck would read."""
    if not directory.is_dir():
        return ()
    return tuple(sorted((p.name, s.st_size, s.st_mtime_ns) for p in directory.iterdir() for s in [p.stat()]))


def forget() -> None:
    """Check every source again (the tests call it between tests)."""
    _checked.clear()


def check_source(source: str, where: str, verify_weights: bool = True) -> Path:
    """The checkpoint directory of ``source``, or SourceError saying what is wrong and what to do.
    Remembered once it passed, while the files of its directory are unchanged."""
    key = (source, verify_weights, str(paths.MODELS))
    if key in _checked and _checked[key][0] == _stamp(_checked[key][1]):
        return _checked[key][1]
    directory = _check_source(source, where, verify_weights)
    _checked[key] = (_stamp(directory), directory)
    return directory


def _check_source(source: str, where: str, verify_weights: bool) -> Path:
    if not source:
        raise SourceError(f"{where}: empty model source; give an organism name or a local checkpoint directory")
    model = real.get(source)
    if model is not None:  # a real model: its package and its weights' identity, before any kernel starts
        try:
            model.verify() if verify_weights else model.find()
        except model.error as error:
            raise SourceError(f"{where}: {error}") from None
        return model.directory()  # prepared on first load (load.resolve), e.g. under paths.CACHE
    directory = Path(source).expanduser() if is_path(source) else paths.MODELS / source
    if not is_path(source) and not (directory / MANIFEST).is_file():
        raise SourceError(f"{where}: {source!r} is not an organism checkpoint (known: "
                          f"{', '.join(organism_names()) or 'none'}; the real model: {', '.join(real.names())}; `make models` trains them) and not a path; "
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
    """``(method, source)`` of a ``"method:source"`` string, checked (``method`` may carry options:
    ``"yarn[beta_fast=16]"``, returned as written; :func:`method_of` parses it)."""
    method, sep, source = str(spec).partition(":")
    if not sep or not source:
        raise SourceError(f"{where}: {spec!r} is not 'method:source', e.g. 'pi:cpt-pi' or 'rope:/models/Llama-2-7b-hf'")
    method_of(method, spec, where)
    check_source(source, where, verify_weights)
    return method, source


def method_of(method: str, spec: str, where: str) -> tuple[str, dict]:
    """(name, options) of a variant's method part, or SourceError naming the parameter."""
    name = method.partition("[")[0]
    if name not in methods.REGISTRY:
        raise SourceError(f"{where}: method {name!r} in {spec!r} is not one of {', '.join(methods.REGISTRY)}")
    try:
        return methods.parse(method)
    except ValueError as error:
        raise SourceError(f"{where}: {error}") from None


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


def measured_model(parameters: dict) -> str:
    """The model a page with ``parameters`` measures: the first real model its parameters name (in
    ``real.MODELS``' order), else ``results.ORGANISM``. The one answer for the run plan, the cache key, the
    pages' tables and the line-up's ``model`` (``lineup.resolve``), which the page passes to ``results``' writers."""
    named = named_sources(parameters)
    return next((name for name in real.names() if name in named), results.ORGANISM)


def measures_only_real(parameters: dict) -> bool:
    """Its model parameters name one real model and nothing else (no organism checkpoint, no path)."""
    return named_sources(parameters) == {measured_model(parameters)}


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
