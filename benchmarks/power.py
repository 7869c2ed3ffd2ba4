"""Benchmark: how many units each claim's decision needs, against how many each page ran, and what they cost.

Reads the glance rows (``data/results/glance-*.csv``: their structured columns, never prose), the
claims registry (``chapters/claims.yml``) and the pages' recorded times (``book/timings.json``), and
writes ``benchmarks/results/power.json``. Per claim and model with a graded row:

    se    = (ci_high - ci_low) / (2 z_0.975)            the row's standard error, from its 95% CI
    sigma = se * sqrt(n_units)                           the spread of one unit
    n_effect = ((z_0.975 + z_0.80) sigma / sesoi)^2      units for 80% power to put the CI past the null
                                                         when the true effect is the sesoi
    n_absence = ((z_0.975 + z_0.90) sigma / sesoi)^2     units for an 80% chance that the CI lies inside
                                                         null +- sesoi when there is no effect
    n_needed = max(n_effect, n_absence, min_units)       enough to decide either way

(normal approximations; a rate's paired interval and an AUROC's are close to normal at these sizes).
A row whose interval is missing or of zero width gives no sigma: its need is unknown, and said so.
The cost of the units still missing is the page's recorded seconds per unit times the missing units
(a page's time covers all of its claims, so this overstates a claim's own share). "inconclusive"
with n_units >= n_needed means the effect is small, not that we did not look.

  python benchmarks/power.py                  # every model's rows
  python benchmarks/power.py --model smollm2  # one model's

Not here: running any page (``ropebook run``), the rule (``ropelib.findings.claims``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd
import scipy.stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ropelib import results  # noqa: E402
from ropelib.findings import claims  # noqa: E402
from ropelib.publish import plan  # noqa: E402

Z = scipy.stats.norm.ppf
Z_CI, Z_POWER, Z_ABSENCE = Z(0.975), Z(0.80), Z(0.90)  # two-sided 95% CI; 80% power; 80% two-sided coverage


def needed(row, claim: claims.Claim) -> dict:
    """sigma and the units the claim's decision needs, from one glance row's interval and units."""
    low, high, n = (pd.to_numeric(pd.Series([row.get(c)]), errors="coerce").iloc[0]
                    for c in ("ci_low", "ci_high", "n_units"))
    if not (math.isfinite(low) and math.isfinite(high) and math.isfinite(n)) or high <= low or n < 2:
        return {"sigma": None, "n_effect": None, "n_absence": None, "n_needed": None,
                "why": "no interval of non-zero width: the spread of a unit is unknown"}
    sigma = (high - low) / (2 * Z_CI) * math.sqrt(n)
    n_effect = math.ceil(((Z_CI + Z_POWER) * sigma / claim.sesoi) ** 2)
    n_absence = math.ceil(((Z_CI + Z_ABSENCE) * sigma / claim.sesoi) ** 2)
    return {"sigma": round(sigma, 4), "n_effect": n_effect, "n_absence": n_absence,
            "n_needed": max(n_effect, n_absence, claim.min_units), "why": ""}


def seconds_per_unit(row, runs, timings: dict) -> float | None:
    """The cost of the page that wrote ``row``, per unit of the row: its recorded seconds, or, where it read
    kept trials back, its seconds from an empty cache (None when those trials have no recorded time)."""
    run = plan.chapter_page(str(row["chapter"]), runs, str(row["model"]))
    record = timings.get(f"book/{run.output}") if run is not None else None
    n = pd.to_numeric(pd.Series([row.get("n_units")]), errors="coerce").iloc[0]
    if not record or not math.isfinite(n) or n <= 0:
        return None
    seconds = record.get("seconds_from_empty_cache") if "trials" in record else record["seconds"]
    return None if seconds is None else seconds / n


def table(rows: pd.DataFrame, runs, timings: dict) -> list[dict]:
    registry = claims.load()
    out = []
    for _, row in rows.iterrows():
        claim = registry.get(float(row["order"]))
        if claim is None or row["verdict"] == "not testable":
            continue
        need = needed(row, claim)
        n = int(pd.to_numeric(pd.Series([row.get("n_units")]), errors="coerce").fillna(0).iloc[0])
        per_unit = seconds_per_unit(row, runs, timings)
        missing = max((need["n_needed"] or 0) - n, 0)
        out.append({"order": float(row["order"]), "model": row["model"], "verdict": row["verdict"],
                    "unit": claim.unit, "sesoi": claim.sesoi, "n_units": n, **need,
                    "enough": None if need["n_needed"] is None else n >= need["n_needed"],
                    "seconds_per_unit": None if per_unit is None else round(per_unit, 1),
                    "seconds_for_missing": None if per_unit is None or need["n_needed"] is None
                    else round(per_unit * missing)})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="only this model's rows (organism, or a real model's name)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "power.json"))
    args = parser.parse_args(argv)
    rows = results.read_glance()
    rows["model"] = rows["model"].fillna(results.ORGANISM)
    if args.model:
        rows = rows[rows["model"] == args.model]
    timings = json.loads((ROOT / "book" / "timings.json").read_text())
    lines = table(rows, plan.load(), timings)
    result = {"benchmark": "units each claim's decision needs (80% power at the sesoi; 80% chance of the CI "
                           "inside null +- sesoi without an effect) against the units run",
              "source": "data/results/glance-*.csv, chapters/claims.yml, book/timings.json", "claims": lines}
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'#':<5} {'model':<9} {'verdict':<17} {'unit':<13} {'run':>5} {'needed':>7} {'enough':>7} "
          f"{'s/unit':>7} {'s for the rest':>15}")
    for line in lines:
        print(f"{line['order']:<5g} {line['model']:<9} {line['verdict']:<17} {line['unit']:<13} {line['n_units']:>5} "
              f"{line['n_needed'] if line['n_needed'] is not None else '?':>7} "
              f"{'-' if line['enough'] is None else 'yes' if line['enough'] else 'no':>7} "
              f"{line['seconds_per_unit'] if line['seconds_per_unit'] is not None else '-':>7} "
              f"{line['seconds_for_missing'] if line['seconds_for_missing'] is not None else '-':>15}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
