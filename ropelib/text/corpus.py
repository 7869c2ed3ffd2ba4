"""The organism's text: Python's standard library as an offline stand-in for Proof-pile.

Every machine that runs Python has the same ~30 MB of formal text (code and docstrings)
at ``sysconfig.get_paths()["stdlib"]``. Files are listed in sorted order and split three
ways by file, near-duplicates kept together (the split section below): ``train`` (~80%), ``dev``
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
import warnings
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from pathlib import Path

from ropelib import paths
from ropelib.paths import write_json_atomic


# ---------------------------------------------------------------------------------------------
# The split
#
# The three-way split of the organism's corpus, by file, with near-duplicates kept together.
#
# A file's split is decided by its *group*, not by itself: two files whose long lines
# (>= ``LONG_LINE`` characters, stripped) overlap by more than ``DUPLICATE_SHARE`` of the
# smaller file's set are joined (union-find), so ``encodings/cp865.py`` and ``cp858.py``
# (99.8% shared lines) always land on the same side. A group goes to
#
#     test  if sha256(min path of the group)[0] <  TEST_BELOW          (~10%)
#     dev   if                                  <  DEV_BELOW           (~10%)
#     train otherwise,
#
# so the rule depends only on the paths and their contents, never on the order of listing.
# Lines found in more than ``COMMON_LINE_FILES`` files (licence banners) are not used to
# join groups: they would chain unrelated files together.
#
# ``dev`` is for recipe tuning and the training gates; every finding uses ``test``.

LONG_LINE = 40
DUPLICATE_SHARE = 0.5
COMMON_LINE_FILES = 50
TEST_BELOW, DEV_BELOW = 26, 52  # of 256: ~10% test, ~10% dev
SPLITS = ("train", "dev", "test")


def long_lines(text: str) -> set[str]:
    return {s for s in (line.strip() for line in text.splitlines()) if len(s) >= LONG_LINE}


def near_duplicate_groups(texts: dict[str, str]) -> list[list[str]]:
    """Groups of paths (sorted) whose files share > DUPLICATE_SHARE of their long lines."""
    lines = {name: long_lines(text) for name, text in texts.items()}
    files_of = defaultdict(list)
    for name in sorted(lines):
        for line in lines[name]:
            files_of[line].append(name)
    shared = defaultdict(int)
    for names in files_of.values():
        if len(names) <= COMMON_LINE_FILES:
            for pair in combinations(names, 2):
                shared[pair] += 1
    parent = {name: name for name in texts}

    def root(name):
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for (a, b), count in shared.items():
        if count > DUPLICATE_SHARE * min(len(lines[a]), len(lines[b])):
            parent[root(a)] = root(b)
    groups = defaultdict(list)
    for name in sorted(texts):
        groups[root(name)].append(name)
    return sorted(groups.values())


def split_of_group(group: list[str]) -> str:
    first_byte = hashlib.sha256(min(group).encode()).digest()[0]
    return "test" if first_byte < TEST_BELOW else "dev" if first_byte < DEV_BELOW else "train"


def assign(texts: dict[str, str]) -> dict[str, str]:
    """path -> "train" | "dev" | "test" for every path of ``texts``."""
    return {name: split_of_group(group) for group in near_duplicate_groups(texts) for name in group}


def shared_line_share(texts: dict[str, str], split: str, other: str = "train") -> float:
    """Share of ``split``'s long lines (counted per file) that occur verbatim in ``other``."""
    where = assign(texts)
    seen = set().union(*(long_lines(t) for n, t in texts.items() if where[n] == other))
    mine = [line for n, t in texts.items() if where[n] == split for line in long_lines(t)]
    return sum(line in seen for line in mine) / max(1, len(mine))


# ---------------------------------------------------------------------------------------------
# The corpus



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
    return assign(stdlib_texts())


@lru_cache(maxsize=None)
def stdlib_documents(split: str) -> tuple[Document, ...]:
    """Sorted ``.py`` files of the running interpreter's standard library, one split."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; expected one of {', '.join(SPLITS)}")
    where = stdlib_splits()
    return tuple(Document(name, text) for name, text in stdlib_texts().items() if where[name] == split)


def _digest(docs) -> str:
    h = hashlib.sha256()
    for d in docs:
        h.update(d.name.encode() + b"\0" + d.text.encode() + b"\0")
    return h.hexdigest()


def corpus_fingerprint() -> dict:
    fingerprint = {"source": "python-stdlib", "python_version": platform.python_version()}
    for split in SPLITS:
        docs = stdlib_documents(split)
        fingerprint |= {f"{split}_files": len(docs), f"{split}_bytes": sum(len(d.text.encode()) for d in docs),
                        f"{split}_sha256": _digest(docs)}
    return fingerprint


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
    if any(expected.get(f"{split}_sha256") != actual[f"{split}_sha256"] for split in SPLITS):
        warnings.warn(
            f"this interpreter's standard library (Python {actual['python_version']}, "
            f"{sum(actual[f'{split}_files'] for split in SPLITS)} files) differs from the corpus the committed "
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
