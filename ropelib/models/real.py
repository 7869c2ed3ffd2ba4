"""The real pretrained models: one registry entry per model, the table every other module asks.

A real model is a model source by name (``-p model smollm2``, ``"yarn:smollm2"``) whose
weights are not an organism checkpoint. Its :class:`RealModel` entry says how to find its
weights without reading them (``find``), verify them (``verify``, e.g. a pinned sha256),
where its Hugging Face directory is (``directory``) and how to prepare that directory once
(``prepare``, e.g. converting a GGUF); ``models.load`` then loads it like any local Hugging
Face checkpoint, and its L0 and RoPE base come from its config.json (``lineup.geometry``).
It also holds what the pages say of it: its ``label`` (the glance page's column), its
``about`` text (a page's caveats before any number) and the ``identity`` of its weights
outside the repository (in a page's cache key).

Entries call their module's functions when asked (not when registered), so a test that
patches ``smollm2.gguf_path`` patches the registry too. ``registered`` adds an entry within a
block (a test's fake model). json-light: no torch, no transformers.
Not here: checking a parameter's source (``sources``), loading (``load``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from unittest import mock

from ropelib.models import smollm2


@dataclass(frozen=True)
class RealModel:
    name: str  # the source name chapters accept
    label: str  # short: "SmolLM2-135M" (the glance counts' model column)
    about: str  # what a page says about the model before any of its numbers
    identity: Callable[[], str]  # its weights' identity outside the repository (a page's cache key)
    find: Callable[[], Path]  # the weights, located without reading them; raises ``error``
    verify: Callable[[], Path]  # the weights, verified; raises ``error``
    directory: Callable[[], Path]  # its Hugging Face directory (maybe not prepared yet)
    prepare: Callable[[], Path]  # that directory, prepared once (e.g. a GGUF converted)
    error: type[Exception] = ValueError  # what find, verify and prepare raise (one line)

    @property
    def column(self) -> str:
        """The glance table's column header."""
        return f"real model ({self.label})"


MODELS: dict[str, RealModel] = {m.name: m for m in (
    RealModel(smollm2.NAME, "SmolLM2-135M", smollm2.ABOUT,
              identity=lambda: f"{smollm2.GGUF_NAME} sha256 {smollm2.GGUF_SHA256}",
              find=lambda: smollm2.gguf_path(), verify=lambda: smollm2.check(),
              directory=lambda: smollm2.directory(), prepare=lambda: smollm2.hf_directory(),
              error=smollm2.SmolLM2Error),
)}


def get(name: str) -> RealModel | None:
    """The entry of real model ``name``; None for any other source (an organism name, a path)."""
    return MODELS.get(name)


def names() -> list[str]:
    return list(MODELS)


def registered(model: RealModel):
    """A context manager: within its block, ``model`` is one more real model (a test's fake one)."""
    return mock.patch.dict(MODELS, {model.name: model})
