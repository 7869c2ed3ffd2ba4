"""Where the book's files live: the repository root, ``data/`` and its sub-folders.

The root is found from this package's own location (the project is installed editable),
so chapters work whatever their working directory is (papermill runs them from the repo
root, nbval from ``book/``). ``ROPEBOOK_ROOT`` overrides it; ``ROPEBOOK_MODELS`` points
at another checkpoint folder (e.g. a smoke-trained set while developing a chapter).
"""

import os
from pathlib import Path

ROOT = Path(os.environ.get("ROPEBOOK_ROOT", Path(__file__).resolve().parents[1]))
DATA = ROOT / "data"
MODELS = Path(os.environ.get("ROPEBOOK_MODELS", DATA / "models"))
RESULTS = DATA / "results"
CORPUS_MANIFEST = DATA / "corpus.json"
