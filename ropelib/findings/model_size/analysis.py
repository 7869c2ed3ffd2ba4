"""Appendix "Model size" (the paper's Figs. 5, 7 and App. A/B): does PI help a larger model more?

The paper runs its needle grids on MiniMA-2-3B and LLaMA-2-13B as well as LLaMA-2-7B and
reads "PI helps the 13B more than the 3B" off the figures. Here each size has a pair of
variants, plain RoPE on the base checkpoint and PI on its PI continual pretraining, and
PI's gain over RoPE beyond L0 is measured per size, on the same prompts and documents:

  size_pairs       the chapter's variant lists (or ``model``: one size) -> variants, {size: (RoPE, PI)}
  geometry         L0 (shared by every size's base) and the PI CPT length, from the checkpoints
  grid_lengths, marks   the grid (default RATIOS x L0) and the figures' vertical lines
  checkpoint_facts per size, from the manifests: parameters, training tokens, gates
  tokens_line      whether the sizes were trained on the same tokens, computed
  size_table       per size: parameters, pass rates of RoPE and PI at and beyond L0
  needle_gain      per prompt (length > L0, depth, needle): passed(PI) - passed(RoPE)
  ppl_gain         per document: mean over lengths > L0 of loss(RoPE) - loss(PI), the loss saved (nats/token)
  gains(...)       both gains per size: mean over prompts / documents, bootstrap 95% CI
  size_trend(...)  the registry's estimands, gain(largest) - gain(smallest) paired over prompts / documents
  missing_sizes    why the size claims cannot be measured at all: fewer than two sizes
  glance_rows      one row per claim (registry 9.1, 9.2), graded by ``findings.claims``; verdict_lines

The two claims (``chapters/claims.yml``), graded by the one rule (``claims.row``), direction +1:

  9.1  needles (the paper's): mean over prompts beyond L0 of [passed(PI_L) - passed(RoPE_L)] -
       [passed(PI_S) - passed(RoPE_S)], L the largest size and S the smallest; percentile bootstrap
       over prompts (``claims.bootstrap_mean``), n = prompts. Premise (a caveat, not a switch):
       "retrieves at L0", pass rate >= 0.8 at L0 on this page's trials for every size's RoPE and PI
       model; a model below it is a caveat line, and the sensitivity line is the same estimand
       between the largest and the smallest size whose two models meet it (no units when fewer
       than two sizes do).
  9.2  loss saved (beyond the paper): mean over documents of the per-document loss saved (mean
       over lengths > L0) at L minus at S; bootstrap over documents, n = documents.

Whether the per-size gains rise monotonically is shown in the details, not graded.

Not here: the grading rule (``findings.claims``), running the models (``findings.sweep``), plots.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ropelib.models import lineup, organism, variants
from ropelib import results
from ropelib.findings import claims
from ropelib.findings import sweep
from ropelib.tasks.common import check_lengths

CHAPTER = "model-size"
RATIOS = (1, 2, 4, 8)  # default grid: these multiples of L0 (the organism: 256 ... 2048)


def size_pairs(rope_variants: list[str], pi_variants: list[str], sizes: list[str], model: str = "") -> tuple[list, dict]:
    """Parse the chapter's three parallel lists (smallest size first) before any model is loaded.

    ``model`` set replaces them: one size, plain RoPE and training-free PI on that checkpoint.
    Returns (every Variant, RoPE of each size then PI of each size; {size: (RoPE label, PI label)}).
    """
    if model:
        rope_variants, pi_variants, sizes = [f"rope:{model}"], [f"pi:{model}"], [model.rstrip("/").split("/")[-1]]
    if not len(rope_variants) == len(pi_variants) == len(sizes) >= 1:
        raise ValueError(f"rope_variants, pi_variants and sizes must have the same length >= 1, got "
                         f"{len(rope_variants)}, {len(pi_variants)}, {len(sizes)}")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"sizes has duplicates: {sizes}")
    rope = variants.parse(rope_variants, "rope_variants")
    pi = variants.parse(pi_variants, "pi_variants")
    return rope + pi, {size: (r.label, p.label) for size, r, p in zip(sizes, rope, pi)}


def geometry(all_variants: list) -> tuple[int, int]:
    """(L0, PI CPT length or 0): L0 from each size's base (they must agree), the CPT length from the PI
    checkpoints (``lineup.resolve``: their longest training length above L0; 0 when training-free)."""
    rope = all_variants[:len(all_variants) // 2]
    found = {v.label: lineup.geometry(v.source).pretrained_length for v in rope}
    if len(set(found.values())) > 1:
        raise ValueError(f"the sizes' base models have different pretraining lengths {found}; compare sizes of one "
                         "family, pretrained at the same length")
    line = lineup.resolve(variants=[f"{v.method}:{v.source}" for v in all_variants[len(rope):]],
                          reference=f"rope:{rope[0].source}")
    return line.pretrained_length, line.cpt_length


def grid_lengths(lengths: list[int], pretrained_length: int) -> list[int]:
    """The grid's lengths, sorted: as given (at least one beyond L0), or ``RATIOS`` x L0 when empty."""
    lengths = check_lengths(sorted(lengths) or [r * pretrained_length for r in RATIOS])
    if not any(length > pretrained_length for length in lengths):
        raise ValueError(f"lengths={lengths}: at least one must exceed L0={pretrained_length}")
    return lengths


def marks(pretrained_length: int, cpt_length: int) -> dict[str, int]:
    """Vertical lines for the figures: L0, and the PI CPT length when there is one."""
    return {f"L0 = {pretrained_length}": pretrained_length} | ({f"PI CPT = {cpt_length}": cpt_length} if cpt_length else {})


def _parameters(manifest: dict):
    if not manifest:
        return ""  # a Hugging Face checkpoint: counted once loaded (size_table)
    return organism.parameter_count(organism.build(organism.OrganismConfig(**manifest["organism"])))


def checkpoint_facts(all_variants: list, sizes: list[str]) -> pd.DataFrame:
    """Per size, from the manifests: parameters, training tokens of the base (``tokens_seen``) and of its
    PI CPT, each checkpoint's gate. Blank for checkpoints without a manifest (Hugging Face)."""
    half = len(all_variants) // 2
    rows = []
    for size, rope, pi in zip(sizes, all_variants[:half], all_variants[half:]):
        base, cpt = sweep.manifest_of(rope.source), sweep.manifest_of(pi.source)
        rows.append({"size": size, "base": rope.source, "parameters": _parameters(base),
                     "base tokens": base.get("tokens_seen", ""), "PI checkpoint": pi.source,
                     "PI": "training-free (on the base)" if pi.source == rope.source else "continual pretraining",
                     "PI CPT tokens": cpt.get("tokens_seen", "") if pi.source != rope.source else "",
                     "base gate": sweep.gate_status(rope.source)[1],
                     "PI gate": sweep.gate_status(pi.source)[1]})
    return pd.DataFrame(rows).set_index("size")


def tokens_line(facts: pd.DataFrame) -> str:
    """Training tokens per size, and whether they are equal across sizes (computed from the facts table)."""
    parts = []
    for column, what in (("base tokens", "base models"), ("PI CPT tokens", "PI CPTs")):
        known = {size: t for size, t in facts[column].items() if t != ""}
        if not known:
            parts.append(f"{what}: none recorded (Hugging Face checkpoints, or training-free PI)")
        elif len(set(known.values())) == 1:
            parts.append(f"{what}: {next(iter(known.values())):,} tokens each, equal across {len(known)} sizes")
        else:
            parts.append(f"{what}: NOT equal ({', '.join(f'{s} {t:,}' for s, t in known.items())})")
    return "training tokens: " + "; ".join(parts)


def missing_sizes(pairs: dict) -> str:
    """"" when the size claims can be measured, else why not: fewer than two sizes in the line-up."""
    return "" if len(pairs) >= 2 else f"only one size ({', '.join(pairs)}): nothing to compare across sizes"


def size_table(trials: pd.DataFrame, parameters: dict, pairs: dict[str, tuple[str, str]], pretrained_length: int) -> pd.DataFrame:
    """Per size: parameter count, and the pass rate of RoPE and PI at L0 and beyond it (all depths pooled)."""
    rows = []
    for size, (rope, pi) in pairs.items():
        row = {"size": size, "parameters": parameters[rope]}
        for name, method in (("RoPE", rope), ("PI", pi)):
            mine = trials[trials["method"] == method]
            at = mine[mine["length"] == pretrained_length]["passed"]
            beyond = mine[mine["length"] > pretrained_length]["passed"]
            row[f"{name} pass at L0"] = float(at.mean()) if len(at) else float("nan")
            row[f"{name} pass beyond L0"] = float(beyond.mean()) if len(beyond) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index("size")


def needle_gain(trials: pd.DataFrame, rope: str, pi: str, beyond: int) -> pd.Series:
    """Per prompt (length > beyond, depth, needle), answered by both: passed(PI) - passed(RoPE), in {-1, 0, 1}."""
    answered = trials[trials["method"].isin([rope, pi])].astype({"passed": float})
    table = sweep.prompt_table(answered, "passed")
    table = table[table.index.get_level_values("length") > beyond]
    return table[pi] - table[rope]


def ppl_gain(ppl: pd.DataFrame, rope: str, pi: str, beyond: int) -> pd.Series:
    """Per document: the mean over lengths > beyond of loss(RoPE) - loss(PI) = ln ppl(RoPE) - ln ppl(PI),
    nats/token (the loss PI saves); indexed by document."""
    rows = ppl[ppl["length"] > beyond].set_index(["length", "document"])
    saved = (rows[rows["method"] == rope]["loss"] - rows[rows["method"] == pi]["loss"]).dropna()
    return saved.groupby(level="document").mean()


# metric -> (the per-unit gain, its unit, the sweep table it reads)
METRICS = {"needle pass rate": (needle_gain, "prompts", "trials"),
           "loss saved (nats/token)": (ppl_gain, "documents", "perplexity")}


def _gain(trials: pd.DataFrame, ppl: pd.DataFrame, metric: str, pair: tuple[str, str], beyond: int) -> pd.Series:
    gain, _, table = METRICS[metric]
    return gain(trials if table == "trials" else ppl, *pair, beyond)


def gains(trials: pd.DataFrame, ppl: pd.DataFrame, pairs: dict[str, tuple[str, str]], beyond: int,
          seed: int = 0) -> pd.DataFrame:
    """One row per (size, metric): PI's mean gain over RoPE beyond ``beyond``, bootstrap 95% CI over units.

    ``pairs``: size label -> (RoPE method label, PI method label), smallest size first.
    """
    rows = []
    for size, pair in pairs.items():
        for metric, (_, unit, _) in METRICS.items():
            mean, low, high, n = claims.bootstrap_mean(_gain(trials, ppl, metric, pair, beyond), seed=seed)
            rows.append({"size": size, "metric": metric, "gain": mean, "ci_low": low, "ci_high": high, "n": n,
                         "unit": unit})
    return pd.DataFrame(rows)


def difference(trials: pd.DataFrame, ppl: pd.DataFrame, metric: str, smallest: tuple[str, str],
               largest: tuple[str, str], beyond: int, seed: int = 0) -> tuple[float, float, float, int]:
    """(mean, low, high, n): gain(largest) - gain(smallest) per unit (prompt / document) of ``metric``,
    paired, with a percentile bootstrap over the units both sizes have."""
    values = (_gain(trials, ppl, metric, largest, beyond) - _gain(trials, ppl, metric, smallest, beyond)).dropna()
    return claims.bootstrap_mean(values, seed=seed)


def size_trend(trials: pd.DataFrame, ppl: pd.DataFrame, pairs: dict[str, tuple[str, str]], beyond: int,
               seed: int = 0) -> pd.DataFrame:
    """Per metric: the registry's estimand, gain(largest) - gain(smallest) with its CI and n (units), and
    whether the per-size gains are non-decreasing in size (shown, not graded). Empty with one size."""
    columns = ["metric", "smallest", "largest", "difference", "ci_low", "ci_high", "n", "unit", "monotone"]
    sizes = list(pairs)
    if len(sizes) < 2:
        return pd.DataFrame(columns=columns)
    table = gains(trials, ppl, pairs, beyond, seed)
    rows = []
    for metric, (_, unit, _) in METRICS.items():
        mean, low, high, n = difference(trials, ppl, metric, pairs[sizes[0]], pairs[sizes[-1]], beyond, seed)
        per_size = table[table["metric"] == metric]["gain"].to_numpy(float)
        rows.append(dict(zip(columns, (metric, sizes[0], sizes[-1], mean, low, high, n, unit,
                                       bool(np.all(np.diff(per_size) >= 0))))))
    return pd.DataFrame(rows, columns=columns)


# ---- the premise "retrieves at L0" (9.1): a caveat, not a switch

def retrieval_at(trials: pd.DataFrame, pairs: dict[str, tuple[str, str]], length: int) -> dict[str, float]:
    """Every size's RoPE and PI label -> its pass rate over this page's trials at ``length`` (NaN: none ran)."""
    return claims.pass_rates_at(trials, [m for pair in pairs.values() for m in pair], length)


premise = claims.below_premise  # one caveat line per model under the registry's threshold


# ---- glance rows

# metric -> its registry order
CLAIMS = {"needle pass rate": 9.1, "loss saved (nats/token)": 9.2}


def _part(claim: claims.Claim, metric: str, smallest: str, largest: str, estimate) -> claims.Part:
    return claims.part(claim, f"{metric}, PI - RoPE beyond L0, {largest} - {smallest}", *estimate)


def _sensitivity(claim, trials, ppl, pairs, rates, beyond, seed) -> list[claims.Part]:
    """9.1 on the sizes whose RoPE and PI models both meet the premise: largest minus smallest of those."""
    meeting = [s for s, pair in pairs.items() if all(np.isfinite(rates[m]) and rates[m] >= claims.premise_threshold()
                                                        for m in pair)]
    if len(meeting) < 2:
        return []
    estimate = difference(trials, ppl, "needle pass rate", pairs[meeting[0]], pairs[meeting[-1]], beyond, seed)
    return [_part(claim, "needle pass rate", meeting[0], meeting[-1], estimate)]


def glance_rows(trials: pd.DataFrame, ppl: pd.DataFrame, pairs: dict[str, tuple[str, str]], pretrained_length: int,
                model: str = results.ORGANISM, seed: int = 0) -> list[dict]:
    """One row per claim (:data:`CLAIMS`: 9.1 needles, the paper's; 9.2 loss saved, beyond it), per-size gains
    and monotonicity in ``details``; "not testable" only with fewer than two sizes."""
    model = model or results.ORGANISM
    why = missing_sizes(pairs)
    if why:
        return [claims.not_testable(claims.claim(order), why, model, chapter=CHAPTER) for order in CLAIMS.values()]
    table = gains(trials, ppl, pairs, pretrained_length, seed)
    trend = size_trend(trials, ppl, pairs, pretrained_length, seed).set_index("metric")
    rates = retrieval_at(trials, pairs, pretrained_length)
    rows = []
    for metric, order in CLAIMS.items():
        claim, t = claims.claim(order), trend.loc[metric]
        part = _part(claim, metric, t["smallest"], t["largest"], (t["difference"], t["ci_low"], t["ci_high"], t["n"]))
        per_size = table[table["metric"] == metric]
        details = (f"PI - RoPE beyond L0 per size ({t['unit']}): " + ", ".join(
            f"{r['size']} {r['gain']:+.3g} [{r['ci_low']:.3g}, {r['ci_high']:.3g}]" for _, r in per_size.iterrows())
            + f"; {'monotone' if t['monotone'] else 'not monotone'} in size (shown, not graded)")
        caveats, sensitivity = [], None
        if metric == "needle pass rate":
            caveats = premise(rates, pretrained_length)
            details += f"; pass rate at L0 = {pretrained_length}: " + ", ".join(
                f"{m} {r:.3g}" for m, r in rates.items())
            if caveats:
                sensitivity = _sensitivity(claim, trials, ppl, pairs, rates, pretrained_length, seed)
        rows.append(claims.row(claim, [part], model, ours=f"{t['difference']:+.3g} gain ({t['largest']} - "
                               f"{t['smallest']})", details=details, caveats=caveats, sensitivity=sensitivity,
                               chapter=CHAPTER))
    return rows


def verdict_lines(rows: list[dict]) -> list[str]:
    """Each claim: verdict, ours with its CI, parts and details, caveats and the sensitivity line (the page's)."""
    lines = []
    for r in rows:
        ci = f", 95% CI [{r['ci_low']:.3g}, {r['ci_high']:.3g}]" if r["ci_low"] is not None else ""
        extra = "".join(f"\n  {name}: {r[name]}" for name in ("caveats", "sensitivity") if r.get(name))
        lines.append(f"{r['order']} {r['claim']}: {r['verdict'].upper()}\n  ours: {r['ours']}{ci}\n"
                     f"  {r['details']}{extra}")
    return lines
