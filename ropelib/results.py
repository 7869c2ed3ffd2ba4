"""Result tables the chapters write, and the glance page reads.

Where they go is decided by whoever runs the page, never by the page: the directory is
``$ROPEBOOK_RESULTS``, which ``ropebook run`` sets for each execution: ``data/results/``
for the run plan's pages, ``<output>.results/`` beside a one-off page; ``make test``'s
nbval re-execution sets a temporary directory. A page executed any other way (opened in
Jupyter) writes to ``_build/results/`` (ignored by git), so nothing but the run plan ever
rewrites the published tables.

Two kinds of file, both CSV, both written atomically (temp file, then rename):
  - ``<name>.csv``: a chapter's own table (tidy, one row per measurement);
  - ``glance-<finding>.csv``: that chapter's rows for the "Results at a glance" page, with
    the columns of :data:`GLANCE_COLUMNS`. The verdict in each row is computed in the
    chapter by a rule stated in the row's ``rule`` column; nothing is typed by hand.
Not here: statistics (``stats``) or the rules themselves (each chapter's findings module).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from ropelib import paths

VERDICTS = ("replicated", "partly", "not replicated", "not testable")
SIGNIFICANT_DIGITS = 4  # what the pages print: tables are byte-identical across machines
RESULTS_ENV = "ROPEBOOK_RESULTS"


def results_dir() -> Path:
    """The directory this execution writes its tables to (see the module docstring)."""
    return Path(os.environ.get(RESULTS_ENV) or paths.ROOT / "_build" / "results")
GLANCE_COLUMNS = ["order", "finding", "claim", "paper", "ours", "ci_low", "ci_high", "verdict", "rule", "chapter",
                  "kind", "details"]
# a glance row is one claim: of the paper, a control the paper lacks, or a result beyond it
KINDS = ("paper", "control", "beyond")


def write_csv(frame: pd.DataFrame, name: str, directory: Path | None = None) -> Path:
    """Write ``frame`` to ``<results_dir()>/<name>.csv`` atomically, floats at 4 significant digits."""
    directory = Path(directory or results_dir())
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.csv"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        frame.to_csv(f, index=False, float_format=f"%.{SIGNIFICANT_DIGITS}g")
    os.replace(tmp, target)
    return target


def glance_row(order: float, finding: str, claim: str, paper: str, ours: float | str, verdict: str, rule: str,
               chapter: str, ci_low: float | None = None, ci_high: float | None = None, kind: str = "paper",
               details: str = "") -> dict:
    """One claim for the glance page. ``rule`` states how the verdict is decided, including its
    preconditions ("not testable" when one fails); ``details`` holds the sub-statistics."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict={verdict!r}; expected one of {VERDICTS}")
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {KINDS}")
    return dict(order=order, finding=finding, claim=claim, paper=paper, ours=ours, ci_low=ci_low,
                ci_high=ci_high, verdict=verdict, rule=rule, chapter=chapter, kind=kind, details=details)


def write_glance(rows: list[dict], finding: str, directory: Path | None = None) -> Path:
    """A chapter's rows for the glance page (``glance-<finding>.csv``)."""
    frame = pd.DataFrame(rows, columns=GLANCE_COLUMNS)
    return write_csv(frame, f"glance-{finding}", directory)


def read_glance(directory: Path | None = None) -> pd.DataFrame:
    files = sorted(Path(directory or paths.RESULTS).glob("glance-*.csv"))  # the published ones by default
    if not files:
        return pd.DataFrame(columns=GLANCE_COLUMNS)
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True).sort_values("order", kind="stable")
