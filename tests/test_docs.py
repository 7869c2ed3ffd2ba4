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


# ---------------------------------------------------------------------------------------------
# What a page says about its model (chapters/prose.yml): each model its own text


def _prose_calls():
    """(template, chapter, section) of every ``prose.model_paragraph("chapter", "section", ...)`` in a template."""
    import nbformat

    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for chapter, section in re.findall(r'model_paragraph\("([\w-]+)", "(\w+)"', cell.source):
                yield path.stem, chapter, section


def test_every_page_paragraph_exists_for_both_models_and_each_speaks_of_its_own():
    import yaml

    from ropelib import prose

    entries = yaml.safe_load((ROOT / "chapters" / "prose.yml").read_text())
    calls = list(_prose_calls())
    assert {(c, s) for _, c, s in calls} == {(c, s) for c, sections in entries.items() for s in sections}
    assert all(template == chapter for template, chapter, _ in calls)  # a page speaks of its own chapter
    for chapter, sections in entries.items():
        for section in sections:
            organism = prose.model_text(chapter, section)
            real = prose.model_text(chapter, section, "Real-1B", 4096)
            assert "Real-1B" in real and "4096" in real and "{" not in organism + real
            assert "Real-1B" not in organism
            # the real model's text names the organism only to point at what only the organism can test
            assert real.lower().count("organism") <= 1, (chapter, section)
    with pytest.raises(KeyError, match="no section 'nope' for chapter 'perplexity'"):
        prose.model_text("perplexity", "nope")
