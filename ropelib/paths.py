"""Where the book's files live: the repository root, ``data/`` and its sub-folders.

The root is found from this package's own location (the project is installed editable),
so chapters work whatever their working directory is (papermill runs them from the repo
root, nbval from ``book/``). ``ROPEBOOK_ROOT`` overrides it; ``ROPEBOOK_MODELS`` points
at another checkpoint folder (e.g. a smoke-trained set while developing a chapter).
Also the one atomic JSON writer (``write_json_atomic``) every module that records a file uses.
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

ROOT = Path(os.environ.get("ROPEBOOK_ROOT", Path(__file__).resolve().parents[1]))
DATA = ROOT / "data"
MODELS = Path(os.environ.get("ROPEBOOK_MODELS", DATA / "models"))
RESULTS = DATA / "results"
CORPUS_MANIFEST = DATA / "corpus.json"
# conversions made once and reused (the real model's safetensors copy); ignored by git
CACHE = Path(os.environ.get("ROPEBOOK_CACHE", DATA / "cache"))
# what `ropebook run` tells a page's kernel through its environment, named once for both sides
RESULTS_ENV = "ROPEBOOK_RESULTS"  # where the page writes its tables (ropelib.results)
LEDGER_ENV = "ROPEBOOK_TRIAL_LEDGER"  # where its trial store lists each kept trial it used (ropelib.tasks.trials)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (a checkpoint's weights, the real model's GGUF)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON to a temp file beside ``path``, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
