"""The layout of ropelib, checked on its import graph (every import, lazy ones inside functions too).

- no import circle between modules;
- ``ropelib.core`` (the paper's science) imports nothing of ropelib outside ``core``;
- the book machinery (``ropelib.publish``) never imports a chapter's code (``ropelib.findings``);
- at most 8 modules at the top of ``ropelib/`` besides its subpackages;
- every chapter template ``chapters/<name>.ipynb`` has its code in ``ropelib/findings/<name with _>/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ropelib.paths import ROOT

PACKAGE = ROOT / "ropelib"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _target(name: str) -> str | None:
    """The module ``name`` refers to: itself if it is one, else its parent (an attribute of a module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Modules of ropelib that ``module`` imports, at any depth of its code; package __init__s left out."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] == "ropelib":
                target = _target(name)
                if target and target != module and not MODULES[target].name == "__init__.py":
                    found.add(target)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), or a module importing itself."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle():
    assert _cycles(GRAPH) == []


def test_core_imports_nothing_of_ropelib_outside_core():
    wrong = {m: sorted(t for t in targets if not t.startswith("ropelib.core."))
             for m, targets in GRAPH.items() if m.startswith("ropelib.core.")}
    assert {m: t for m, t in wrong.items() if t} == {}


def test_book_machinery_imports_no_chapter():
    wrong = {m: sorted(t for t in targets if t.startswith("ropelib.findings"))
             for m, targets in GRAPH.items() if m.startswith("ropelib.publish")}
    assert {m: t for m, t in wrong.items() if t} == {}


def test_at_most_eight_top_level_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top


@pytest.mark.parametrize("template", sorted(p.stem for p in (ROOT / "chapters").glob("*.ipynb")))
def test_every_chapter_has_its_findings_package(template):
    folder = PACKAGE / "findings" / template.replace("-", "_")
    assert (folder / "__init__.py").is_file(), f"chapters/{template}.ipynb has no ropelib/findings/{folder.name}/"
    assert "chapter" in (folder / "__init__.py").read_text().split('"""')[1].lower()
