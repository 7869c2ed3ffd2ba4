"""Tables, checks and figure of chapter 0, "The model organism".

Every number comes from the organism's own modules (``corpus``, ``geometry``,
``organism``, ``recipes``, the checkpoint manifests) or from running the two benchmark
tasks (``tasks.perplexity``, ``tasks.needle``) on the committed checkpoints; this module
only gathers, rounds and draws them:

  check_checkpoints(names)      known names, base among them, on disk (before any work)
  retrain(names)                ``recipes.train_all``: the chapter's ``retrain = True``
  corpus_table()                the train / held-out split: this interpreter vs data/corpus.json
  document_lengths(lengths)     held-out documents long enough for each evaluation length
  unigram_baseline()            held-out cross-entropy of a byte-unigram model fit on the train split
  size_table()                  configs and parameter counts of the sizes S, M, L
  fraction_matching_base(...)   the base whose long-wavelength fraction matches LLaMA-2's
  base_choice_table(), _lines() wavelength statistics of LLaMA-2, the organism and the alternatives
  recipe_table(names)           how each checkpoint was trained (stages, tokens, RoPE)
  training_curves(names)        tidy learning curves from the manifests
  plot_training_curves(curves)  held-out loss and needle retrieval vs tokens, one line per checkpoint
  sanity_table(names, ...)      held-out loss / perplexity and greedy needle accuracy at L0
  beyond_table(names, ...)      the same at L0, 2 L0, 4 L0 (does plain RoPE fail past L0?)
  *_verdict(...), below_gate_line(...)  the chapter's checks, each a stated rule and computed lines

Loss units: the organism's tokens are bytes (one marker symbol aside), so nats/token is
nats/byte. Not here: training (``recipes``), the tasks themselves, statistics beyond a
binomial confidence interval.
"""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from tqdm.auto import tqdm

from ropelib import corpus, geometry, models, organism, paths, recipes
from ropelib.findings.length_sweep import quiet_transformers
from ropelib.stats import proportion_interval
from ropelib.geometry_plots import significant
from ropelib.tasks.needle import needle_grid
from ropelib.tasks.perplexity import long_documents, perplexity_by_length, sequence_losses
from ropelib.tokenizer import ByteTokenizer, encode_document
from ropelib.training import token_stream

L0 = organism.L0
GATE = recipes.RETRIEVAL_GATE
ANALOGUE = {"S": "MiniMA-2-3B", "M": "LLaMA-2-7B", "L": "LLaMA-2-13B"}
# a loss "far below" the unigram baseline: at most this fraction of it
FAR_BELOW = 0.5
# plain RoPE "visibly fails" at 4 L0: perplexity at least this many times its L0 value ...
PPL_RATIO_FAIL = 2.0
# ... and needle accuracy at most this fraction of its L0 value
NEEDLE_RATIO_FAIL = 0.5


# ---------------------------------------------------------------- input and retraining

def check_checkpoints(names, must_exist: bool = True) -> list[str]:
    """Known, distinct checkpoint names including ``base`` (and, unless retraining, on disk)."""
    names = list(names)
    unknown = [n for n in names if n not in recipes.SPECS]
    if unknown:
        raise ValueError(f"checkpoints {unknown} are unknown; expected some of {', '.join(recipes.SPECS)}")
    if len(set(names)) != len(names) or "base" not in names:
        raise ValueError(f"checkpoints={names}: give distinct names, including 'base' (the gate and the beyond-L0 check)")
    for name in names if must_exist else ():
        models._resolve(name)  # a missing checkpoint: one line saying how to get it
    return names


def retrain(names) -> None:
    """Retrain ``names`` into data/models (parents not listed must already exist): ~40 min for all."""
    recipes.train_all(list(names), jobs=2)


# ---------------------------------------------------------------- corpus and tokenizer

def corpus_table() -> pd.DataFrame:
    """Per split: files, MB, sha256 prefix, for this interpreter and the committed manifest."""
    here = corpus.corpus_fingerprint()
    committed = json.loads(paths.CORPUS_MANIFEST.read_text()) if paths.CORPUS_MANIFEST.exists() else {}
    rows = []
    for split in ("train", "heldout"):
        rows.append({
            "split": split,
            "files": here[f"{split}_files"],
            "MB": round(here[f"{split}_bytes"] / 1e6, 2),
            "share of bytes": round(here[f"{split}_bytes"] / (here["train_bytes"] + here["heldout_bytes"]), 3),
            "sha256 (this Python)": here[f"{split}_sha256"][:12],
            "sha256 (data/corpus.json)": committed.get(f"{split}_sha256", "missing")[:12],
            "same": here[f"{split}_sha256"] == committed.get(f"{split}_sha256"),
        })
    return pd.DataFrame(rows).set_index("split")


def document_lengths(lengths) -> pd.DataFrame:
    """Held-out documents with at least L + 1 tokens (BOS included): what ``tasks.perplexity`` can use."""
    tokenizer = ByteTokenizer()
    sizes = np.array([len(encode_document(tokenizer, d.text)) for d in corpus.stdlib_documents("heldout")])
    return pd.DataFrame({"length L": list(lengths),
                         "documents with > L tokens": [int((sizes > L).sum()) for L in lengths]}).set_index("length L")


def unigram_baseline() -> float:
    """Held-out cross-entropy (nats/byte) of byte frequencies counted on the train split.

    H = -(1/N) sum_i ln p(x_i), p(b) = (count_train(b) + 1) / (N_train + 256): the loss of a
    model that knows which bytes are common but nothing about context.
    """
    counts = np.bincount(token_stream("train"), minlength=256) + 1.0  # add-one: every byte possible
    log_p = np.log(counts / counts.sum())
    held = np.bincount(token_stream("heldout"), minlength=256)
    return float(-(held * log_p).sum() / held.sum())


# ---------------------------------------------------------------- configs and RoPE base

def size_table() -> pd.DataFrame:
    rows = []
    for size, config in organism.SIZES.items():
        rows.append({
            "size": size,
            "paper analogue": ANALOGUE[size],
            "hidden": config.hidden_size,
            "layers": config.num_layers,
            "heads": config.num_heads,
            "head dim": config.head_dim,
            "MLP width": config.intermediate_size,
            "parameters": organism.parameter_count(organism.build(config)),
            "checkpoints": ", ".join(n for n, s in recipes.SPECS.items() if s.size == size),
        })
    return pd.DataFrame(rows).set_index("size")


def fraction_matching_base(train_length: int, reference: geometry.RopeGeometry = geometry.LLAMA2_7B) -> float:
    """Base whose wavelength crosses L at the same relative pair index as ``reference``'s.

    lambda(x) = 2*pi * b^x with x = 2j/d in [0, 1) crosses L at x* = ln(L / 2*pi) / ln b;
    equal x* (equal fraction 1 - x* of long pairs, read continuously) gives
    b = (L / 2*pi)^(ln b_ref / ln(L_ref / 2*pi)).
    """
    exponent = math.log(reference.base) / math.log(reference.train_length / (2 * math.pi))
    return (train_length / (2 * math.pi)) ** exponent


def base_geometries() -> list[geometry.RopeGeometry]:
    """LLaMA-2, the organism's base and its alternatives at L0, then the long-trained pair."""
    native = recipes.SPECS["native-4x"]
    return [
        geometry.LLAMA2_7B,
        geometry.RopeGeometry("organism (chosen): longest wavelength as LLaMA-2", organism.HEAD_DIM, organism.BASE, L0),
        geometry.RopeGeometry("alternative: long-pair fraction as LLaMA-2", organism.HEAD_DIM,
                              fraction_matching_base(L0), L0),
        geometry.RopeGeometry("alternative: base 700 (first trials)", organism.HEAD_DIM, 700.0, L0),
        geometry.RopeGeometry("alternative: LLaMA-2's base as is", organism.HEAD_DIM, geometry.LLAMA2_7B.base, L0),
        geometry.LLAMA3_8B,
        geometry.RopeGeometry("organism native-4x (its LLaMA-3)", organism.HEAD_DIM, native.pretrained_base,
                              native.pretrained_length),
    ]


def base_choice_table() -> pd.DataFrame:
    return geometry.geometry_table(*base_geometries())


def base_choice_lines() -> list[str]:
    """The chosen base and the fraction-matching one, in one line each, from the table's numbers."""
    table = base_choice_table()
    llama, chosen, matched = (table.iloc[i] for i in range(3))

    def line(label, row):
        return (f"{label}: base {significant(row['base']):g}, {row['fraction > L']:.0%} of pairs longer than L, "
                f"{row['fraction > 4L']:.0%} longer than 4 L, longest wavelength {row['longest wavelength / L']:g} L")
    return [line("LLaMA-2-7B", llama), line("organism (chosen)", chosen), line("fraction-matched alternative", matched)]


# ---------------------------------------------------------------- recipes and curves

def _stage_text(stage) -> str:
    needles = f", {stage.needle_fraction:.0%} needles" if stage.needle_fraction is not None else ""
    return f"{stage.length} x {stage.steps} x {stage.batch_size}{needles}"


def recipe_table(names) -> pd.DataFrame:
    """One row per checkpoint: parent, RoPE method and factor, stages (length x steps x batch), tokens."""
    rows = []
    for name in names:
        spec = recipes.SPECS[name]
        rows.append({
            "checkpoint": name,
            "size": spec.size,
            "from": spec.parent or "scratch",
            "RoPE": spec.method if spec.factor == 1 else f"{spec.method} x{spec.factor:g}",
            "stages (length x steps x batch)": " -> ".join(_stage_text(s) for s in spec.recipe.stages),
            "needles": f"{spec.recipe.needle_fraction:.0%}",
            "tokens (M)": round(spec.recipe.tokens / 1e6, 2),
        })
    return pd.DataFrame(rows).set_index("checkpoint")


def _manifest(name: str) -> dict:
    return json.loads((models.organism_dir(name) / models.MANIFEST).read_text())


def _tokens_before(name: str) -> int:
    """Tokens the checkpoint's ancestors were trained on (0 for a checkpoint from scratch)."""
    parent = _manifest(name)["parent"]
    return 0 if parent is None else _manifest(parent)["tokens_seen"] + _tokens_before(parent)


def training_curves(names) -> pd.DataFrame:
    """Tidy curves: checkpoint, tokens from scratch (ancestors' + own), held-out loss, retrieval.

    Both are measured during training at the checkpoint's last stage length (its eval length).
    """
    rows = []
    for name in names:
        manifest, offset = _manifest(name), _tokens_before(name)
        eval_length = manifest["recipe"]["stages"][-1]["length"]
        for point in manifest["curve"]:
            rows.append({"checkpoint": name, "line": f"{name} (at {eval_length})", "eval length": eval_length,
                         "tokens (M)": (offset + point["tokens"]) / 1e6, "held-out loss": point["heldout_loss"],
                         "retrieval": point["retrieval"]})
    return pd.DataFrame(rows)


def plot_training_curves(curves: pd.DataFrame):
    """Left: held-out loss (nats/byte); right: teacher-forced needle exact match, vs tokens seen."""
    sns.set_theme(style="whitegrid", context="notebook")
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), constrained_layout=True)
    palette = sns.color_palette("tab20", curves["line"].nunique())
    sns.lineplot(data=curves, x="tokens (M)", y="held-out loss", hue="line", palette=palette, ax=left, legend=False)
    left.set(xlabel="training tokens from scratch (millions; CPT lines start at their parent's total)",
             ylabel="held-out loss at eval length (nats/byte)", title="Chapter 0: held-out loss during training")
    sns.lineplot(data=curves, x="tokens (M)", y="retrieval", hue="line", palette=palette, ax=right)
    right.axhline(GATE, color="black", linestyle="--", linewidth=1)
    right.text(0, GATE + 0.02, f"gate for base at L0 = {L0}: {GATE:.0%}", fontsize=9)
    right.set(xlabel="training tokens from scratch (millions)", ylabel="needle exact match at eval length",
              title="Chapter 0: needle retrieval during training", ylim=(-0.03, 1.05))
    right.legend(title="checkpoint (eval length)", bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=8)
    return figure


# ---------------------------------------------------------------- running the tasks

def wilson(successes: int, trials: int) -> tuple[float, float]:
    """95% Wilson interval of a pass rate (``ropelib.stats.proportion_interval``)."""
    estimate = proportion_interval(successes, trials)
    return estimate.low, estimate.high


def _loss_past(loaded, length: int, n_documents: int, start: int = L0) -> float:
    """Mean loss on the tokens at positions >= ``start`` only: those a model trained at ``start`` never predicted.

    Same documents as ``tasks.perplexity`` at this length; losses[i] predicts token i + 1.
    """
    docs = long_documents(loaded.tokenizer, length + 1, n_documents)
    return float(np.mean([float(sequence_losses(loaded.model, ids[:length])[start - 1:].mean()) for _, ids in docs]))


def _measure(loaded, lengths, depths, n_needles: int, n_documents: int, seed: int) -> list[dict]:
    """Mean held-out loss, perplexity exp(mean loss), loss past L0, and greedy needle accuracy per length."""
    with quiet_transformers():
        ppl = perplexity_by_length(loaded.model, loaded.tokenizer, lengths, n_documents=n_documents, progress=False)
        needles = needle_grid(loaded.model, loaded.tokenizer, lengths, depths=depths, needles_per_cell=n_needles,
                              seed=seed, progress=False)
    rows = []
    for length in lengths:
        loss = float(ppl.loc[ppl["length"] == length, "loss"].mean())
        past = _loss_past(loaded, max(lengths), n_documents) if length == max(lengths) > L0 else math.nan
        passed = needles.loc[needles["length"] == length, "passed"]
        low, high = wilson(passed.sum(), len(passed))
        rows.append({"length": length, "loss": loss, "ppl": math.exp(loss), "loss past L0": past,
                     "needle accuracy": float(passed.mean()), "ci low": low, "ci high": high, "needles": len(passed),
                     "entropy": float(needles.loc[needles["length"] == length, "entropy"].mean())})
    return rows


def _rope_text(rope: dict) -> str:
    return rope["method"] + ("" if rope["factor"] == 1 else f" x{rope['factor']:g}")


def sanity_table(names, depths, n_needles: int, n_documents: int, seed: int) -> pd.DataFrame:
    """Every checkpoint, as trained (its own RoPE method), at L0: loss, perplexity, needle accuracy.

    The "in training" columns are the manifest's final check: 32 random held-out chunks
    (loss) and 64 teacher-forced needles (retrieval), at L0.
    """
    rows = []
    for name in tqdm(names, desc="checkpoints at L0"):
        loaded = models.load(name)
        manifest = loaded.manifest
        [measured] = _measure(loaded, [L0], depths, n_needles, n_documents, seed)
        rows.append({
            "checkpoint": name, "parameters": organism.parameter_count(loaded.model),
            "RoPE": _rope_text(manifest["rope"]), "trained at": manifest["recipe"]["stages"][-1]["length"],
            "tokens (M)": round((manifest["tokens_seen"] + _tokens_before(name)) / 1e6, 2),
            "held-out loss": measured["loss"], "ppl": measured["ppl"],
            "loss in training": manifest["final"]["heldout_loss_at_L0"],
            "needle accuracy": measured["needle accuracy"], "ci low": measured["ci low"],
            "ci high": measured["ci high"], "retrieval in training": manifest["final"]["retrieval_at_L0"],
        })
    return _rounded(pd.DataFrame(rows).set_index("checkpoint"))


def beyond_table(names, depths, n_needles: int, n_documents: int, seed: int, factors=(1, 2, 4)) -> pd.DataFrame:
    """Checkpoints as trained at L0, 2 L0, 4 L0 (same documents at every length)."""
    rows = []
    for name in tqdm(names, desc="lengths beyond L0"):
        loaded = models.load(name)
        for measured in _measure(loaded, [f * L0 for f in factors], depths, n_needles, n_documents, seed):
            rows.append({"checkpoint": name, **measured})
    return _rounded(pd.DataFrame(rows).set_index(["checkpoint", "length"]))


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """Floats to 4 significant digits; rates (needle accuracy and its CI) to 3."""
    rates = ("needle accuracy", "ci low", "ci high", "retrieval in training")
    return frame.apply(lambda column: column.map(lambda x: significant(x, 3 if column.name in rates else 4))
                       if column.dtype.kind == "f" else column)


# ---------------------------------------------------------------- verdicts

def gate_verdict(sanity: pd.DataFrame) -> str:
    row = sanity.loc["base"]
    verdict = "passes" if row["needle accuracy"] >= GATE else "FAILS"
    return (f"base retrieves {row['needle accuracy']:.1%} of needles at L0 = {L0} "
            f"(95% CI {row['ci low']:.1%}-{row['ci high']:.1%}; gate {GATE:.0%}): {verdict}")


def below_gate_line(sanity: pd.DataFrame) -> str:
    """Which checkpoints retrieve less than the gate at L0 (only base is gated; the rest is information)."""
    low = sanity[sanity["needle accuracy"] < GATE]
    if low.empty:
        return f"every checkpoint retrieves at least {GATE:.0%} at L0"
    listed = ", ".join(f"{name} {row['needle accuracy']:.0%}" for name, row in low.iterrows())
    return f"{len(low)} of {len(sanity)} checkpoints retrieve less than {GATE:.0%} of needles at L0: {listed}"


def loss_verdict(sanity: pd.DataFrame, unigram: float) -> str:
    loss = sanity.loc["base", "held-out loss"]
    verdict = "far below" if loss <= FAR_BELOW * unigram else "NOT far below"
    return (f"base: held-out loss {significant(loss):g} vs unigram {significant(unigram):g} nats/byte "
            f"(ratio {significant(loss / unigram, 3):g}; far below means <= {FAR_BELOW:g}x): {verdict}")


def beyond_verdict(beyond: pd.DataFrame, name: str = "base") -> list[str]:
    """Each component of "plain RoPE fails visibly at 4 L0" on its own line, then the verdict."""
    at = beyond.loc[name]
    first, last = at.loc[L0], at.loc[4 * L0]
    ppl_ratio = last["ppl"] / first["ppl"]
    ppl_fails = ppl_ratio >= PPL_RATIO_FAIL
    needles_fail = 0 < first["needle accuracy"] and last["needle accuracy"] <= NEEDLE_RATIO_FAIL * first["needle accuracy"]
    steps = ", ".join(f"{length}: {significant(r['ppl']):g}" for length, r in at.iterrows())
    needles = ", ".join(f"{length}: {r['needle accuracy']:.0%}" for length, r in at.iterrows())
    return [
        f"{name} perplexity by length ({steps}): x{significant(ppl_ratio, 3):g} at 4 L0 "
        f"(rule >= {PPL_RATIO_FAIL:g}x): {'fails' if ppl_fails else 'does not fail'}",
        f"{name} loss on the tokens past L0 at 4 L0: {significant(last['loss past L0']):g} vs "
        f"{significant(first['loss']):g} nats/byte over the first L0 tokens",
        f"{name} needle accuracy by length ({needles}) (rule at 4 L0 <= {NEEDLE_RATIO_FAIL:g}x that at L0): "
        f"{'fails' if needles_fail else 'does not fail'}",
        f"plain RoPE beyond L0 (both must fail): {'fails visibly' if ppl_fails and needles_fail else 'does NOT fail visibly'}",
    ]
