"""Tables, checks and figure of chapter 0, "The model organism".

Every number comes from the organism's own modules (``corpus``,
``geometry``, ``organism``, ``recipes``) or from the checkpoint manifests (what each
checkpoint was trained on, as trained, and its gate); this module only gathers, rounds
and draws them:

  check_checkpoints(names)      known names, base among them, on disk (before any work)
  retrain(names)                ``make_models.train_all`` into data/models: the chapter's ``retrain = True``
  corpus_table()                train / dev / test: files, bytes, share, sha256 here vs data/corpus.json,
                                and the share of each split's long lines also found in train
  document_lengths(lengths)     test documents long enough for each evaluation length
  unigram_baseline()            test cross-entropy of a byte-unigram model fit on the train split
  size_table()                  configs and parameter counts of the sizes S, M, L
  fraction_matching_base(...)   the base whose long-wavelength fraction matches LLaMA-2's
  base_choice_table(), _lines() wavelength statistics of LLaMA-2, the organism and the alternatives
  gate_table(names), gate_summary(names)   every checkpoint's retrieval gate from its manifest
  recipe_table(names), recipe_lines(table) how each checkpoint was trained, from its manifest
  training_curves(names)        tidy learning curves from the manifests (dev loss, retrieval)
  plot_training_curves(curves)  dev loss and needle retrieval vs tokens, one line per checkpoint

The chapter's measurements on the checkpoints and its checks are in ``organism_checks``.

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

from ropelib.text import corpus
from ropelib.core import geometry
from ropelib.training import make as make_models, recipes
from ropelib.models import load as models, manifest as manifests, organism
from ropelib import paths
from ropelib.prose import significant
from ropelib.text.tokenizer import ByteTokenizer, encode_document
from ropelib.training.curriculum import token_stream

L0 = organism.L0
GATE = manifests.RETRIEVAL_GATE
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
        models.resolve(name)  # a missing checkpoint: one line saying how to get it
    return names


def retrain(names) -> None:
    """Retrain ``names`` into data/models, overwriting the committed checkpoints (parents not listed must
    already exist). Only the chapter's ``retrain = True`` calls it; how long each took last time is in
    its manifest (``wall_seconds``, the recipe table's last column)."""
    make_models.train_all(list(names), jobs=2)


# ---------------------------------------------------------------- corpus and tokenizer

def corpus_table() -> pd.DataFrame:
    """Per split: files, MB, share of bytes, sha256 prefix for this interpreter and the committed
    manifest, and the share of the split's long lines (>= ``corpus.LONG_LINE`` characters,
    counted per file) found verbatim in train (``corpus.shared_line_share``)."""
    here = corpus.corpus_fingerprint()
    committed = json.loads(paths.CORPUS_MANIFEST.read_text()) if paths.CORPUS_MANIFEST.exists() else {}
    total = sum(here[f"{split}_bytes"] for split in corpus.SPLITS)
    rows = []
    for split in corpus.SPLITS:
        shared = corpus.shared_line_share(corpus.stdlib_texts(), split) if split != "train" else math.nan
        rows.append({
            "split": split,
            "files": here[f"{split}_files"],
            "MB": round(here[f"{split}_bytes"] / 1e6, 2),
            "share of bytes": round(here[f"{split}_bytes"] / total, 3),
            "long lines also in train": round(shared, 3),
            "sha256 (this Python)": here[f"{split}_sha256"][:12],
            "sha256 (data/corpus.json)": committed.get(f"{split}_sha256", "missing")[:12],
            "same": here[f"{split}_sha256"] == committed.get(f"{split}_sha256"),
        })
    return pd.DataFrame(rows).set_index("split")


def document_lengths(lengths) -> pd.DataFrame:
    """Test documents with at least L + 1 tokens (BOS included): what ``tasks.perplexity`` can use."""
    tokenizer = ByteTokenizer()
    sizes = np.array([len(encode_document(tokenizer, d.text)) for d in corpus.stdlib_documents("test")])
    return pd.DataFrame({"length L": list(lengths),
                         "documents with > L tokens": [int((sizes > L).sum()) for L in lengths]}).set_index("length L")


def unigram_baseline() -> float:
    """Test-split cross-entropy (nats/byte) of byte frequencies counted on the train split.

    H = -(1/N) sum_i ln p(x_i), p(b) = (count_train(b) + 1) / (N_train + 256): the loss of a
    model that knows which bytes are common but nothing about context.
    """
    counts = np.bincount(token_stream("train"), minlength=256) + 1.0  # add-one: every byte possible
    log_p = np.log(counts / counts.sum())
    test = np.bincount(token_stream("test"), minlength=256)
    return float(-(test * log_p).sum() / test.sum())


# ---------------------------------------------------------------- configs and RoPE base

def size_table() -> pd.DataFrame:
    rows = []
    for size, config in organism.SIZES.items():
        rows.append({"size": size, "paper analogue": ANALOGUE[size], "hidden": config.hidden_size,
                     "layers": config.num_layers, "heads": config.num_heads, "head dim": config.head_dim,
                     "MLP width": config.intermediate_size, "parameters": organism.parameter_count(organism.build(config)),
                     "checkpoints": ", ".join(n for n, s in recipes.SPECS.items() if s.size == size)})
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
        geometry.RopeGeometry("organism v1 (history): head dim 32", 32, geometry.mirror_base(32, L0), L0),
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


# ---------------------------------------------------------------- gates, recipes and curves

def _manifest(name: str) -> dict:
    return manifests.of(name)


def gate_table(names) -> pd.DataFrame:
    """One row per (checkpoint, gate length) from the manifests: hits / needles, rate, 95% Wilson CI,
    passed, the needles the gate used (format, split, depths: a gate row written before 2026-12-04
    has none and used training-format needles, at random token positions), known-miss reason.
    A manifest without gate rows (smoke run, pre-v3) gets one row saying so."""
    rows = []
    for name in names:
        manifest = _manifest(name)
        miss = recipes.known_miss(manifest) or ""
        for gate in manifest.get("gate") or [None]:
            if gate is None:
                rows.append({"checkpoint": name, "length": "none", "hits / needles": "", "rate": math.nan,
                             "ci low": math.nan, "ci high": math.nan, "passed": False, "needle format": "",
                             "split": "", "depths": "",
                             "known miss": miss or "no gate recorded (smoke run or pre-v3 manifest)"})
                continue
            rows.append({"checkpoint": name, "length": gate["length"], "hits / needles": f"{gate['hits']}/{gate['needles']}",
                         "rate": gate["rate"], "ci low": gate["ci_low"], "ci high": gate["ci_high"],
                         "passed": bool(gate["passed"]),
                         "needle format": gate.get("needle_format", "training (random token positions)"),
                         "split": gate.get("split", "dev"), "depths": gate.get("depths", "uniform"),
                         "known miss": miss})
    return pd.DataFrame(rows).set_index(["checkpoint", "length"]).round(3)


def gate_summary(names) -> str:
    """"N of M checkpoints pass both gates" (``manifest.gate_passed``: at L0 and at the training length;
    one length when they coincide), then each one that does not, with its known-miss reason."""
    names = list(names)
    failed = [n for n in names if not manifests.gate_passed(_manifest(n))]
    line = (f"{len(names) - len(failed)} of {len(names)} checkpoints pass both gates (L0 and their training "
            f"length; rule: {recipes.GATE_RULE})")
    for name in failed:
        line += f"\n  {name}: {recipes.known_miss(_manifest(name)) or 'not passed, no known-miss reason recorded'}"
    return line


def _stage_text(stage: dict) -> str:
    needles = f", {stage['needle_fraction']:.0%} needles" if stage.get("needle_fraction") is not None else ""
    return f"{stage['length']} x {stage['steps']} x {stage['batch_size']}{needles}"


def tokens_by_length(manifest: dict) -> dict[int, int]:
    """{length: tokens} trained at each length: the manifest's ``tokens_by_length``, or (older manifests)
    length x steps x batch summed over its recipe's stages."""
    if manifest.get("tokens_by_length"):
        return {int(k): int(v) for k, v in manifest["tokens_by_length"].items()}
    out: dict[int, int] = {}
    for stage in manifest["recipe"]["stages"]:
        out[stage["length"]] = out.get(stage["length"], 0) + stage["length"] * stage["steps"] * stage["batch_size"]
    return out


def recipe_table(names) -> pd.DataFrame:
    """One row per checkpoint AS TRAINED, from its manifest: size, parent, RoPE, parameters, stages
    (length x steps x batch), its own tokens (total and by length), the share at its longest length,
    tokens from scratch (ancestors' included) and wall time."""
    rows = []
    for name in names:
        manifest = _manifest(name)
        rope, by_length = manifest["rope"], tokens_by_length(manifest)
        longest = max(by_length)
        total = sum(by_length.values())
        rows.append({
            "checkpoint": name, "size": manifest["size"], "from": manifest["parent"] or "scratch",
            "RoPE": rope["method"] if rope["factor"] == 1 else f"{rope['method']} x{rope['factor']:g}",
            "parameters": organism.parameter_count(organism.build(organism.OrganismConfig(**manifest["organism"]))),
            "stages (length x steps x batch)": " -> ".join(_stage_text(s) for s in manifest["recipe"]["stages"]),
            "tokens (M)": round(manifest["tokens_seen"] / 1e6, 3),
            "tokens by length (M)": ", ".join(f"{k}: {v / 1e6:.3g}" for k, v in sorted(by_length.items())),
            "longest length": longest, "share at longest": round(by_length[longest] / total, 3),
            "from scratch (M)": round((manifest["tokens_seen"] + tokens_before(name)) / 1e6, 3),
            "wall (s)": manifest.get("wall_seconds")})
    return pd.DataFrame(rows).set_index("checkpoint")


def _same(values: dict) -> str:
    shown = ", ".join(f"{k} {v:.4g}M" for k, v in values.items())
    return f"{shown}: {'equal' if len(set(values.values())) == 1 else 'NOT equal'}"


def recipe_lines(table: pd.DataFrame) -> list[str]:
    """What the recipe table says about the comparisons the book relies on, computed from it:
    the sizes' tokens, the CPTs' tokens, the finding-3 pair's tokens, native-4x's share at its length."""
    groups = {"tokens of the sizes' bases": [n for n in ("base-S", "base", "base-L") if n in table.index],
              "tokens of the CPTs at 4 L0": [n for n in table.index if n.startswith("cpt-")],
              "tokens of the finding-3 pair": [n for n in ("ntk8-short", "ntk8-long") if n in table.index]}
    lines = [f"{what}: {_same({n: table.loc[n, 'tokens (M)'] for n in names})}"
             for what, names in groups.items() if len(names) > 1]
    if "native-4x" in table.index:
        row = table.loc["native-4x"]
        lines.append(f"native-4x: {row['share at longest']:.1%} of its {row['tokens (M)']:.4g}M tokens at "
                     f"{row['longest length']} tokens ({row['longest length'] / L0:g} L0)")
    return lines


def tokens_before(name: str) -> int:
    """Tokens the checkpoint's ancestors were trained on (0 for a checkpoint from scratch)."""
    parent = _manifest(name)["parent"]
    return 0 if parent is None else _manifest(parent)["tokens_seen"] + tokens_before(parent)


def training_curves(names) -> pd.DataFrame:
    """Tidy curves: checkpoint, tokens from scratch (ancestors' + own), dev loss, retrieval.

    Both are measured on the dev split during training, at the checkpoint's last stage length.
    """
    rows = []
    for name in names:
        manifest, offset = _manifest(name), tokens_before(name)
        eval_length = manifest["recipe"]["stages"][-1]["length"]
        for point in manifest["curve"]:
            rows.append({"checkpoint": name, "line": f"{name} (at {eval_length})", "eval length": eval_length,
                         "tokens (M)": (offset + point["tokens"]) / 1e6, "dev loss": point["dev_loss"],
                         "retrieval": point["retrieval"]})
    return pd.DataFrame(rows)


def plot_training_curves(curves: pd.DataFrame):
    """Left: dev loss (nats/byte); right: teacher-forced needle exact match on dev needles, vs tokens seen."""
    sns.set_theme(style="whitegrid", context="notebook")
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), constrained_layout=True)
    palette = sns.color_palette("tab20", curves["line"].nunique())
    sns.lineplot(data=curves, x="tokens (M)", y="dev loss", hue="line", palette=palette, ax=left, legend=False)
    left.set(xlabel="training tokens from scratch (millions; CPT lines start at their parent's total)",
             ylabel="dev loss at eval length (nats/byte)", title="Chapter 0: dev loss during training")
    sns.lineplot(data=curves, x="tokens (M)", y="retrieval", hue="line", palette=palette, ax=right)
    right.axhline(GATE, color="black", linestyle="--", linewidth=1)
    right.text(0, GATE + 0.02, f"gate after training: 95% lower bound >= {GATE:.0%} at L0 = {L0} and the "
                               "training length", fontsize=9)
    right.set(xlabel="training tokens from scratch (millions)", ylabel="needle exact match at eval length (dev)",
              title="Chapter 0: needle retrieval during training", ylim=(-0.03, 1.05))
    right.legend(title="checkpoint (eval length)", bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=8)
    return figure
