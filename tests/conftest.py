"""Shared fixtures.

``built_book``: the book built once per test session, with jupyter-book and warnings as
errors (``ropebook build --all``) into the standard ``_build/``. test_book_build checks
what it produced; test_browser opens its pages.
``forget_checked_sources`` (every test): ``sources.check_source`` remembers the sources that passed
within a process; each test starts without that memory (tests patch what a source resolves to).
"""

import subprocess
import sys

import pytest

from ropelib.models import sources
from ropelib.paths import ROOT


@pytest.fixture(autouse=True)
def forget_checked_sources():
    sources.forget()
    yield
    sources.forget()


@pytest.fixture(scope="session")
def built_book():
    """(completed process, path of _build/html) of one full, warnings-are-errors build."""
    result = subprocess.run(
        [sys.executable, "-m", "ropelib", "build", "--all"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    return result, ROOT / "_build" / "html"
