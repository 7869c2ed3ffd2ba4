"""What a chapter compares: "method:source" strings, turned into ready models.

A chapter parameter such as ``variants = ["rope:base", "pi:cpt-pi", "ntk:cpt-ntk"]`` names,
for each line of a figure, the RoPE extension to run (``ropelib.core.methods``' registry) and the
checkpoint to run it on: an organism name (``data/models/<name>``) or the local path of a
Hugging Face model. The same chapter runs on a real checkpoint by changing that one
parameter, e.g. ``["rope:/models/Llama-2-7b-hf", "pi:/models/Llama-2-7b-hf", ...]``
(training-free extensions), or paths to your own continually-pretrained checkpoints. A method
may carry its declared options in brackets: ``"yarn[beta_fast=16]:base"`` (``methods.parse``),
handed through to ``extensions.apply``.

Each source is loaded once and switched in place between methods (weights untouched); a handle
that :class:`ModelCache` gave out refuses to run once a later request switched its model to
another method (:class:`Switched`), instead of silently running that method.
Not here: the tasks themselves (``tasks``) or statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

from ropelib.tasks import trials
from ropelib.core import extensions, memory, methods
from ropelib.models import load as models, real, sources


@dataclass(frozen=True)
class Variant:
    method: str
    source: str
    label: str  # what figures and tables call it, e.g. "PI (cpt-pi)"
    options: tuple = ()  # (option, value) pairs handed to extensions.apply, e.g. (("beta_fast", 16.0),)

    @property
    def display(self) -> str:
        return self.label


# ---- what one forward may serve: the variant's and its model's property, not a chapter's

def shares_forward(variant: Variant) -> bool:
    """One forward at the longest length serves every shorter one: the RoPE does not depend on the sequence
    length (every static scaling; ``methods``' ``dynamic`` flag), so a causal model's first L positions are
    the same at any length >= L."""
    return not extensions.length_dependent(variant.method)


def shares_prefill(loaded, variant: Variant) -> bool:
    """A needle's teacher-forced rows from its generation's cache (one prompt pass, not two): for a checkpoint
    outside the organism (a real model: at 16K tokens a second pass costs minutes on a CPU) whose forward may be
    shared (:func:`shares_forward`). The organism keeps the two-pass rows its committed pages were computed with
    (equal within 1e-5)."""
    return loaded.kind != "organism" and shares_forward(variant)


def shares_prefix(loaded) -> bool:
    """A shared-haystack cell's text before the needle computed once (``needle.run_cell``'s prefix, any RoPE,
    dynamic NTK included): for a checkpoint outside the organism. The organism keeps the full passes its
    committed pages were computed with (equal within 1e-5)."""
    return loaded.kind != "organism"


def trial_store(loaded, variant: Variant, factor: float, dtype=None) -> "trials.Store | trials.Nothing":
    """Where ``variant``'s trials are kept (``ropelib.tasks.trials``): a real model's store, keyed by its weights'
    identity, the method, its options and factor, the dtype and the device; nothing for any other source
    (the organism recomputes: milliseconds a forward; a checkpoint given by path has no pinned identity)."""
    model = real.get(variant.source)
    if model is None:
        return trials.NOTHING
    device = str(next(loaded.model.parameters()).device)
    return trials.Store({"model": model.identity(), "method": variant.method, "options": list(variant.options),
                         "factor": float(factor), "dtype": str(dtype), "device": device})


def parse(specs: list[str], name: str = "variants") -> list[Variant]:
    """Validate "method:source" strings before any model is loaded (one-line errors)."""
    if not specs:
        raise ValueError(f"{name} is empty; give at least one 'method:source', e.g. 'rope:base'")
    out = []
    for spec in specs:
        method, sep, source = str(spec).partition(":")
        if not sep or not source:
            raise ValueError(f"{name} entry {spec!r}: expected 'method:source', e.g. 'pi:cpt-pi'")
        sources.check_variant(spec, f"{name} entry", verify_weights=False)  # models.load verifies weights
        method, options = sources.method_of(method, spec, f"{name} entry")
        shown = " ".join([methods.get(method).display, *(f"{k}={v:g}" for k, v in options.items())])
        out.append(Variant(method, source, f"{shown} ({source.rstrip('/').split('/')[-1]})", tuple(options.items())))
    labels = [v.label for v in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{name} has duplicates: {labels}")
    return out


class Switched(RuntimeError):
    """A handle's model was switched to another method by a later ``ModelCache.get`` (one line)."""


class Handle(models.LoadedModel):
    """A :class:`~ropelib.models.load.LoadedModel` of one variant. Its ``model`` is shared with every other
    variant of the same source, so it answers only while that model runs this handle's method: after a later
    ``get`` switched it, ``handle.model`` raises :class:`Switched` (ask the cache again) instead of
    silently running another method."""

    def __init__(self, loaded: models.LoadedModel, switch: tuple, applied: dict):
        super().__init__(loaded.model, loaded.tokenizer, loaded.source, loaded.kind, loaded.manifest)
        self._switch, self._applied = switch, applied

    @property
    def model(self):
        now = self._applied[id(self._model)]
        if now != self._switch:
            raise Switched(f"this handle of {self.source} ran {self._switch[0]} (factor {self._switch[1]:g}); a later "
                           f"ModelCache.get switched the shared model to {now[0]} (factor {now[1]:g}): call get again")
        return self._model

    @model.setter
    def model(self, value):
        self._model = value


class ModelCache:
    """Loads each source once; ``get`` switches it to the variant's method in place and hands out a
    :class:`Handle` that refuses to run once a later ``get`` switched the same model to another method.

    ``longest`` (tokens) and ``memory_options`` (``memory.estimate``'s, e.g. batch or generate_tokens):
    before a Hugging Face checkpoint's weights are loaded, ``memory.check_fits`` estimates that pass
    from its config.json alone and raises ``memory.DoesNotFit`` with the numbers if it cannot fit
    on ``device``. Organism checkpoints (a few MB) are not estimated.
    """

    def __init__(self, device: str = "cpu", dtype=None, longest: int = 0, **memory_options):
        self.device, self.dtype, self._loaded, self._applied = device, dtype, {}, {}
        self.longest, self.memory_options = longest, memory_options

    def check_fits(self, kind: str, directory) -> None:
        if kind != "huggingface" or not self.longest:
            return
        config = memory.load_config(directory)
        dtype = models.torch_dtype(self.dtype)
        if dtype == "auto":  # what from_pretrained(dtype="auto") will pick: the dtype stored in config.json
            dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "float32"
        memory.check_fits(config, self.longest, device=self.device, dtype=dtype, **self.memory_options)

    def get(self, variant: Variant, factor: float) -> Handle:
        if variant.source not in self._loaded:
            kind, directory = models.resolve(variant.source)
            self.check_fits(kind, directory)
            self._loaded[variant.source] = models.load_resolved(kind, directory, device=self.device, dtype=self.dtype)
        loaded = self._loaded[variant.source]
        options = dict(variant.options)
        extensions.apply(loaded.model, variant.method, factor, **options)
        self._applied[id(loaded.model)] = switch = (variant.method, float(factor), tuple(sorted(options.items())))
        return Handle(loaded, switch, self._applied)
