"""Result tables the chapters write to ``data/results/`` and the glance page reads.

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

VERDICTS = ("replicated", "partly", "not replicated")
GLANCE_COLUMNS = ["order", "finding", "claim", "paper", "ours", "ci_low", "ci_high", "verdict", "rule", "chapter"]


def write_csv(frame: pd.DataFrame, name: str, directory: Path | None = None) -> Path:
    """Write ``frame`` to ``data/results/<name>.csv`` atomically; floats rounded to 6 digits."""
    directory = Path(directory or paths.RESULTS)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.csv"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        frame.to_csv(f, index=False, float_format="%.6g")
    os.replace(tmp, target)
    return target


def glance_row(order: float, finding: str, claim: str, paper: str, ours: float | str, verdict: str, rule: str,
               chapter: str, ci_low: float | None = None, ci_high: float | None = None) -> dict:
    if verdict not in VERDICTS:
        raise ValueError(f"verdict={verdict!r}; expected one of {VERDICTS}")
    return dict(order=order, finding=finding, claim=claim, paper=paper, ours=ours, ci_low=ci_low,
                ci_high=ci_high, verdict=verdict, rule=rule, chapter=chapter)


def write_glance(rows: list[dict], finding: str, directory: Path | None = None) -> Path:
    """A chapter's rows for the glance page (``glance-<finding>.csv``)."""
    frame = pd.DataFrame(rows, columns=GLANCE_COLUMNS)
    return write_csv(frame, f"glance-{finding}", directory)


def read_glance(directory: Path | None = None) -> pd.DataFrame:
    files = sorted(Path(directory or paths.RESULTS).glob("glance-*.csv"))
    if not files:
        return pd.DataFrame(columns=GLANCE_COLUMNS)
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True).sort_values("order", kind="stable")
