"""An organism checkpoint's ``manifest.json``: the one place it is read, and its gate judged.

Every organism checkpoint is a directory with ``model.safetensors`` and ``manifest.json``
(what it was trained on, its RoPE, the sha256 of its weights, and its retrieval gate). A
Hugging Face checkpoint has no manifest: :func:`read` gives ``{}`` and nobody gated it.

The gate: for each gate length, the 95% Wilson lower bound of the exact-match rate on
the gate's needles must be >= ``RETRIEVAL_GATE`` (``ropelib.training.recipes.gate``
measures it and records one row per length). :func:`gate_passed` judges a manifest,
:func:`gate_misses` says in one line per length why one is unfit for a role that needs
retrieval. Unlike ``sources`` (is a parameter's source usable at all, checked without
reading more than the sha256), this module reads what a checkpoint *is*.

Not here: resolving a parameter's source to a directory (``sources``), loading weights
(``load``), measuring the gate (``ropelib.training.recipes``).
"""

from __future__ import annotations

import json
from pathlib import Path

from ropelib import paths

WEIGHTS, MANIFEST = "model.safetensors", "manifest.json"
RETRIEVAL_GATE = 0.9  # the gate: 95% Wilson lower bound of retrieval >= this, at every gate length


def path_of(directory: Path) -> Path:
    return Path(directory) / MANIFEST


def is_organism(directory: Path) -> bool:
    return path_of(directory).is_file()


def read(directory: Path) -> dict:
    """The manifest of the checkpoint in ``directory``; {} when it has none (a Hugging Face checkpoint)."""
    path = path_of(directory)
    return json.loads(path.read_text()) if path.is_file() else {}


def of(name: str) -> dict:
    """The manifest of organism checkpoint ``name`` in ``data/models`` (``$ROPEBOOK_MODELS``)."""
    return json.loads(path_of(paths.MODELS / name).read_text())


def names() -> list[str]:
    """Every organism checkpoint in ``data/models``, sorted."""
    return sorted(p.parent.name for p in paths.MODELS.glob(f"*/{MANIFEST}"))


# ---------------------------------------------------------------------------------------------
# The gate


def gate_passed(manifest: dict) -> bool:
    """Did this checkpoint pass its gate at every length? (False for smoke runs and old manifests)."""
    rows = manifest.get("gate") or []
    return bool(rows) and all(r["passed"] for r in rows)


def gate_rows_text(manifest: dict) -> str:
    """Each gate length as ``hits/needles = rate [low, high] at length``, joined by "; "."""
    return "; ".join(f"{r['hits']}/{r['needles']} = {r['rate']:.3g} [{r['ci_low']:.3g}, {r['ci_high']:.3g}] at "
                     f"{r['length']}" for r in manifest.get("gate") or [])


def gate_misses(name: str, manifest: dict) -> list[str]:
    """One short note per gate length that ``name`` missed (or that it has no gate); [] when it passed.

    A manifest of {} (a Hugging Face checkpoint) has nothing to miss: it is taken as it is.
    """
    if not manifest:
        return []
    rows = manifest.get("gate") or []
    if not rows:
        return [f"{name}: no retrieval gate recorded"]
    return [f"{name} retrieves {r['rate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] at {r['length']} "
            f"(gate: lower bound >= {RETRIEVAL_GATE:g})" for r in rows if not r["passed"]]
