"""The claims registry (``chapters/claims.yml``) and the one rule that grades every verdict.

Unlike the chapters' ``verdicts`` modules, which compute each claim's estimate and interval
from their own tables, this module decides nothing about a claim's data: it reads the
registry entry (estimand, direction, null, smallest effect of interest, unit, premises) and
grades an interval against it, the same way for every row of both models:

    n < min_units, interval not finite or of zero width       -> inconclusive (not a CI)
    direction d = +1 / -1, x = d (CI - null):
        x_low > 0                                              -> replicated
        -sesoi <= CI - null <= +sesoi, or x_high < 0           -> not replicated (equivalence, or opposite)
        otherwise                                              -> inconclusive
    direction 0 (a claim of no effect):
        null - sesoi <= CI <= null + sesoi                     -> replicated
        CI wholly outside that band                            -> not replicated
    parts: all replicated -> replicated; all not replicated -> not replicated;
           any replicated -> partly; else inconclusive

Premises are caveats, never switches: :func:`row` grades all units, and takes the grade on
the units that meet the premise as a sensitivity line beside it.

  load()                  the registry: {order: Claim}, read once
  Claim                   one entry (fields as in the YAML), with ``rule`` (its text as printed)
  Part                    one graded part: name, estimate, ci_low, ci_high, n_units, grade, reason
  grade(claim, ...)       the rule above for one interval
  part(claim, name, ...)  a Part graded by the rule
  combine(parts)          the claim's grade from its parts' (and the part that decides it)
  row(claim, parts, ...)  the glance row, with the structured columns of ``results.GLANCE_COLUMNS``
  not_testable(claim, reason, ...)  a row whose quantity cannot be measured at all
  RETRIEVES_AT_L0, pass_rates_at(trials, labels, length), below_premise(rates, length)
                          the registry's premise "retrieves at L0" (its ``at_least``), measured on a page's trials
  bootstrap_mean(values)  percentile-bootstrap CI of a mean over units (paired: pass differences)
  markdown_table()        the registry as the table README.md shows
  wilson(k, n)            Wilson score interval of a rate
  newcombe_paired(b, c, n)  Newcombe's paired-difference interval (method 10) from discordant counts

Not here: any chapter's estimand (the chapters' ``verdicts`` modules), the words of a control
(``results.worded``), the glance page (``ropelib.findings.glance``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ropelib import paths, results
from ropelib.core import metrics, stats

REGISTRY = Path(paths.ROOT) / "chapters" / "claims.yml"
LEVEL = 0.95
N_BOOT = 2000
ZERO_WIDTH = 1e-9  # relative: a bootstrap of identical differences that differ only by rounding has no width
GRADES = ("replicated", "partly", "not replicated", "inconclusive", "not testable")
RULE = ("one rule for every row (chapters/claims.yml): fewer than {min_units} {unit}s, or an interval of zero "
        "width, is inconclusive; replicated if the 95% CI lies wholly on the claimed side of the null, not "
        "replicated if it lies inside null +- sesoi or wholly on the other side, else inconclusive")
EQUIVALENCE_RULE = ("one rule for every row (chapters/claims.yml): a claim of no effect; fewer than {min_units} "
                    "{unit}s, or an interval of zero width, is inconclusive; replicated if the 95% CI lies inside "
                    "null +- sesoi, not replicated if wholly outside it, else inconclusive")


# ---- the registry

@dataclass(frozen=True)
class Claim:
    order: float
    finding: str
    kind: str
    chapter: str
    statement: str
    paper: str
    estimand: str
    direction: int
    null: float
    sesoi: float
    sesoi_why: str
    unit: str
    min_units: int
    interval: str
    parts: str = ""
    needs: str = ""
    premises: tuple = field(default_factory=tuple)

    @property
    def rule(self) -> str:
        """The row's rule as printed: the estimand, its direction, null and sesoi, then the one rule."""
        side = {1: f"above {self.null:g}", -1: f"below {self.null:g}", 0: f"within {self.null:g} +- {self.sesoi:g}"}
        text = (EQUIVALENCE_RULE if self.direction == 0 else RULE).format(min_units=self.min_units, unit=self.unit)
        premises = "".join(f"; premise (a caveat, not a switch): {p['name']}, {p['threshold']}" for p in self.premises)
        return (f"estimand: {self.estimand}; claimed {side[self.direction]}; sesoi {self.sesoi:g} ({self.sesoi_why}); "
                f"unit: {self.unit}, 95% CI by {self.interval}; {text}{premises}")


@functools.lru_cache(maxsize=None)
def _read(path: str) -> tuple[dict, tuple]:
    data = yaml.safe_load(Path(path).read_text())
    claims = {}
    for entry in data["claims"]:
        entry = dict(entry)
        entry["premises"] = tuple(entry.get("premises") or ())
        claim = Claim(**entry)
        if claim.direction not in (-1, 0, 1) or claim.sesoi <= 0 or claim.min_units < 2:
            raise ValueError(f"{path}: claim {claim.order}: direction must be -1, 0 or 1, sesoi > 0, min_units >= 2")
        if claim.kind not in results.KINDS:
            raise ValueError(f"{path}: claim {claim.order}: kind {claim.kind!r}; expected one of {results.KINDS}")
        claims[float(claim.order)] = claim
    return claims, tuple(data.get("changes") or ())


def load(path: Path | None = None) -> dict[float, Claim]:
    """{order: Claim} from the registry (``chapters/claims.yml``)."""
    return _read(str(path or REGISTRY))[0]


def changes(path: Path | None = None) -> tuple:
    """The registry's dated change log."""
    return _read(str(path or REGISTRY))[1]


def claim(order: float) -> Claim:
    return load()[float(order)]


# ---- the rule

@dataclass(frozen=True)
class Part:
    name: str
    estimate: float
    ci_low: float
    ci_high: float
    n_units: int
    grade: str
    reason: str = ""

    def text(self, kind: str = "paper", digits: int = 4) -> str:
        """"name: estimate [low, high], n = units: grade (reason)", the grade in the words of a row of ``kind``."""
        def f(x):
            return "nan" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"
        return (f"{self.name + ': ' if self.name else ''}{f(self.estimate)} [{f(self.ci_low)}, {f(self.ci_high)}], "
                f"n = {self.n_units}: {results.worded(self.grade, kind)}" + (f" ({self.reason})" if self.reason else ""))


def _finite(*xs) -> bool:
    return all(x is not None and np.isfinite(x) for x in xs)


def grade(claim: Claim, estimate: float, ci_low: float, ci_high: float, n_units: int) -> tuple[str, str]:
    """(grade, reason) of one interval by the registry's rule (module docstring)."""
    if n_units < claim.min_units:
        return "inconclusive", f"too few units: {n_units} {claim.unit}s, the registry asks for {claim.min_units}"
    if not _finite(estimate, ci_low, ci_high):
        return "inconclusive", "no interval"
    if ci_high - ci_low <= ZERO_WIDTH * max(1.0, abs(ci_low), abs(ci_high)):  # rounding error is no width either
        return "inconclusive", "zero-width interval: not a CI"
    low, high, band = ci_low - claim.null, ci_high - claim.null, claim.sesoi
    if claim.direction == 0:
        if -band <= low and high <= band:
            return "replicated", "CI inside null +- sesoi"
        if low > band or high < -band:
            return "not replicated", "CI wholly outside null +- sesoi"
        return "inconclusive", "CI crosses a bound of null +- sesoi"
    low, high = sorted((low * claim.direction, high * claim.direction))
    if low > 0:
        return "replicated", "CI on the claimed side of the null"
    if high < 0:
        return "not replicated", "CI on the other side of the null"
    if -band <= low and high <= band:
        return "not replicated", "CI inside null +- sesoi (equivalence)"
    return "inconclusive", "CI holds an effect of interest and its absence"


def part(claim: Claim, name: str, estimate: float, ci_low: float, ci_high: float, n_units: int,
         best: tuple[float, float, float] | None = None) -> Part:
    """One graded part. ``best``: (estimate, low, high) the most favourable data could give on these units
    (e.g. every failing cell a hit); when even that would not be replicated, the test could not have shown
    the effect, and the part is inconclusive whatever its interval (never "not replicated")."""
    verdict, reason = grade(claim, estimate, ci_low, ci_high, int(n_units))
    if best is not None and verdict == "not replicated" and grade(claim, *best, int(n_units))[0] != "replicated":
        verdict, reason = "inconclusive", "the test could not have shown the effect: even the best outcome is not past the null"
    return Part(name, float(estimate), float(ci_low), float(ci_high), int(n_units), verdict, reason)


def _strength(claim: Claim, p: Part) -> float:
    """How far a part's CI lies on the claimed side (lower is weaker): the row shows the weakest part."""
    if not _finite(p.ci_low, p.ci_high):
        return -math.inf
    if claim.direction == 0:
        return -max(abs(p.ci_low - claim.null), abs(p.ci_high - claim.null))
    return min((p.ci_low - claim.null) * claim.direction, (p.ci_high - claim.null) * claim.direction)


def combine(claim: Claim, parts: list[Part]) -> tuple[str, Part | None]:
    """(the claim's grade, the part that decides it) from its parts (module docstring)."""
    if not parts:
        return "not testable", None
    grades = [p.grade for p in parts]
    decisive = min(parts, key=lambda p: _strength(claim, p))
    if all(g == "replicated" for g in grades):
        return "replicated", decisive
    if all(g == "not replicated" for g in grades):
        return "not replicated", decisive
    if "replicated" in grades:
        return "partly", decisive
    inconclusive = [p for p in parts if p.grade == "inconclusive"]
    return "inconclusive", min(inconclusive, key=lambda p: _strength(claim, p))


# ---- rows

def _rounded(x):
    return None if x is None or not np.isfinite(x) else float(f"{x:.4g}")


def row(claim: Claim, parts: list[Part], model: str, ours: str = "", details: str = "",
        caveats: list[str] | tuple[str, ...] = (), sensitivity: list[Part] | None = None,
        chapter: str | None = None) -> dict:
    """The glance row of ``claim`` from its graded ``parts`` (all units), with the structured columns.

    ``caveats``: premises that fail (one line each), printed on the row; ``sensitivity``: the same
    parts graded on the units that meet the premises (None when every unit meets them). The row's
    estimate and CI are those of the part that decides the verdict (:func:`combine`)."""
    verdict, decisive = combine(claim, parts)
    if decisive is None:
        raise ValueError(f"claim {claim.order}: no part graded; use not_testable() for what cannot be measured")
    shown = "; ".join(p.text(claim.kind) for p in parts)
    sensitivity_text = ""
    if sensitivity is not None:
        other = combine(claim, sensitivity)[0] if sensitivity else "not testable"
        word = results.worded(other, claim.kind)
        sensitivity_text = (f"on the units that meet the premises: {word}"
                            + (" (differs from all units)" if other != verdict else " (the same)")
                            + (": " + "; ".join(p.text(claim.kind) for p in sensitivity) if sensitivity else ""))
    entry = results.glance_row(
        claim.order, claim.finding, claim.statement, claim.paper,
        ours or f"{decisive.estimate:.4g}", verdict, claim.rule, chapter or claim.chapter,
        _rounded(decisive.ci_low), _rounded(decisive.ci_high), kind=claim.kind,
        details="; ".join(x for x in (shown, details) if x), model=model)
    entry.update(estimate=_rounded(decisive.estimate), null=claim.null, sesoi=claim.sesoi,
                 direction=claim.direction, n_units=decisive.n_units, unit=claim.unit,
                 parts=shown, caveats="; ".join(caveats), sensitivity=sensitivity_text)
    return entry


def not_testable(claim: Claim, reason: str, model: str, chapter: str | None = None) -> dict:
    """A row whose quantity cannot be measured at all (no CPT on a training-free model, no long model)."""
    entry = results.glance_row(claim.order, claim.finding, claim.statement, claim.paper, "-", "not testable",
                               claim.rule, chapter or claim.chapter, kind=claim.kind, details=reason, model=model)
    entry.update(estimate=None, null=claim.null, sesoi=claim.sesoi, direction=claim.direction, n_units=0,
                 unit=claim.unit, parts="", caveats="", sensitivity="")
    return entry


# ---- the premise "retrieves at L0" (2.1-2.4, 3.2, 3.25, 4.1, 9.1): a caveat, never a switch

def premise_threshold(name: str = "retrieves at L0") -> float:
    """The registry's ``at_least`` for premise ``name`` (one value: every claim that declares it shares it)."""
    values = {p["at_least"] for c in load().values() for p in c.premises if p["name"] == name and "at_least" in p}
    if len(values) != 1:
        raise ValueError(f"premise {name!r}: expected one 'at_least' in chapters/claims.yml, found {sorted(values)}")
    return float(values.pop())


def pass_rates_at(trials, labels, length: int) -> dict[str, float]:
    """label -> its pass rate over ``trials`` (columns method, length, passed) at ``length``; NaN where none ran."""
    at = trials[trials["length"] == length]
    return {m: float(at.loc[at["method"] == m, "passed"].mean()) if (at["method"] == m).any() else math.nan
            for m in labels}


def below_premise(rates: dict[str, float], length: int, name: str = "retrieves at L0") -> list[str]:
    """One caveat line per label whose rate is under the premise's threshold, or unmeasured (no trials at L0)."""
    threshold, lines = premise_threshold(name), []
    for label, rate in rates.items():
        if not np.isfinite(rate):
            lines.append(f"{name} not checked for {label}: no trials at L0 = {length}")
        elif rate < threshold:
            lines.append(f"{label} misses the premise '{name}': pass rate {rate:.3g} < {threshold:g} at L0 = "
                         f"{length} on this page's trials")
    return lines


# ---- intervals

def bootstrap_mean(values, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of per-unit ``values`` with a percentile bootstrap over units
    (``core.metrics.bootstrap_ci``, the book's one bootstrap); NaNs dropped. A paired comparison passes
    the per-unit differences. Fewer than 2 units: NaN interval."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    if n < 2:
        return (float(values.mean()) if n else math.nan), math.nan, math.nan, n
    low, high = metrics.bootstrap_ci(values, np.mean, n_boot=n_boot, seed=seed, level=level)
    return float(values.mean()), low, high, n


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float, float]:
    """(k/n, low, high): the Wilson score interval of a rate (``ropelib.core.stats.proportion_interval``)."""
    return tuple(stats.proportion_interval(k, n, level))


def newcombe_paired(both: int, first_only: int, second_only: int, neither: int,
                    level: float = LEVEL) -> tuple[float, float, float]:
    """(p1 - p2, low, high) for paired binary outcomes: Newcombe (1998), method 10.

    p1 = (both + first_only)/n, p2 = (both + second_only)/n; with Wilson limits (l_i, u_i) of each
    and phi the correlation of the 2x2 table with Newcombe's continuity correction (ad - bc reduced by n/2
    when positive; 0 when a margin is empty),
    low  = d - sqrt((p1-l1)^2 - 2 phi (p1-l1)(u2-p2) + (u2-p2)^2),
    high = d + sqrt((u1-p1)^2 - 2 phi (u1-p1)(p2-l2) + (p2-l2)^2).
    At 0 discordant pairs the interval still has width (unlike a bootstrap of the differences)."""
    a, b, c, d = (int(x) for x in (both, first_only, second_only, neither))
    n = a + b + c + d
    if n == 0:
        return math.nan, math.nan, math.nan
    p1, l1, u1 = wilson(a + b, n, level)
    p2, l2, u2 = wilson(a + c, n, level)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    # Newcombe's continuity-corrected phi: without it, a table with no discordant pair and phi = 1 gives [0, 0]
    excess = a * d - b * c
    phi = (max(excess - n / 2, 0) if excess > 0 else excess) / math.sqrt(margins) if margins else 0.0
    diff = p1 - p2
    low = diff - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    high = diff + math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return diff, max(low, -1.0), min(high, 1.0)


# ---- the registry as a table (README's verdict section is this table: tests/test_docs keeps them equal)

def markdown_table(path: Path | None = None) -> str:
    """One line per claim: number, kind, statement, claimed side of the null, sesoi (why), unit and minimum."""
    side = {1: "above", -1: "below", 0: "within +- sesoi of"}
    lines = ["| # | kind | claim | claimed | sesoi (why) | unit |", "|---|---|---|---|---|---|"]
    for order, c in load(path).items():
        lines.append(f"| {order:g} | {c.kind} | {c.statement} | {side[c.direction]} {c.null:g} | "
                     f"{c.sesoi:g} ({c.sesoi_why}) | {c.unit}, >= {c.min_units} |")
    return "\n".join(lines)
