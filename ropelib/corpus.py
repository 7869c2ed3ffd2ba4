"""The organism's text: Python's standard library as an offline stand-in for Proof-pile.

Every machine that runs Python has the same ~30 MB of formal text (code and docstrings)
at ``sysconfig.get_paths()["stdlib"]``. Files are listed in sorted order and split three
ways by file, near-duplicates kept together (``corpus_split``): ``train`` (~80%), ``dev``
(~10%: recipe tuning and training gates), ``test`` (~10%: every finding).

``build_manifest`` records the interpreter version, file counts and sha256 of each
split's bytes in ``data/corpus.json``; ``check_manifest`` warns when the running
interpreter's corpus differs from the one the committed models were trained on.
``load_documents`` reads a user's own corpus (a directory of text files or a JSONL file
with a ``text`` field), e.g. a local Proof-pile or PG-19 copy.

Not here: tokenisation (``tokenizer``) or batching (``training``, ``tasks``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sysconfig
import tempfile
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ropelib import corpus_split, paths



@dataclass(frozen=True)
class Document:
    name: str
    text: str


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@lru_cache(maxsize=1)
def stdlib_texts() -> dict[str, str]:
    """relative path -> text of every non-empty ``.py`` file of the standard library, sorted."""
    root = stdlib_root()
    texts = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if "site-packages" in rel.split("/"):
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        if text.strip():
            texts[rel] = text
    return texts


@lru_cache(maxsize=1)
def stdlib_splits() -> dict[str, str]:
    return corpus_split.assign(stdlib_texts())


@lru_cache(maxsize=None)
def stdlib_documents(split: str) -> tuple[Document, ...]:
    """Sorted ``.py`` files of the running interpreter's standard library, one split."""
    if split not in corpus_split.SPLITS:
        raise ValueError(f"split={split!r}; expected one of {', '.join(corpus_split.SPLITS)}")
    where = stdlib_splits()
    return tuple(Document(name, text) for name, text in stdlib_texts().items() if where[name] == split)


def _digest(docs) -> str:
    h = hashlib.sha256()
    for d in docs:
        h.update(d.name.encode() + b"\0" + d.text.encode() + b"\0")
    return h.hexdigest()


def corpus_fingerprint() -> dict:
    fingerprint = {"source": "python-stdlib", "python_version": platform.python_version()}
    for split in corpus_split.SPLITS:
        docs = stdlib_documents(split)
        fingerprint |= {f"{split}_files": len(docs), f"{split}_bytes": sum(len(d.text.encode()) for d in docs),
                        f"{split}_sha256": _digest(docs)}
    return fingerprint


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON to a temp file beside ``path``, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def build_manifest(path: Path = paths.CORPUS_MANIFEST) -> dict:
    fingerprint = corpus_fingerprint()
    write_json_atomic(path, fingerprint)
    return fingerprint


def check_manifest(path: Path = paths.CORPUS_MANIFEST) -> bool:
    """True when the running interpreter's corpus matches the committed manifest; warns otherwise."""
    if not path.exists():
        warnings.warn(f"{path} is missing; run `ropebook models` (or corpus.build_manifest()) to create it")
        return False
    expected = json.loads(path.read_text())
    actual = corpus_fingerprint()
    if any(expected.get(f"{split}_sha256") != actual[f"{split}_sha256"] for split in corpus_split.SPLITS):
        warnings.warn(
            f"this interpreter's standard library (Python {actual['python_version']}, "
            f"{sum(actual[f'{split}_files'] for split in corpus_split.SPLITS)} files) differs from the corpus the committed "
            f"models were trained on (Python {expected.get('python_version')}); held-out numbers will differ "
            "from the book's. Retrain with `make models` for an exact match."
        )
        return False
    return True


def load_documents(source: str | os.PathLike, text_field: str = "text", suffixes=(".txt", ".md", ".tex", ".py")) -> list[Document]:
    """Documents from a local directory (files with ``suffixes``, sorted) or a JSONL file."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"corpus {source} does not exist; give a directory of text files or a .jsonl file")
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix in suffixes)
        docs = [Document(p.relative_to(source).as_posix(), p.read_text(errors="replace")) for p in files]
    elif source.suffix == ".jsonl":
        docs = []
        for i, line in enumerate(source.read_text().splitlines()):
            if not line.strip():
                continue
            record = json.loads(line)
            if text_field not in record:
                raise ValueError(f"{source}:{i + 1} has no {text_field!r} field")
            docs.append(Document(str(record.get("id", i)), record[text_field]))
    else:
        raise ValueError(f"corpus {source}: expected a directory or a .jsonl file")
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise ValueError(f"corpus {source} holds no non-empty documents")
    return docs
