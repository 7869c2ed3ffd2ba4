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

The chapter's measurements on the checkpoints and its three checks are in
``organism_checks``.

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

from ropelib import corpus, geometry, models, organism, paths, recipes
from ropelib.geometry_plots import significant
from ropelib.tokenizer import ByteTokenizer, encode_document
from ropelib.training import token_stream

L0 = organism.L0
GATE = recipes.RETRIEVAL_GATE
ANALOGUE = {"S": "MiniMA-2-3B", "M": "LLaMA-2-7B", "L": "LLaMA-2-13B"}


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
        geometry.RopeGeometry("the first organism: head dim 32", 32, geometry.mirror_base(32, L0), L0),
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


def tokens_before(name: str) -> int:
    """Tokens the checkpoint's ancestors were trained on (0 for a checkpoint from scratch)."""
    parent = _manifest(name)["parent"]
    return 0 if parent is None else _manifest(parent)["tokens_seen"] + tokens_before(parent)


def training_curves(names) -> pd.DataFrame:
    """Tidy curves: checkpoint, tokens from scratch (ancestors' + own), held-out loss, retrieval.

    Both are measured during training at the checkpoint's last stage length (its eval length).
    """
    rows = []
    for name in names:
        manifest, offset = _manifest(name), tokens_before(name)
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
