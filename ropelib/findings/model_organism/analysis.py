"""Chapter 0's measurements on the checkpoints and its three checks.

Runs the two benchmark tasks (``tasks.perplexity``, ``tasks.needle``, both on the test
split) on organism checkpoints and states each check as a rule with computed lines:

  sanity_table(names, ...)      test loss / perplexity and greedy needle accuracy at L0, beside the
                                manifest's end-of-training numbers (dev split)
  beyond_table(names, ...)      the same at L0, 2 L0, 4 L0 (does plain RoPE fail past L0?)
  position_profile(names, ...)  loss by token position at a long length: where a failure starts
  plot_position_profile(...)    that profile, one line per checkpoint
  slow_pair_ablation(name, ...) loss with the pairs longer than L0 frozen: does the model use them?
  gate_verdict(gates)           check 1: base passed its retrieval gate (``model_organism.report.gate_table``)
  loss_verdict, beyond_verdict  checks 2 and 3; below_gate_line, profile_lines: computed descriptions

Loss units: nats per byte (the organism's tokens are bytes). Not here: the chapter's
descriptive tables, gates and training curves (``model_organism.report``).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ropelib.progress import progress as progress_bar
from ropelib.core import extensions
from ropelib.models import load as models, manifest as manifests, organism
from ropelib.findings.sweep import quiet_transformers
from ropelib.findings.model_organism.report import tokens_before
from ropelib.prose import significant
from ropelib.core.stats import proportion_interval
from ropelib.tasks.needle import needle_grid
from ropelib.tasks.perplexity import long_documents, perplexity_by_length, sequence_losses

L0 = organism.L0
GATE = manifests.RETRIEVAL_GATE
# a loss "far below" the unigram baseline: at most this fraction of it
FAR_BELOW = 0.5
# plain RoPE "visibly fails" at 4 L0: perplexity of the positions each length adds (``ppl new``, the
# metric of the perplexity chapter: ``tasks.perplexity`` loss_new on the grid L0/2, L0, 2 L0, 4 L0) at
# least this many times its L0 value ...
PPL_RATIO_FAIL = 2.0
# ... and needle accuracy at most this fraction of its L0 value
NEEDLE_RATIO_FAIL = 0.5
PROFILE_BIN = 32  # positions per point of the loss-by-position figure
PPL = "ppl new"  # the perplexity chapter's metric, the one every chapter reads


# ---------------------------------------------------------------- running the tasks

def wilson(successes: int, trials: int) -> tuple[float, float]:
    """95% Wilson interval of a pass rate (``ropelib.core.stats.proportion_interval``)."""
    estimate = proportion_interval(successes, trials)
    return estimate.low, estimate.high


def _loss_past(loaded, length: int, n_documents: int, start: int = L0) -> float:
    """Mean loss on the tokens at positions >= ``start`` only: those a model trained at ``start`` never predicted.

    Same documents as ``tasks.perplexity`` at this length; losses[i] predicts token i + 1.
    """
    return _mean_loss(loaded.model, long_documents(loaded.tokenizer, length + 1, n_documents), length, start)


def _mean_loss(model, docs, length: int, start: int = 1) -> float:
    """Mean over documents of the mean loss on positions >= ``start`` of their first ``length`` tokens."""
    return float(np.mean([float(sequence_losses(model, ids[:length])[start - 1:].mean()) for _, ids in docs]))


def _measure(loaded, lengths, depths, n_needles: int, n_documents: int, seed: int) -> list[dict]:
    """Mean test loss, perplexity exp(mean loss), perplexity of the positions each length adds
    (``ppl new``: exp of the mean ``loss_new`` of ``tasks.perplexity`` on a grid that starts at L0 / 2,
    the perplexity chapter's metric), loss past L0, and greedy needle accuracy per length."""
    grid = sorted({L0 // 2, *lengths})
    with quiet_transformers():
        ppl = perplexity_by_length(loaded.model, loaded.tokenizer, grid, n_documents=n_documents, progress=False)
        needles = needle_grid(loaded.model, loaded.tokenizer, lengths, depths=depths, needles_per_cell=n_needles,
                              seed=seed, progress=False)
    rows = []
    for length in lengths:
        loss = float(ppl.loc[ppl["length"] == length, "loss"].mean())
        past = _loss_past(loaded, max(lengths), n_documents) if length == max(lengths) > L0 else math.nan
        passed = needles.loc[needles["length"] == length, "passed"]
        low, high = wilson(passed.sum(), len(passed))
        loss_new = float(ppl.loc[ppl["length"] == length, "loss_new"].mean())
        rows.append({"length": length, "loss": loss, "ppl": math.exp(loss), "ppl new": math.exp(loss_new),
                     "loss past L0": past,
                     "needle accuracy": float(passed.mean()), "ci low": low, "ci high": high, "needles": len(passed),
                     "entropy": float(needles.loc[needles["length"] == length, "entropy"].mean())})
    return rows


def _rope_text(rope: dict) -> str:
    return rope["method"] + ("" if rope["factor"] == 1 else f" x{rope['factor']:g}")


def sanity_table(names, depths, n_needles: int, n_documents: int, seed: int, device: str = "cpu") -> pd.DataFrame:
    """Every checkpoint, as trained (its own RoPE method), at L0: test loss, perplexity, needle accuracy.

    The "end of training" columns are the manifest's (dev split, at L0): ``final.dev_loss_at_L0``
    (``training.dev_loss``, random dev chunks) and the gate's rate at L0 (``recipes.gate``:
    ``recipes.GATE_NEEDLES`` dev needles in the evaluation's format, on its depth grid).
    """
    rows = []
    for name in progress_bar(names, desc="checkpoints at L0"):
        loaded = models.load(name, device=device)
        manifest = loaded.manifest
        [measured] = _measure(loaded, [L0], depths, n_needles, n_documents, seed)
        rows.append({
            "checkpoint": name, "parameters": organism.parameter_count(loaded.model),
            "RoPE": _rope_text(manifest["rope"]), "trained at": manifest["recipe"]["stages"][-1]["length"],
            "tokens (M)": round((manifest["tokens_seen"] + tokens_before(name)) / 1e6, 2),
            "test loss": measured["loss"], "ppl": measured["ppl"],
            "dev loss (end of training)": manifest["final"]["dev_loss_at_L0"],
            "needle accuracy": measured["needle accuracy"], "ci low": measured["ci low"],
            "ci high": measured["ci high"], "gate rate at L0 (dev)": (manifest.get("gate") or [{}])[0].get("rate", math.nan),
        })
    return _rounded(pd.DataFrame(rows).set_index("checkpoint"))


def beyond_table(names, depths, n_needles: int, n_documents: int, seed: int, factors=(1, 2, 4),
                 device: str = "cpu") -> pd.DataFrame:
    """Checkpoints as trained at L0, 2 L0, 4 L0 (same documents at every length)."""
    rows = []
    for name in progress_bar(names, desc="lengths beyond L0"):
        loaded = models.load(name, device=device)
        for measured in _measure(loaded, [f * L0 for f in factors], depths, n_needles, n_documents, seed):
            rows.append({"checkpoint": name, **measured})
    return _rounded(pd.DataFrame(rows).set_index(["checkpoint", "length"]))


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """Floats to 4 significant digits; rates (needle accuracy and its CI) to 3."""
    rates = ("needle accuracy", "ci low", "ci high", "gate rate at L0 (dev)")
    return frame.apply(lambda column: column.map(lambda x: significant(x, 3 if column.name in rates else 4))
                       if column.dtype.kind == "f" else column)


# ---------------------------------------------------------------- verdicts

def gate_verdict(gates: pd.DataFrame, name: str = "base") -> str:
    """Check 1 from ``model_organism.report.gate_table``: ``name`` passed its retrieval gate at every length."""
    rows = gates.loc[name]
    shown = "; ".join(f"{row['hits / needles']} = {row['rate']:.1%} (95% CI {row['ci low']:.1%}-{row['ci high']:.1%}) "
                      f"at {length}" for length, row in rows.iterrows() if row["hits / needles"])
    verdict = "passes" if len(rows) and rows["passed"].all() else "FAILS"
    return (f"{name} retrieves {shown or 'no gate recorded'} of dev needles (gate: 95% Wilson lower bound >= "
            f"{GATE:.0%}): {verdict}")


def below_gate_line(sanity: pd.DataFrame) -> str:
    """Which checkpoints retrieve less than the gate's rate at L0 on this page's test needles (greedy
    decoding, point estimate; information beside the gates, not a rule)."""
    low = sanity[sanity["needle accuracy"] < GATE]
    if low.empty:
        return f"every checkpoint retrieves at least {GATE:.0%} of the test needles at L0"
    listed = ", ".join(f"{name} {row['needle accuracy']:.0%}" for name, row in low.iterrows())
    return f"{len(low)} of {len(sanity)} checkpoints retrieve less than {GATE:.0%} of the test needles at L0: {listed}"


def loss_verdict(sanity: pd.DataFrame, unigram: float) -> str:
    loss = sanity.loc["base", "test loss"]
    verdict = "far below" if loss <= FAR_BELOW * unigram else "NOT far below"
    return (f"base: test loss {significant(loss):g} vs unigram {significant(unigram):g} nats/byte "
            f"(ratio {significant(loss / unigram, 3):g}; far below means <= {FAR_BELOW:g}x): {verdict}")


def _fails(beyond: pd.DataFrame, name: str = "base") -> tuple[bool, float, bool]:
    """(perplexity fails, its ratio at 4 L0 over L0, needles fail) of plain RoPE ``name`` beyond L0."""
    at = beyond.loc[name]
    first, last = at.loc[L0], at.loc[4 * L0]
    ppl_ratio = float(last[PPL] / first[PPL])
    needles_fail = bool(0 < first["needle accuracy"]
                        and last["needle accuracy"] <= NEEDLE_RATIO_FAIL * first["needle accuracy"])
    return bool(ppl_ratio >= PPL_RATIO_FAIL), ppl_ratio, needles_fail


# premise -> the glance rows (orders) that rest on it: chapter 0 checks each (``premises``), and the
# glance page carries a failed one on those rows as a precondition not met
PREMISES = {
    "plain RoPE's perplexity fails visibly beyond L0 (x2 at 4 L0, the positions each length adds)":
        (1.1, 1.2, 1.25, 1.3, 1.35),
    "plain RoPE's retrieval fails beyond L0 (needle accuracy at 4 L0 at most half that at L0)": (1.65,),
}


def premises(beyond: pd.DataFrame, name: str = "base") -> pd.DataFrame:
    """One row per :data:`PREMISES` entry: premise, holds, the numbers, the glance rows resting on it."""
    ppl_fails, ppl_ratio, needles_fail = _fails(beyond, name)
    at = beyond.loc[name]
    first, last = at.loc[L0], at.loc[4 * L0]
    numbers = [f"{name}: x{significant(ppl_ratio, 3):g} at 4 L0 ({significant(first[PPL]):g} -> "
               f"{significant(last[PPL]):g})",
               f"{name}: needle accuracy {first['needle accuracy']:.3g} at L0 -> {last['needle accuracy']:.3g} at 4 L0"]
    return pd.DataFrame({"premise": list(PREMISES), "holds": [ppl_fails, needles_fail], "numbers": numbers,
                         "claims": [" ".join(f"{o:g}" for o in orders) for orders in PREMISES.values()],
                         "chapter": "model-organism"})


def beyond_verdict(beyond: pd.DataFrame, name: str = "base") -> list[str]:
    """Each component of "plain RoPE fails visibly at 4 L0" on its own line, then the verdict."""
    ppl_fails, ppl_ratio, needles_fail = _fails(beyond, name)
    at = beyond.loc[name]
    first, last = at.loc[L0], at.loc[4 * L0]
    steps = ", ".join(f"{length}: {significant(r[PPL]):g}" for length, r in at.iterrows())
    needles = ", ".join(f"{length}: {r['needle accuracy']:.0%}" for length, r in at.iterrows())
    return [
        f"{name} perplexity of the positions each length adds ({steps}): x{significant(ppl_ratio, 3):g} at 4 L0 "
        f"(rule >= {PPL_RATIO_FAIL:g}x): {'fails' if ppl_fails else 'does not fail'}",
        f"{name} loss on the tokens past L0 at 4 L0: {significant(last['loss past L0']):g} vs "
        f"{significant(first['loss']):g} nats/byte over the first L0 tokens",
        f"{name} needle accuracy by length ({needles}) (rule at 4 L0 <= {NEEDLE_RATIO_FAIL:g}x that at L0): "
        f"{'fails' if needles_fail else 'does not fail'}",
        f"plain RoPE beyond L0 (both must fail): {'fails visibly' if ppl_fails and needles_fail else 'does NOT fail visibly'}",
    ]


# ---------------------------------------------------------------- where the failure starts

def position_profile(names, length: int, n_documents: int, device: str = "cpu") -> pd.DataFrame:
    """Mean next-token loss at every position of ``length``-token test documents.

    Tidy: checkpoint, position (of the predicted token, 1..length-1), loss (nats/byte),
    averaged over the first ``n_documents`` documents long enough (``tasks.perplexity``'s
    documents). Perplexity at a length averages this curve over all its positions.
    """
    frames = []
    for name in progress_bar(names, desc=f"loss by position at {length}"):
        loaded = models.load(name, device=device)
        docs = long_documents(loaded.tokenizer, length + 1, n_documents)
        with quiet_transformers():
            losses = np.mean([sequence_losses(loaded.model, ids[:length]).cpu().numpy() for _, ids in docs], axis=0)
        frames.append(pd.DataFrame({"checkpoint": name, "position": np.arange(1, length), "loss": losses}))
    return pd.concat(frames, ignore_index=True)


def _band_edges(length: int) -> list[int]:
    """1, L0, 2 L0, 4 L0, ... up to ``length``: the bands a model trained at L0 has or has not seen."""
    edges = [1, L0]
    while edges[-1] * 2 <= length:
        edges.append(edges[-1] * 2)
    return edges if edges[-1] == length else edges + [length]


def band_table(profile: pd.DataFrame) -> pd.DataFrame:
    """Mean loss per position band (rows: checkpoints; columns: bands [a, b)) and each band's
    perplexity relative to the first band, exp(loss_band - loss_[1, L0))."""
    edges = _band_edges(int(profile["position"].max()) + 1)
    labels = [f"{a}-{b - 1}" for a, b in zip(edges, edges[1:])]
    bands = pd.cut(profile["position"], edges, right=False, labels=labels)
    loss = profile.groupby(["checkpoint", bands], observed=True, sort=False)["loss"].mean().unstack()
    loss = loss.reindex(list(dict.fromkeys(profile["checkpoint"])))
    ratio = np.exp(loss.sub(loss[labels[0]], axis=0))
    return pd.concat({"loss (nats/byte)": loss, "ppl vs first L0": ratio}, axis=1).map(lambda x: significant(x, 3))


def profile_lines(bands: pd.DataFrame) -> list[str]:
    """One line per checkpoint: its loss in the first L0 positions and in the last band."""
    loss = bands["loss (nats/byte)"]
    first, last = loss.columns[0], loss.columns[-1]
    return [f"{name}: {row[first]:g} nats/byte at positions {first}, {row[last]:g} at {last} "
            f"(perplexity x{bands.loc[name, ('ppl vs first L0', last)]:g})" for name, row in loss.iterrows()]


def plot_position_profile(profile: pd.DataFrame, unigram: float | None = None):
    """Loss against position (mean over ``PROFILE_BIN`` positions), one line per checkpoint."""
    binned = profile.assign(position=(profile["position"] // PROFILE_BIN + 0.5) * PROFILE_BIN)
    binned = binned.groupby(["checkpoint", "position"], sort=False, as_index=False)["loss"].mean()
    figure, axis = plt.subplots(figsize=(10, 4.2))
    sns.lineplot(binned, x="position", y="loss", hue="checkpoint", ax=axis)
    for multiple in (1, 4):
        axis.axvline(multiple * L0, color="grey", linestyle=":", linewidth=1)
        axis.text(multiple * L0, axis.get_ylim()[0], f" {'4·' if multiple > 1 else ''}L0",
                  va="bottom", fontsize=9, color="grey")
    if unigram is not None:
        axis.axhline(unigram, color="black", linestyle="--", linewidth=1, label="unigram baseline")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    axis.set(xlabel=f"position in the document (tokens; mean of {PROFILE_BIN})", ylabel="test loss (nats/byte)",
             title="Loss by position: where each checkpoint stops predicting (cf. the paper's Fig. 1)")
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------- which pairs does the model use?

def slow_pair_ablation(name: str, lengths, n_documents: int, device: str = "cpu") -> pd.DataFrame:
    """Mean test loss at each length as trained and with the pairs longer than L0 frozen
    (``extensions.frozen_pairs``), on the same documents (long enough for the largest length).

    Columns: length, loss, loss frozen, change (frozen - as trained), pairs frozen.
    """
    loaded = models.load(name, device=device)
    docs = long_documents(loaded.tokenizer, max(lengths) + 1, n_documents)
    rows = []
    with quiet_transformers():
        for length in lengths:
            plain = _mean_loss(loaded.model, docs, length)
            with extensions.frozen_pairs(loaded.model, L0) as n_frozen:
                frozen = _mean_loss(loaded.model, docs, length)
            rows.append({"length": length, "loss": plain, "loss frozen": frozen, "change": frozen - plain,
                         "pairs frozen": n_frozen})
    frame = pd.DataFrame(rows).set_index("length")
    return frame.map(lambda x: significant(x, 3) if isinstance(x, float) else x)


def ablation_lines(ablation: pd.DataFrame, name: str = "base") -> list[str]:
    """The ablation in words: the cost at L0, then the rise past L0 with and without the slow pairs."""
    first, last = ablation.index[0], ablation.index[-1]
    at, end = ablation.loc[first], ablation.loc[last]
    return [
        f"{name}, {int(at['pairs frozen'])} pairs longer than L0 frozen: loss at {first} "
        f"{at['loss']:g} -> {at['loss frozen']:g} nats/byte ({at['change']:+.3g})",
        f"{name}, rise from {first} to {last} tokens: {end['loss'] - at['loss']:+.3g} nats/byte as trained, "
        f"{end['loss frozen'] - at['loss frozen']:+.3g} with those pairs frozen",
    ]
