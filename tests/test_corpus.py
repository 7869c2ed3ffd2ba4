"""ropelib.corpus: the deterministic stdlib split, the manifest check, and user corpora."""

import hashlib
import json
import warnings

import pytest

from ropelib import corpus
from ropelib.corpus import HELD_OUT_THRESHOLD, Document, is_held_out, load_documents, stdlib_documents


def _fresh(split):
    """The split listed again from disk, bypassing the lru_cache."""
    return stdlib_documents.__wrapped__(split)


# --- the stdlib split --------------------------------------------------------------------------

def test_split_is_deterministic():
    for split in ("train", "heldout"):
        first, second = _fresh(split), _fresh(split)
        assert [d.name for d in first] == [d.name for d in second]
        assert first == second


def test_split_is_sorted_disjoint_and_about_ten_percent():
    train, held = _fresh("train"), _fresh("heldout")
    names_train, names_held = [d.name for d in train], [d.name for d in held]
    assert names_train == sorted(names_train) and names_held == sorted(names_held)
    assert not set(names_train) & set(names_held)
    assert 0.05 < len(held) / (len(train) + len(held)) < 0.15
    assert all(is_held_out(n) for n in names_held) and not any(is_held_out(n) for n in names_train)
    assert all(d.text.strip() for d in train + held)  # empty files are dropped


def test_rule_depends_only_on_the_path():
    # pinned: sha256(path)[0] < 26, the same on every machine and whatever other files exist
    assert is_held_out("asynchat.py") and is_held_out("bz2.py")
    assert not is_held_out("os.py") and not is_held_out("typing.py")
    for path in ("os.py", "bz2.py", "json/decoder.py"):
        assert is_held_out(path) == (hashlib.sha256(path.encode()).digest()[0] < HELD_OUT_THRESHOLD)


def test_rule_holds_out_about_ten_percent_of_any_paths():
    share = sum(is_held_out(f"pkg/module_{i}.py") for i in range(5000)) / 5000
    assert abs(share - HELD_OUT_THRESHOLD / 256) < 0.02


def test_unknown_split():
    with pytest.raises(ValueError, match="expected 'train' or 'heldout'"):
        stdlib_documents("test")


# --- the manifest ------------------------------------------------------------------------------

def test_manifest_round_trip_and_mismatch_warning(tmp_path):
    path = tmp_path / "corpus.json"
    written = corpus.build_manifest(path)
    assert json.loads(path.read_text()) == written
    assert set(written) >= {"python_version", "train_files", "heldout_files", "train_sha256", "heldout_sha256"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert corpus.check_manifest(path)
    path.write_text(json.dumps({**written, "train_sha256": "0" * 64}))
    with pytest.warns(UserWarning, match="differs from the corpus"):
        assert not corpus.check_manifest(path)


def test_missing_manifest_warns(tmp_path):
    with pytest.warns(UserWarning, match="missing"):
        assert not corpus.check_manifest(tmp_path / "nope.json")


# --- user corpora ------------------------------------------------------------------------------

def test_load_documents_from_a_directory(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.md").write_text("first")
    (tmp_path / "sub" / "c.tex").write_text("third, naïve")
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "data.bin").write_bytes(b"\x00\x01")
    docs = load_documents(tmp_path)
    assert docs == [Document("a.md", "first"), Document("b.txt", "second"), Document("sub/c.tex", "third, naïve")]


def test_load_documents_from_jsonl(tmp_path):
    path = tmp_path / "docs.jsonl"
    lines = [{"id": "x", "text": "one"}, {"text": "two"}, {"id": "e", "text": ""}]
    path.write_text("\n".join(json.dumps(line) for line in lines[:2]) + "\n\n" + json.dumps(lines[2]) + "\n")
    docs = load_documents(path)
    assert docs == [Document("x", "one"), Document("1", "two")]
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"body": "three"}) + "\n")
    assert load_documents(other, text_field="body") == [Document("0", "three")]


def test_load_documents_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_documents(tmp_path / "missing")
    with pytest.raises(ValueError, match="no non-empty documents"):
        load_documents(tmp_path)  # an empty directory
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1 has no 'text' field"):
        load_documents(bad)
    blank = tmp_path / "blank.jsonl"
    blank.write_text(json.dumps({"text": " "}) + "\n")
    with pytest.raises(ValueError, match="no non-empty documents"):
        load_documents(blank)
    other = tmp_path / "table.csv"
    other.write_text("a,b\n")
    with pytest.raises(ValueError, match="directory or a .jsonl"):
        load_documents(other)
