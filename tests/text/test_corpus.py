"""ropelib.text.corpus: the deterministic stdlib split, the manifest check, and user corpora."""

import json
import warnings

import pytest

from ropelib.text import corpus
from ropelib.text.corpus import Document, load_documents, stdlib_documents, stdlib_texts

TRAIN_TEST_SHARED_BOUND = 0.05  # measured 0.032 for test, 0.041 for dev (Python 3.11.7); the v2 split had 0.105


def _fresh(split):
    """The split listed again from disk, bypassing the lru_cache."""
    return stdlib_documents.__wrapped__(split)


# --- the stdlib split --------------------------------------------------------------------------

def test_split_is_deterministic_sorted_and_disjoint():
    splits = {name: _fresh(name) for name in corpus.SPLITS}
    names = {name: [d.name for d in docs] for name, docs in splits.items()}
    for split, listed in names.items():
        assert listed == sorted(listed) and [d.name for d in _fresh(split)] == listed
    assert not set(names["train"]) & set(names["dev"]) and not set(names["train"]) & set(names["test"])
    assert not set(names["dev"]) & set(names["test"])
    total = sum(len(v) for v in names.values())
    assert 0.05 < len(names["test"]) / total < 0.15 and 0.05 < len(names["dev"]) / total < 0.15
    assert all(d.text.strip() for docs in splits.values() for d in docs)  # empty files are dropped


def test_near_duplicates_land_on_the_same_side():
    where = corpus.assign(stdlib_texts())
    assert where["encodings/cp865.py"] == where["encodings/cp858.py"]  # 99.8% shared lines
    groups = corpus.near_duplicate_groups({"a.py": "x" * 50 + "\n" + "y" * 50, "b.py": "x" * 50 + "\n" + "z" * 50,
                                                 "c.py": "w" * 60})
    assert groups == [["a.py"], ["b.py"], ["c.py"]]  # 1 of 2 long lines shared: not more than half
    groups = corpus.near_duplicate_groups({"a.py": "x" * 50 + "\n" + "y" * 50, "b.py": "x" * 50 + "\n" + "y" * 50})
    assert groups == [["a.py", "b.py"]]


def test_few_long_lines_of_test_occur_in_train():
    share = corpus.shared_line_share(stdlib_texts(), "test")
    assert share < TRAIN_TEST_SHARED_BOUND, f"{share:.3f} of the test split's long lines occur verbatim in train"


def test_unknown_split():
    with pytest.raises(ValueError, match="expected one of train, dev, test"):
        stdlib_documents("heldout")


# --- the manifest ------------------------------------------------------------------------------

def test_manifest_round_trip_and_mismatch_warning(tmp_path):
    path = tmp_path / "corpus.json"
    written = corpus.build_manifest(path)
    assert json.loads(path.read_text()) == written
    assert set(written) >= {"python_version", "train_files", "dev_files", "test_files", "train_sha256", "test_sha256"}
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
