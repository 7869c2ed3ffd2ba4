"""What a chapter compares: "method:source" strings, turned into ready models.

A chapter parameter such as ``variants = ["rope:base", "pi:cpt-pi", "ntk:cpt-ntk"]`` names,
for each line of a figure, the RoPE extension to run (``extensions.METHODS``) and the
checkpoint to run it on: an organism name (``data/models/<name>``) or the local path of a
Hugging Face model. The same chapter runs on a real checkpoint by changing that one
parameter, e.g. ``["rope:/models/Llama-2-7b-hf", "pi:/models/Llama-2-7b-hf", ...]``
(training-free extensions), or paths to your own continually-pretrained checkpoints.

Each source is loaded once and switched in place between methods (weights untouched).
Not here: the tasks themselves (``tasks``) or statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

from ropelib.core import extensions, memory, methods
from ropelib.models import load as models, sources


@dataclass(frozen=True)
class Variant:
    method: str
    source: str
    label: str  # what figures and tables call it, e.g. "PI (cpt-pi)"

    @property
    def display(self) -> str:
        return self.label


DISPLAY = methods.DISPLAY  # "pi" -> "PI": the labels of every figure


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
        out.append(Variant(method, source, f"{DISPLAY[method]} ({source.rstrip('/').split('/')[-1]})"))
    labels = [v.label for v in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{name} has duplicates: {labels}")
    return out


class ModelCache:
    """Loads each source once; ``get`` switches it to the variant's method in place.

    ``longest`` (tokens) and ``memory_options`` (``memory.estimate``'s, e.g. batch or generate_tokens):
    before a Hugging Face checkpoint's weights are loaded, ``memory.check_fits`` estimates that pass
    from its config.json alone and raises ``memory.DoesNotFit`` with the numbers if it cannot fit
    on ``device``. Organism checkpoints (a few MB) are not estimated.
    """

    def __init__(self, device: str = "cpu", dtype=None, longest: int = 0, **memory_options):
        self.device, self.dtype, self._loaded = device, dtype, {}
        self.longest, self.memory_options = longest, memory_options

    def check_fits(self, kind: str, directory) -> None:
        if kind != "huggingface" or not self.longest:
            return
        config = memory.load_config(directory)
        dtype = models.torch_dtype(self.dtype)
        if dtype == "auto":  # what from_pretrained(dtype="auto") will pick: the dtype stored in config.json
            dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "float32"
        memory.check_fits(config, self.longest, device=self.device, dtype=dtype, **self.memory_options)

    def get(self, variant: Variant, factor: float) -> models.LoadedModel:
        if variant.source not in self._loaded:
            kind, directory = models.resolve(variant.source)
            self.check_fits(kind, directory)
            self._loaded[variant.source] = models.load_resolved(kind, directory, device=self.device, dtype=self.dtype)
        loaded = self._loaded[variant.source]
        extensions.apply(loaded.model, variant.method, factor)
        return loaded
