"""What a model chapter compares, from one parameter: ``model``.

Every chapter that loads models takes ``model``. Empty (the book's default) means the
organism line-up the page's own parameters name (``variants``, ``reference``, ...). Set to
an organism name or a local Hugging Face checkpoint directory, it replaces them:

- the variants are every training-free method of :data:`TRAINING_FREE` applied to it;
- the reference (the paper's "original model") is the model itself, plain RoPE;
- a natively long-trained reference is optional (``long_model``); without one, the page
  says plainly which comparison it skips.

The pretrained length L0 and RoPE base always come from the checkpoint: an organism's
manifest, or a Hugging Face ``config.json`` (``rope_parameters`` /
``original_max_position_embeddings`` / ``max_position_embeddings``, ``rope_theta``).
Default lengths are multiples of that L0, so the same page runs at 256 tokens on the
organism and at 4K-128K on LLaMA-2-7B. json only: no torch, so it is cheap everywhere.
Not here: loading (``models``), validation messages (``sources``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ropelib.core import methods
from ropelib.models import load, manifest as manifests, real, sources

TRAINING_FREE = methods.named(training_free=True)
DEFAULT_RATIOS = (0.5, 1, 2, 4, 8, 16, 32)  # evaluation lengths as multiples of L0


@dataclass(frozen=True)
class Geometry:
    pretrained_length: int  # L0, tokens
    base: float  # RoPE base b
    trained_length: int  # the longest length it was trained at (L0 unless continually pretrained)


def geometry(source: str) -> Geometry:
    """L0, base and training length of a checkpoint, read from its manifest or config.json."""
    directory = load.resolve(source)[1]
    data = manifests.read(directory)
    if data:
        rope = data["rope"]
        return Geometry(int(rope["pretrained_length"]), float(rope["pretrained_base"]),
                        int(data.get("trained_length", rope["pretrained_length"])))
    config = json.loads((directory / "config.json").read_text())
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    length = rope.get("original_max_position_embeddings") or config.get("max_position_embeddings")
    base = rope.get("rope_theta") or config.get("rope_theta")
    if not length or not base:
        raise sources.SourceError(f"model {source}: config.json gives no max_position_embeddings or rope_theta; "
                                  "is it a RoPE model?")
    return Geometry(int(length), float(base), int(length))


@dataclass(frozen=True)
class Lineup:
    variants: list[str]  # "method:source"
    reference: str  # the original model, plain RoPE at its pretrained length
    long_reference: str  # "" when none was given
    pretrained_length: int
    cpt_length: int  # longest continual-pretraining length among the variants; 0 when none
    # the model its results describe: ``results.ORGANISM`` or a real model's name (:func:`measured`); the page
    # passes it to ``results.write_csv`` / ``write_glance`` (``model=setup.model``)
    model: str

    def lengths(self, lengths: list[int], ratios=DEFAULT_RATIOS) -> list[int]:
        """``lengths`` as given, or multiples of L0 when empty."""
        return list(lengths) or [max(8, round(r * self.pretrained_length)) for r in ratios]


def measured(lineup: Lineup) -> str:
    """The model a line-up's results describe (``sources.measured_model`` of its variants); ``resolve`` stores
    it as :attr:`Lineup.model`."""
    return _measured(lineup.variants, lineup.reference, lineup.long_reference)


def _measured(variants, reference: str, long_reference: str) -> str:
    return sources.measured_model({"variants": [*variants, reference, long_reference]})


def label(lineup: Lineup) -> str:
    """The name a page's prose gives the model it measures (``prose.model_text``): a real model's registry
    ``label``, a Hugging Face checkpoint's folder name; "" for the organism's checkpoints."""
    model = real.get(lineup.model)
    if model is not None:
        return model.label
    source = lineup.reference.partition(":")[2]
    return "" if load.resolve(source)[0] == "organism" else source.rstrip("/").split("/")[-1]


def about(lineup: Lineup) -> str:
    """What a real model in the line-up is and what follows for its comparisons (its registry entry's
    ``about``); "" for the organism."""
    model = real.get(lineup.model)
    return model.about if model is not None else ""


def resolve(model: str = "", variants=(), reference: str = "", long_reference: str = "",
            long_model: str = "", methods=TRAINING_FREE) -> Lineup:
    """The line-up of a page: from ``model`` when given, else from the explicit variants. It carries the
    model its results describe (:attr:`Lineup.model`), which the page passes to the result writers: a real
    model's pages write tables of their own. Nothing global is set."""
    if model:
        variants = [f"{m}:{model}" for m in methods]
        reference = f"rope:{model}"
        long_reference = f"rope:{long_model}" if long_model else ""
    elif long_model:
        long_reference = f"rope:{long_model}"
    variants = list(variants)
    reference = reference or (variants[0] if variants else "")
    if not reference:
        raise ValueError("give `model` (a checkpoint) or at least one variant")
    pretrained = geometry(reference.partition(":")[2])
    trained = [geometry(v.partition(":")[2]).trained_length for v in variants]
    cpt = max((t for t in trained if t > pretrained.pretrained_length), default=0)
    return Lineup(variants, reference, long_reference, pretrained.pretrained_length, cpt,
                  _measured(variants, reference, long_reference))
