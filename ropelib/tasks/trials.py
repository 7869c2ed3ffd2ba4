"""Trials kept on disk, so an interrupted real-model page resumes where it stopped.

A *trial* is the unit of a page's work that costs a long-context forward: one document's
per-position losses (perplexity), one sequence's attention profiles (attention patterns), one
cell of needles (needle entropy). On a real model one such forward takes 35 s (8K tokens) to
110 s (16K) on two CPU cores, so a page of 30-90 minutes keeps each trial as it finishes and
a re-run (after an interruption, or after a template's prose changed) reads it back.

A trial's file name is the sha256 of everything its numbers depend on:

    key = sha256(canonical JSON of {kind, model identity (the weights' sha256), method, options,
                 factor, dtype, device, torch threads, ropelib version, the trial's own inputs})

where the trial's inputs include a sha256 of its token ids, so a different document, length,
seed or query draw is a different file. Two stores write one format: arrays (``.npz``,
exact float32/float64, no pickle) and records (``.json``, a list of flat rows). Writes are
atomic (temp file, then rename): a killed page never leaves a half-written trial.

Only real models keep trials (``models.variants.trial_store``): the organism's forwards take
milliseconds, and its pages recompute so that nbval checks the computation itself.
The folder is ``paths.CACHE / "trials"`` (``$ROPEBOOK_CACHE``; ignored by git); each computed trial adds
a line to its ``progress.log`` (time, kind, method, seconds), a long page's progress outside the page.

What a page *costs* is not its wall time once trials are read back: each trial keeps the seconds
it took (``<key>.seconds`` beside it), and every lookup appends ``{"trial": "kind/key", "kept": bool,
"seconds": s}`` to the page's ledger (``$ROPEBOOK_TRIAL_LEDGER``, set by ``ropebook run``), so the runner can
record, beside the wall time, the seconds the page would take from an empty cache:

    seconds_from_empty_cache = wall seconds + sum(seconds of the trials read back)

(unknown when a trial kept before 2026-12-07 has no ``.seconds``). The trials' names let
``benchmarks/book.py`` count a trial once in a plan whose pages share trials (a pooled page
reading back what the pages before it computed).
Not here: what a trial computes (``tasks``, ``findings``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import ropelib
from ropelib import paths

LEDGER_ENV = paths.LEDGER_ENV  # set by ropelib.publish.runner for each page


def digest(values) -> str:
    """sha256 (hex, 16 characters) of a sequence of integers (token ids, positions)."""
    return hashlib.sha256(np.asarray(values, dtype=np.int64).tobytes()).hexdigest()[:16]


class Store:
    """Trials of one model run one way (``identity``: the model, method, options, factor, dtype, device).

    ``arrays(kind, inputs, compute)``: the dict of numpy arrays ``compute()`` returns, read back when
    a trial with the same kind and inputs was kept; ``records(kind, inputs, compute)``: the same for a
    list of flat dicts. ``hits`` and ``misses`` count this store's lookups (a page prints them).
    """

    def __init__(self, identity: dict, directory: Path | None = None):
        self.identity = {**identity, "ropelib": ropelib.__version__, "threads": torch.get_num_threads()}
        self.directory = Path(directory) if directory is not None else paths.CACHE / "trials"
        self.hits = self.misses = 0

    def path(self, kind: str, inputs: dict, suffix: str) -> Path:
        text = json.dumps({"kind": kind, **self.identity, "inputs": inputs}, sort_keys=True, default=str)
        return self.directory / kind / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}{suffix}"

    def arrays(self, kind: str, inputs: dict, compute: Callable[[], dict]) -> dict[str, np.ndarray]:
        path = self.path(kind, inputs, ".npz")
        if path.exists():
            self._read_back(path)
            with np.load(path, allow_pickle=False) as kept:
                return {name: kept[name] for name in kept.files}
        start = time.perf_counter()
        values = {name: np.asarray(value) for name, value in compute().items()}
        _write(path, lambda f: np.savez(f, **values))
        self._computed(kind, path, time.perf_counter() - start)
        return values

    def records(self, kind: str, inputs: dict, compute: Callable[[], list[dict]]) -> list[dict]:
        path = self.path(kind, inputs, ".json")
        if path.exists():
            self._read_back(path)
            return json.loads(path.read_text())
        start = time.perf_counter()
        rows = compute()
        _write(path, lambda f: f.write(json.dumps(rows, default=_plain).encode()))
        self._computed(kind, path, time.perf_counter() - start)
        return rows

    def _read_back(self, path: Path) -> None:
        self.hits += 1
        try:
            seconds = float(path.with_suffix(".seconds").read_text())
        except (OSError, ValueError):
            seconds = None  # kept before trials recorded their time
        _ledger(path, kept=True, seconds=seconds)

    def _computed(self, kind: str, path: Path, seconds: float) -> None:
        """Record the trial's seconds beside it and in the page's ledger, and one line in
        ``<directory>/progress.log``: a long page's progress, read outside the page
        (``tail -f data/cache/trials/progress.log``); the page itself prints nothing of it."""
        self.misses += 1
        _write(path.with_suffix(".seconds"), lambda f: f.write(f"{seconds:.3f}\n".encode()))
        _ledger(path, kept=False, seconds=round(seconds, 3))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = f"{stamp} {kind} {self.identity.get('method', '')} {seconds:.1f}s {path.name}\n"
        with open(self.directory / "progress.log", "a", encoding="utf-8") as log:
            log.write(line)


class Nothing:
    """No store (the organism): every trial is computed."""

    hits = misses = 0

    def arrays(self, kind: str, inputs: dict, compute: Callable[[], dict]) -> dict[str, np.ndarray]:
        return {name: np.asarray(value) for name, value in compute().items()}

    def records(self, kind: str, inputs: dict, compute: Callable[[], list[dict]]) -> list[dict]:
        return compute()


NOTHING = Nothing()


# ---- the page's ledger


def _ledger(trial: Path, kept: bool, seconds: float | None) -> None:
    """Append the lookup of ``trial`` (named kind/key) to the page's ledger, if the runner set one."""
    ledger = os.environ.get(LEDGER_ENV)
    if ledger:  # one short line, appended: O_APPEND writes of a line do not interleave
        entry = {"trial": f"{trial.parent.name}/{trial.stem}", "kept": kept, "seconds": seconds}
        with open(ledger, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\n")


def summarize_ledger(path: Path) -> dict | None:
    """A page's trials from its ledger: how many computed and read back, their seconds, how many read back
    without a recorded time, and each trial's seconds by name (``names``); None when the page used no kept
    trials (the organism's pages)."""
    try:
        entries = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError:
        return None
    if not entries:
        return None
    computed = [e["seconds"] for e in entries if not e["kept"]]
    kept = [e["seconds"] for e in entries if e["kept"]]
    return {"computed": len(computed), "computed_seconds": round(sum(computed), 1),
            "read_back": len(kept), "read_back_seconds": round(sum(s for s in kept if s is not None), 1),
            "read_back_without_time": sum(s is None for s in kept),
            "names": {"computed": {e["trial"]: e["seconds"] for e in entries if not e["kept"]},
                      "read_back": {e["trial"]: e["seconds"] for e in entries if e["kept"]}}}


# ---- helpers

def _plain(value):
    """numpy scalars as Python numbers in a kept record (json cannot write them)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"a trial record holds {type(value).__name__}, not a number or a string")


def _write(path: Path, write: Callable) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
