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
    the columns of :data:`GLANCE_COLUMNS`.
Which model a page measures is passed explicitly, never held here: a model chapter's line-up
carries it (``models.lineup.resolve(...).model``) and the page hands it to :func:`write_csv`
and :func:`write_glance` (``model=setup.model``; the organism when not given). On a real model
(e.g. ``smollm2``) its glance rows are that model's (``model`` column) and every file name gets
``-<model>`` (``glance-finding2-smollm2.csv``, ``needle-trials-smollm2.csv``), so the real
model's pages never overwrite the organism's tables. The verdict in each row is computed in the
    chapter by a rule stated in the row's ``rule`` column; nothing is typed by hand. The
    paper's claims take :data:`VERDICTS`; controls and results beyond the paper take
    :data:`OWN_VERDICTS` ("supported", ...): the paper never made those claims.
Not here: statistics (``stats``) or the rules themselves (each chapter's findings module).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from ropelib import paths

# The paper's claims are graded in replication words; a control or a result the paper never
# claimed cannot be "replicated", so those rows have their own words, counted apart.
VERDICTS = ("replicated", "partly", "not replicated", "inconclusive", "not testable")
OWN_VERDICTS = ("supported", "partly supported", "not supported", "inconclusive", "not testable")
# a rule grades in replication words; a row of another kind is worded in its own (one word for one word)
OWN_WORD = dict(zip(VERDICTS, OWN_VERDICTS))
ALL_VERDICTS = tuple(dict.fromkeys(VERDICTS + OWN_VERDICTS))
SIGNIFICANT_DIGITS = 4  # what the pages print: tables are byte-identical across machines
RESULTS_ENV = paths.RESULTS_ENV


def results_dir() -> Path:
    """The directory this execution writes its tables to (see the module docstring)."""
    return Path(os.environ.get(RESULTS_ENV) or paths.ROOT / "_build" / "results")
GLANCE_COLUMNS = ["order", "finding", "claim", "paper", "ours", "estimate", "ci_low", "ci_high", "null", "sesoi",
                  "direction", "n_units", "unit", "verdict", "rule", "chapter", "kind", "details", "model", "parts",
                  "caveats", "sensitivity"]
# the structured columns (ropelib.findings.claims.row): the estimate and 95% CI of the part that decides the
# verdict, the registry's null, sesoi and direction, the number of units and what a unit is; the parts graded,
# the premises that fail (caveats) and the verdict on the units that meet them (sensitivity)
STRUCTURED = ("estimate", "null", "sesoi", "direction", "n_units", "unit")
# which model a row measures: the organism line-up, or a real pretrained model (its name in book/runs.yml's
# line-ups, e.g. "smollm2"); one claim (one ``order``) may have a row per model. Files without the column
# were written by the organism's pages.
ORGANISM = "organism"
# a glance row is one claim: of the paper, a control the paper lacks, or a result beyond it
KINDS = ("paper", "control", "beyond")
VOCABULARY = {"paper": VERDICTS, "control": OWN_VERDICTS, "beyond": OWN_VERDICTS}


def worded(verdict: str, kind: str) -> str:
    """``verdict`` in the words of a row of ``kind``: "replicated" -> "supported" for a control or a
    result beyond the paper; a word already of that vocabulary is kept; any other raises."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {KINDS}")
    word = verdict if kind == "paper" or verdict in OWN_VERDICTS else OWN_WORD.get(verdict, verdict)
    if word not in VOCABULARY[kind]:
        raise ValueError(f"verdict={verdict!r} for a {kind} row; expected one of {VOCABULARY[kind]}")
    return word


# ---- file names

def named(name: str, model: str = ORGANISM) -> str:
    """A table's file stem for ``model``: ``name`` for the organism, else ``name-<model>`` (kept as it is
    when the model already is one of its dash-separated parts, e.g. ``smollm2-perplexity``)."""
    model = model or ORGANISM
    return name if model == ORGANISM or model in name.split("-") else f"{name}-{model}"


# ---- writing

def write_csv(frame: pd.DataFrame, name: str, directory: Path | None = None, model: str = ORGANISM) -> Path:
    """Write ``frame`` to ``<results_dir()>/<named(name, model)>.csv`` atomically, floats at 4 significant
    digits; ``model``: the model the table measures (:data:`ORGANISM`, or a real model's name)."""
    name = named(name, model)
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
               details: str = "", model: str = ORGANISM) -> dict:
    """One claim for the glance page. ``rule`` states how the verdict is decided, including its
    preconditions ("not testable" when one fails); ``details`` holds the sub-statistics; ``model`` says
    which model's answer this is (:data:`ORGANISM`, or a real model's name).
    ``verdict`` is a rule's grade, worded for the row's ``kind`` (:func:`worded`)."""
    verdict = worded(verdict, kind)
    if not str(rule).strip():
        raise ValueError("every glance row states its rule (criterion)")
    return dict(order=order, finding=finding, claim=claim, paper=paper, ours=ours, estimate=None, ci_low=ci_low,
                ci_high=ci_high, null=None, sesoi=None, direction=None, n_units=None, unit="", verdict=verdict,
                rule=rule, chapter=chapter, kind=kind, details=details, model=model, parts="", caveats="",
                sensitivity="")


def write_glance(rows: list[dict], finding: str, directory: Path | None = None, model: str = ORGANISM) -> Path:
    """A chapter's rows for the glance page (``glance-<finding>.csv``, ``-<model>`` for a real model: :func:`named`);
    rows that do not name their model are ``model``'s (the model the page measures)."""
    model = model or ORGANISM
    frame = pd.DataFrame(rows, columns=GLANCE_COLUMNS)
    frame["model"] = frame["model"].where(frame["model"].notna() & (frame["model"] != ORGANISM), model)
    return write_csv(frame, f"glance-{finding}", directory, model)


PREMISES = "organism-premises"  # chapter 0's premises: premise, holds, numbers, claims (glance orders), chapter


def read_premises(directory: Path | None = None) -> pd.DataFrame:
    """Chapter 0's premise checks (``organism-premises.csv``); empty when chapter 0 has not run."""
    path = Path(directory or paths.RESULTS) / f"{PREMISES}.csv"
    return pd.read_csv(path, dtype={"claims": str}) if path.is_file() else pd.DataFrame(
        columns=["premise", "holds", "numbers", "claims", "chapter"])


def read_glance(directory: Path | None = None) -> pd.DataFrame:
    files = sorted(Path(directory or paths.RESULTS).glob("glance-*.csv"))  # the published ones by default
    if not files:
        return pd.DataFrame(columns=GLANCE_COLUMNS)
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True).sort_values("order", kind="stable")
