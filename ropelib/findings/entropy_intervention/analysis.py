"""Chapter "Does lowering attention entropy fix retrieval?": paired needle trials under interventions.

For every CPT checkpoint (its training length L from its manifest) and every length, the
same needle prompts (test split) are scored three ways, paired prompt by prompt:

- ``none``: the model as it is;
- ``log_scale``: every query at position p scaled by 1 + alpha ln(max(1, (p + 1) / L))
  (``interventions.log_length_scaling``; alpha = 1 / ln L by default, SSMax's ln n / ln L);
- ``temperature``: one temperature per length, fitted on dev-split prompts so that the
  mean first-token entropy at that length equals its value at L
  (``interventions.fit_entropy_matched_temperature``; 1 at and below L).

Each trial is one teacher-forced forward pass over prompt + true value: the row of the
last prompt token gives ``entropy_first`` (before anything is generated) and ``needle_first``
(its head- and layer-mean attention peaks inside the needle), the rows of
the answer positions ``entropy_teacher``, and ``passed`` is exact match of every answer
token's argmax, which equals greedy decoding's exact match (greedy stops being right at
the first wrong digit, and so does this). Perplexity of the positions each length adds
(``tasks.perplexity``) is measured under each condition too.
Not here: the interventions (``interventions``), the estimand of claim 4.1 (``verdicts``), the one
rule (``ropelib.findings.claims``).
"""

from __future__ import annotations

import contextlib
import random

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from ropelib.core import interventions, metrics, probe
from ropelib.models import lineup
from ropelib import results
from ropelib.text.corpus import stdlib_documents
from ropelib.findings import claims
from ropelib.findings.entropy_intervention import verdicts as rules
from ropelib.findings.sweep import quiet_transformers
from ropelib.text.haystack import FORMATS, answer_ids, build_prompt
from ropelib.progress import progress
from ropelib.tasks.needle import haystack_tokens
from ropelib.tasks.perplexity import perplexity_by_length
from ropelib.models import variants as variant_specs
from ropelib.models.variants import ModelCache, Variant
from ropelib.tasks import trials as trials_lib

CONDITIONS = ("none", "log_scale", "temperature")
LABELS = {"none": "none", "log_scale": "log-length scaling", "temperature": "entropy-matched temperature"}


def needle_prompts(tokenizer, hay: list[int], length: int, depths, per_depth: int, seed: int, split: str,
                   fmt: str = "compact"):
    """``per_depth`` prompts at each depth from ``hay`` (the tokens of ``split``), seeded by
    (seed, split, length, depth): the same for every model."""
    prompts = []
    for depth in depths:
        rng = random.Random(f"{seed}-{split}-{length}-{depth}")
        for i in range(per_depth):
            start = rng.randrange(0, len(hay) - length)
            prompt = build_prompt(tokenizer, hay[start:start + length], length, depth, FORMATS[fmt].value(rng),
                                  FORMATS[fmt])
            prompts.append((f"{length}-{depth:g}-{i}", prompt))
    return prompts


@torch.no_grad()
def teacher_forced(model, tokenizer, prompts, batch_size: int = 4) -> list[dict]:
    """entropy_first, entropy_teacher (nats), needle_first and passed of each (prompt_id, prompt), one forward each.

    ``needle_first``: the key that the row predicting the first answer token attends to most (mean
    over heads and layers) lies in the needle (``needle_start`` .. ``needle_end``).
    """
    device = next(model.parameters()).device
    out = []
    sizes = {len(answer_ids(tokenizer, p.value)) for _, p in prompts}
    batch_size = batch_size if len(sizes) == 1 else 1  # a BPE may split values unevenly: run those one by one
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        values = [answer_ids(tokenizer, p.value) for _, p in chunk]
        n = len(values[0])
        ids = torch.tensor([p.input_ids + v[:-1] for (_, p), v in zip(chunk, values)], device=device)
        first_rows = []  # per layer: (batch, keys), the head-mean row predicting the first answer token

        def reduce(rows):  # rows: (batch, heads, n, keys)
            first_rows.append(rows[:, :, 0].float().mean(1).cpu())
            return metrics.entropy(rows)

        with probe.capture(model, queries=n, reduce=reduce, store_device="cpu") as rec:
            logits = model(ids, use_cache=False, logits_to_keep=n).logits  # (batch, n, vocab)
        entropy = torch.stack(rec.attention).double().mean(dim=(0, 2))  # (batch, n): mean over layers, heads
        peak = torch.stack(first_rows).mean(0).argmax(-1)  # (batch,): the most attended key
        hits = (logits.argmax(-1).cpu() == torch.tensor(values)).all(-1)
        for b, (prompt_id, prompt) in enumerate(chunk):
            out.append({"prompt_id": prompt_id, "entropy_first": float(entropy[b, 0]),
                        "entropy_teacher": float(entropy[b].mean()), "passed": bool(hits[b]),
                        "needle_first": bool(prompt.needle_start <= int(peak[b]) < prompt.needle_end)})
    return out


def _condition(model, condition: str, length: int, trained_length: int, alpha: float, taus: dict):
    if condition == "log_scale":
        return interventions.log_length_scaling(model, alpha, trained_length)
    if condition == "temperature" and length > trained_length and np.isfinite(taus.get(length, np.nan)):
        return interventions.fixed_temperature(model, taus[length])
    return contextlib.nullcontext()


# ---- the arms' strengths: a dose scan on the dev prompts

def _strength(condition: str, length: int, alpha: float, taus: dict) -> dict:
    """What a kept trial of ``condition`` depends on besides its prompts: its own arm's strength only, so
    that the pages of a split run (one arm each, with the untouched model) and the pooled page share keys."""
    return {"log_scale": {"scale": float(alpha)}, "temperature": {"tau": taus.get(length)}}.get(condition, {})


def dosed(dose: float, alpha: float, taus: dict) -> tuple[float, dict]:
    """An arm's strength times ``dose``: log-length scaling's alpha x dose; the temperature tau ** dose
    (ln tau scaled, so dose 0 is no change and dose 1 the entropy-matched tau)."""
    return alpha * dose, {length: tau ** dose for length, tau in taus.items()}


def choose_dose(scan: pd.DataFrame) -> dict[str, float]:
    """Per arm (``condition``), the dose with the most dev passes; ties go to the dose nearest 1 (the
    un-scaled arm), then the smaller. ``scan``: columns condition, dose, passed (one row per dev trial)."""
    totals = scan.groupby(["condition", "dose"], sort=False)["passed"].sum().reset_index()
    totals["distance"] = (totals["dose"] - 1.0).abs()
    best = totals.sort_values(["passed", "distance", "dose"], ascending=[False, True, True])
    return {condition: float(rows["dose"].iloc[0]) for condition, rows in best.groupby("condition", sort=False)}


def untouched(condition: str, length: int, trained_length: int) -> bool:
    """Whether ``condition`` leaves the model as it is at ``length``: the untouched model itself, or the
    temperature at or below the training length (no temperature is applied there). Such an arm's trials
    are the untouched ones, read rather than computed again. Log-length scaling is never counted here:
    at the training length the answer tokens' queries already lie past it."""
    return condition == "none" or (condition == "temperature" and length <= trained_length)


def check_conditions(conditions) -> list[str]:
    """``conditions`` in the chapter's order; a ValueError naming the parameter unless it holds the
    untouched model and at least one arm (the verdict pairs every arm's trial with the untouched one)."""
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown or "none" not in conditions or len(set(conditions)) < 2:
        raise ValueError(f"conditions={list(conditions)}: expected 'none' and at least one of "
                         f"{list(CONDITIONS[1:])}, each once")
    return [c for c in CONDITIONS if c in conditions]


def run(variants: list[Variant], factor: float, lengths: list[int], depths, per_depth: int, dev_prompts: int,
        n_documents: int, alpha: float = 0.0, seed: int = 0, device: str = "cpu",
        dtype: str = "auto", fmt: str = "compact", doses=(1.0,), conditions=CONDITIONS) -> tuple[pd.DataFrame, ...]:
    """(trials, perplexity, temperatures, scan): one row per (method, condition, length, prompt) / document /
    length / dev trial of the dose scan. ``fmt``: the needle wording (``haystack.FORMATS``), for the dev prompts
    and the test prompts alike. ``doses``: multipliers of each arm's strength (:func:`dosed`) tried on the dev
    prompts at the lengths past the training length; each arm then runs the test prompts at the dose with the
    most dev passes (:func:`choose_dose`). One dose: no scan (``scan`` empty), the arms as defined.
    ``conditions``: the ones run (:func:`check_conditions`); the temperature is fitted only when it is one of
    them (``temperatures`` is empty otherwise). A real model's trials are kept (``trials.Store``) under keys
    that do not depend on the other conditions, so the pages of a split run (one arm each, with the untouched
    model) and the page that pools them share every trial."""
    conditions = check_conditions(conditions)
    arms = [c for c in conditions if c != "none"]
    cache, trials, perplexity, temperatures, scans = ModelCache(device, dtype, max(lengths)), [], [], [], []
    for variant in variants:
        loaded = cache.get(variant, factor)
        model, tokenizer = loaded.model, loaded.tokenizer
        trained = lineup.geometry(variant.source).trained_length
        scale = alpha or 1 / np.log(trained)
        fit_lengths = sorted({trained, *[length for length in lengths if length > trained]})
        hay = {split: haystack_tokens(tokenizer, stdlib_documents(split)) for split in ("dev", "test")}
        dev_needles = {length: needle_prompts(tokenizer, hay["dev"], length, [10, 50, 90], -(-dev_prompts // 3), seed,
                                              "dev", fmt)[:dev_prompts] for length in fit_lengths}
        dev = {length: [p.input_ids for _, p in needles] for length, needles in dev_needles.items()}
        store = variant_specs.trial_store(loaded, variant, factor, dtype)  # a real model's page resumes

        def fit() -> list[dict]:
            with quiet_transformers():
                fitted = interventions.fit_entropy_matched_temperature(model, dev, trained, xtol=1e-2)
            return [{"length": length, "tau": tau} for length, tau in fitted.items()]

        taus = {}
        if "temperature" in arms:
            fitted = store.records("intervention-temperatures",
                                   {"dev": {length: [trials_lib.digest(ids) for ids in group]
                                            for length, group in dev.items()}, "trained": trained}, fit)
            taus = {int(r["length"]): float(r["tau"]) for r in fitted}
        temperatures += [{"method": variant.label, "length": length, "tau": tau} for length, tau in taus.items()]
        chosen = {condition: 1.0 for condition in conditions}
        if len(doses) > 1:
            scan = []
            for condition, dose, length in [(c, d, l) for c in arms for d in doses for l in fit_lengths if l > trained]:
                arm_alpha, arm_taus = dosed(dose, scale, taus)
                prompts = dev_needles[length]

                def dev_score() -> list[dict]:
                    with _condition(model, condition, length, trained, arm_alpha, arm_taus), quiet_transformers():
                        return teacher_forced(model, tokenizer, prompts)

                rows = store.records("intervention-dose", {"condition": condition, "dose": dose, "length": length,
                                                           **_strength(condition, length, scale, taus),
                                                           "prompts": [trials_lib.digest(p.input_ids)
                                                                       for _, p in prompts]}, dev_score)
                scan += [{"method": variant.label, "condition": condition, "dose": dose, "length": length, **r}
                         for r in rows]
            chosen.update(choose_dose(pd.DataFrame(scan)))
            scans += [{**r, "chosen": r["dose"] == chosen[r["condition"]]} for r in scan]
        kept: dict[int, tuple[list[dict], dict]] = {}  # length -> the untouched model's (trials, perplexity)
        for condition in progress(conditions, desc=f"interventions {variant.label}"):
            arm_alpha, arm_taus = dosed(chosen[condition], scale, taus)
            for length in lengths:
                prompts = needle_prompts(tokenizer, hay["test"], length, depths, per_depth, seed, "test", fmt)

                def score() -> list[dict]:
                    with _condition(model, condition, length, trained, arm_alpha, arm_taus), quiet_transformers():
                        rows = teacher_forced(model, tokenizer, [(i, p) for i, p in prompts])
                        ppl = perplexity_by_length(model, tokenizer, [length], n_documents, progress=False)
                    return [*rows, {"ppl_new": float(np.exp(ppl["loss_new"].mean()))}]

                if untouched(condition, length, trained) and length in kept:
                    rows, ppl = kept[length]
                else:
                    setting = {"condition": condition, "length": length,
                               **_strength(condition, length, arm_alpha, arm_taus)}
                    *rows, ppl = store.records("intervention-trials", {**setting, "documents": n_documents, "prompts": [
                        trials_lib.digest(p.input_ids) for _, p in prompts]}, score)
                    if condition == "none":
                        kept[length] = rows, ppl
                trials += [{"method": variant.label, "condition": condition, "length": length, **r} for r in rows]
                perplexity.append({"method": variant.label, "condition": condition, "length": length, **ppl})
    return pd.DataFrame(trials), pd.DataFrame(perplexity), pd.DataFrame(temperatures), pd.DataFrame(scans)


def by_length(trials: pd.DataFrame, perplexity: pd.DataFrame) -> pd.DataFrame:
    """Per (method, condition, length): pass rate, mean first-token and teacher-forced entropy, ppl of new positions."""
    table = (trials.groupby(["method", "condition", "length"], sort=False)
             .agg(pass_rate=("passed", "mean"), entropy_first=("entropy_first", "mean"),
                  entropy_teacher=("entropy_teacher", "mean"), trials=("passed", "size")).reset_index())
    return table.merge(perplexity, on=["method", "condition", "length"])


def plot(summary: pd.DataFrame, cpt_length: int):
    """Pass rate (top) and first-token entropy (bottom) against length, one column per model,
    one line per condition; the CPT length marked."""
    methods = list(dict.fromkeys(summary["method"]))
    sns.set_theme(style="whitegrid", context="notebook")
    figure, axes = plt.subplots(2, len(methods), figsize=(3.2 * len(methods), 6.2), sharex=True, sharey="row",
                                squeeze=False, constrained_layout=True)
    palette = dict(zip(CONDITIONS, sns.color_palette(n_colors=len(CONDITIONS))))
    for column, method in enumerate(methods):
        part = summary[summary["method"] == method]
        for row, (value, label) in enumerate((("pass_rate", "needle pass rate"),
                                              ("entropy_first", "first-token entropy (nats)"))):
            ax = axes[row, column]
            for condition, group in part.groupby("condition", sort=False):
                ax.plot(group["length"], group[value], marker="o", color=palette[condition], label=LABELS[condition])
            ax.axvline(cpt_length, color="grey", linestyle=":", linewidth=1)
            ax.set_xscale("log", base=2)
            ax.set(xlabel="context length (tokens)" if row else "", ylabel=label if column == 0 else "",
                   title=method if row == 0 else "")
    axes[0, 0].legend(fontsize=8, loc="lower left")
    figure.suptitle(f"Lowering attention entropy beyond the CPT length ({cpt_length}, dotted): does retrieval return?")
    return figure


# ---- the glance row (4.1) and what is reported beside it

def _arm_numbers(row) -> str:
    return (f"entropy {row['entropy_change']:+.3f} nats, pass rate {row['pass_change']:+.3f} "
            f"[{row['pass_change_low']:+.3f}, {row['pass_change_high']:+.3f}]")


def _needle_first(part: pd.DataFrame) -> str:
    if part["rescued_needle_first"].isna().any():
        return "needle rank before the intervention not recorded"
    return (f"needle ranked first before the intervention in {int(part['failing_needle_first'].sum())} of "
            f"{int(part['failing_before'].sum())} failing and {int(part['rescued_needle_first'].sum())} of "
            f"{int(part['rescued'].sum())} rescued")


def arm_rows(per_model: pd.DataFrame) -> list[dict]:
    """Per arm, for the page's prose (shown, not a glance row): verdict = the registry's rule combined
    over that arm's (model) parts, ours = entropy and pass-rate change per model, details = rescued /
    broken and the needle ranks before the intervention."""
    claim = claims.claim(rules.ORDER)
    rows = []
    for condition, part in per_model.groupby("condition", sort=False):
        grade = claims.combine(claim, rules.parts(part, claim))[0]
        per = "; ".join(f"{r['model']}: {r['rescued']} rescued, {r['broken']} broken of {r['failing_before']} "
                        f"failing" for _, r in part.iterrows())
        rows.append({"condition": condition, "verdict": results.worded(grade, claim.kind),
                     "ours": f"{LABELS[condition]}: " + "; ".join(f"{r['model']} {_arm_numbers(r)}"
                                                                  for _, r in part.iterrows()),
                     "details": f"{per}; {_needle_first(part)}"})
    return rows


def arm_prose(per_model: pd.DataFrame) -> list[dict]:
    """:func:`arm_rows` for the page's "What this shows" paragraph: one row per arm of the chapter, in
    ``CONDITIONS``' order, "not run on this page" for an arm the page's ``conditions`` leave out."""
    rows = {row["condition"]: row for row in arm_rows(per_model)}
    absent = {"verdict": "not run on this page", "details": "the page's conditions leave this arm out"}
    return [rows.get(c, {"condition": c, "ours": f"{LABELS[c]}: no trials", **absent}) for c in CONDITIONS[1:]]


def dose_response(per_model: pd.DataFrame) -> str:
    """Entropy drop against pass-rate change, per model: does the arm that lowers entropy more rescue more?"""
    lines = []
    for model, part in per_model.groupby("model", sort=False):
        part = part.sort_values("entropy_change")
        lines.append(f"{model}: " + ", ".join(f"{LABELS[r['condition']]} {r['entropy_change']:+.2f} nats -> "
                                               f"{r['pass_change']:+.3f}" for _, r in part.iterrows()))
    return "; ".join(lines)


def beside(trials: pd.DataFrame, per_model: pd.DataFrame, cpt_length: int) -> str:
    """What the row reports beside its verdict: per arm rescues, breaks and needle ranks; the rescues
    the arms share; the dose-response."""
    if per_model.empty:
        return ""
    both, per_arm = rules.shared_rescues(trials, cpt_length)
    arms = " | ".join(f"{a['ours']} ({a['details']})" for a in arm_rows(per_model))
    return (arms + f" | rescued by both arms: {both} of " + ", ".join(f"{LABELS[c]} {n}" for c, n in per_arm.items())
            + f" | dose-response: {dose_response(per_model)}")


def glance_rows(trials: pd.DataFrame, cpt_length: int, pretrained_length: int, chapter: str,
                caveats=(), model: str = results.ORGANISM) -> list[dict]:
    """The "beyond the paper" row 4.1 (``rules.row``: one part per model and arm, graded by the
    registry's rule), with rescues, shared rescues and dose-response in its details. ``caveats``: the
    page's own lines (checkpoint gate misses), carried onto the row."""
    per_model = rules.by_model(trials, cpt_length) if len(trials) else pd.DataFrame()
    ours = ("" if per_model.empty else
            "per model and arm, pass-rate change: " + ", ".join(f"{rules.part_name(r)} {r['pass_change']:+.3f}"
                                                               for _, r in per_model.iterrows()))
    return [rules.row(trials, cpt_length, pretrained_length, model or results.ORGANISM,
                      details=beside(trials, per_model, cpt_length), ours=ours, caveats=caveats, chapter=chapter)]
