"""Manifest-only organism checkpoints in a tmp folder, for tests that read manifests but load no weights.

``write_checkpoint(root, name, ...)`` writes ``root/name/manifest.json`` shaped like
``recipes.train_one``'s (organism v3: ``gate``, ``trained_length``, ``tokens_by_length``,
``dev_loss`` curve points). ``organisms(monkeypatch, tmp_path)`` points ``paths.MODELS`` there.
"""

import json

from ropelib.models import organism
from ropelib import paths

MICRO = organism.OrganismConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64,
                                head_dim=16)


def gate_rows(lengths, passed: bool = True, needles: int = 200) -> list[dict]:
    hits = needles if passed else needles // 2
    low = 0.98 if passed else 0.43
    return [{"length": length, "hits": hits, "needles": needles, "rate": hits / needles, "ci_low": low,
             "ci_high": 1.0 if passed else 0.57, "passed": passed} for length in lengths]


def write_checkpoint(root, name, stages=((256, 10, 4),), parent=None, method="rope", factor=1.0, gate=True,
                     known_miss=None, size="M", config=MICRO, pretrained_length=256):
    """``stages``: (length, steps, batch) each; ``gate``: True / False (passed or not at every gate length)
    or None (no gate rows, like a smoke run)."""
    by_length = {}
    for length, steps, batch in stages:
        by_length[str(length)] = by_length.get(str(length), 0) + length * steps * batch
    trained = max(length for length, _, _ in stages)
    tokens = sum(by_length.values())
    manifest = {
        "name": name, "parent": parent, "size": size, "organism": config.as_dict(),
        "rope": {"method": method, "factor": factor, "extra": {}, "pretrained_base": config.rope_base,
                 "pretrained_length": pretrained_length, "rope_parameters": {"rope_theta": config.rope_base,
                                                                             "rope_type": "default"},
                 "max_position_embeddings": trained},
        "recipe": {"stages": [{"length": length, "steps": steps, "batch_size": batch, "needle_fraction": None,
                               "short_needles": 0.0} for length, steps, batch in stages]},
        "tokens_seen": tokens, "tokens_by_length": by_length, "trained_length": trained,
        "gate": [] if gate is None else gate_rows(sorted({pretrained_length, trained}), gate),
        "known_miss": known_miss,
        "curve": [{"tokens": tokens // 2, "dev_loss": 2.0, "retrieval": 0.5},
                  {"tokens": tokens, "dev_loss": 1.5, "retrieval": 0.95}],
        "final": {"dev_loss_at_L0": 1.5, "retrieval_at_L0": 0.95}, "wall_seconds": 12.5,
    }
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def organisms(monkeypatch, tmp_path):
    """A fresh, empty organism folder as ``paths.MODELS``."""
    root = tmp_path / "models"
    root.mkdir()
    monkeypatch.setattr(paths, "MODELS", root)
    return root


def huggingface_dir(root, name, max_positions=4096, theta=10000.0):
    """A directory that passes ``sources.check_source`` as a Hugging Face checkpoint (no real weights)."""
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"max_position_embeddings": max_positions,
                                                        "rope_theta": theta}))
    (directory / "model.safetensors").write_bytes(b"")
    return directory
