"""Docs that stay true: README's verdict table is the claims registry, and every ``ropelib.…`` name or
module file that README.md or a ropelib docstring names in backticks exists."""

from __future__ import annotations

import ast
import importlib
import re

import pytest

from ropelib.findings import claims
from ropelib.paths import ROOT

README = (ROOT / "README.md").read_text()
BEGIN, END = "<!-- claims-table -->", "<!-- /claims-table -->"


def test_readme_verdict_table_is_the_registry():
    table = README.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert table == claims.markdown_table(), (
        "README's claims table differs from chapters/claims.yml: paste claims.markdown_table() between "
        f"{BEGIN} and {END}")


def _docstrings():
    for path in sorted((ROOT / "ropelib").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in [tree, *ast.walk(tree)]:
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                text = ast.get_docstring(node)
                if text:
                    yield f"{path.relative_to(ROOT)}:{getattr(node, 'name', 'module')}", text
    yield "README.md", README


def _resolves(name: str) -> bool:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


NAMED = sorted({(where, name.rstrip(".")) for where, text in _docstrings()
                for name in re.findall(r"``?(ropelib(?:\.\w+)+)(?:\(\))?``?", text)})
FILES = sorted({(where, name) for where, text in _docstrings()
                for name in re.findall(r"`((?:ropelib|chapters|book|tests|benchmarks)/[\w/.-]+\.(?:py|yml|ipynb))`", text)})


@pytest.mark.parametrize("where,name", NAMED, ids=[f"{w}->{n}" for w, n in NAMED])
def test_a_named_ropelib_object_exists(where, name):
    assert _resolves(name), f"{where} names `{name}`, which does not resolve"


@pytest.mark.parametrize("where,name", FILES, ids=[f"{w}->{n}" for w, n in FILES])
def test_a_named_file_exists(where, name):
    assert (ROOT / name).exists(), f"{where} names `{name}`, which does not exist"
