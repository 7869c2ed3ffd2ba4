"""The checkpoints the book needs, how each is trained (``train_one``), and its gate.

| name           | paper analogue                                   | from          |
|----------------|--------------------------------------------------|---------------|
| base           | LLaMA-2-7B (pretrained at L0 with plain RoPE)    | scratch       |
| base-S, base-L | MiniMA-2-3B, LLaMA-2-13B (appendix sizes)        | scratch, same recipe and tokens as base |
| native-4x      | LLaMA-3 (trained natively on a longer context)   | scratch, its own larger base; short curriculum, then 4 L0 (share in its manifest) |
| cpt-{rope,pi,ntk,ntk100,yarn} | CPT of LLaMA-2 at 4 L0 with each method | base    |
| cpt-pi-S, cpt-pi-L     | PI CPT at the other sizes (Figs. 5, 7)   | base-S/L      |
| ntk8-short, ntk8-long  | finding 3: NTK CPT at L0 vs 8 L0, same tokens | base     |

``ntk`` is NTK-aware (base x s^(d/(d-2)), x4.2 at s = 4); ``ntk100`` is the paper's
(Code Llama's) NTK, the base raised 100x.

**The gate.** Every checkpoint must retrieve needles at L0 and at its own training length,
on the evaluation's own needles: the evaluation's format (``GATE_FORMAT``, needle at a line
boundary, ``haystack.cell_prompts``) on its depth grid (``GATE_DEPTHS``, the needle-entropy
chapter's), ``GATE_PER_DEPTH`` needles per depth (``GATE_NEEDLES`` = 110 per length, so a
0.9 gate can pass: 20/20 has a Wilson lower bound of 0.84), haystacks from the dev split
(``GATE_SPLIT``; the evaluation reads the test split), greedy decoding, passed when the
decoded text starts with the value (as ``tasks.needle``). The lower end of the 95% Wilson
interval of the pass rate must be >= ``RETRIEVAL_GATE`` (so "retrieves >= 90%" holds at 95%
confidence, not only on the point estimate). Training-format needles (random token
positions, teacher-forced) are easier: the gate measured on them until 2026-12-04 passed
checkpoints that the evaluation then saw retrieve 0.65-0.80. ``make_models.train_all`` trains
everything, then fails naming every checkpoint that missed, unless ``KNOWN_MISSES`` lists it
with the reason; chapters read the gate from the manifest and call a claim that needs a
missing checkpoint "not testable".

Every run is seeded and single-threaded (deterministic on a given machine). Not here:
running the whole table in parallel (``make_models``).
"""

from __future__ import annotations

import platform

import torch
from dataclasses import dataclass, field, replace

from ropelib.text import corpus
from ropelib.core import extensions, methods
from ropelib.models import organism
from ropelib.models.manifest import RETRIEVAL_GATE, gate_passed
from ropelib.determinism import seed_everything
from ropelib.core.geometry import mirror_base
from ropelib.models.load import load_organism, organism_dir, save_organism
from ropelib.models.organism import HEAD_DIM, L0, SIZES
from ropelib.core.stats import proportion_interval
from ropelib.text.haystack import FORMATS, cell_prompts
from ropelib.text.tokenizer import ByteTokenizer
from ropelib.training.curriculum import Recipe, Stage, dev_loss, train

GATE_FORMAT = "compact"  # the evaluation's needle format (book/runs.yml needle_format)
GATE_DEPTHS = tuple(range(0, 101, 10))  # the evaluation's depth grid, percent (needle-entropy chapter)
GATE_PER_DEPTH = 10
GATE_NEEDLES = GATE_PER_DEPTH * len(GATE_DEPTHS)  # 110 per gate length
GATE_SPLIT = "dev"  # the evaluation reads "test": the gate never sees an evaluation haystack
GATE_SEED = 2468
GATE_RULE = (f"95% Wilson lower bound >= {RETRIEVAL_GATE} on {GATE_NEEDLES} {GATE_SPLIT}-split needles at each "
             f"length, in the evaluation's format ({GATE_FORMAT}, at a line boundary) on its depth grid "
             f"({GATE_DEPTHS[0]}-{GATE_DEPTHS[-1]}% every {GATE_DEPTHS[1] - GATE_DEPTHS[0]}%, {GATE_PER_DEPTH} "
             "needles per depth), greedy decoding")
# checkpoint -> why it is allowed to miss its gate. The reasons give no gate numbers: those are
# in the manifest's ``gate`` rows, printed beside the reason wherever it is shown.
KNOWN_MISSES: dict[str, str] = {
    "cpt-rope": ("plain RoPE does not learn to retrieve at 4 L0 within the steps at 4 L0 every method gets "
                 "(CPT_4X; it also missed on organism v2); giving it more would break the equal-budget "
                 "comparison of the methods, and it is a control the paper does not have"),
    **{name: ("passed the training-format gate (200 dev needles at random positions) but misses the "
              "evaluation-format gate it was re-gated with on 2026-12-04, weights unchanged; not retrained, "
              "so that every checkpoint of a comparison keeps the same recipe and budget")
       for name in ("cpt-ntk", "cpt-pi", "cpt-yarn", "cpt-pi-L", "ntk8-long")},
}


def known_miss(manifest: dict) -> str | None:
    """Why a checkpoint may miss its gate: the reason its manifest recorded, else ``KNOWN_MISSES``
    (checkpoints trained before their reason was written down carry ``known_miss: null``)."""
    return manifest.get("known_miss") or KNOWN_MISSES.get(manifest.get("name", ""))

# short, needle-heavy stages until retrieval forms (~1000 steps at 32 tokens, see training.py)
SHORT_PHASE = (Stage(32, 2000, 32, needle_fraction=0.8), Stage(64, 600, 32, needle_fraction=0.6))
CURRICULUM = (*SHORT_PHASE, Stage(128, 400, 16))
MIXED = 0.5  # share of needle prompts shorter than the stage length (training.py)


@dataclass(frozen=True)
class CheckpointSpec:
    name: str
    purpose: str
    recipe: Recipe
    size: str = "M"
    parent: str | None = None
    method: str = "rope"
    factor: float = 1.0
    pretrained_base: float = organism.BASE
    pretrained_length: int = L0
    extra: dict = field(default_factory=dict)

    @property
    def trained_length(self) -> int:
        """The longest length of its recipe: the gate's second length."""
        return max(s.length for s in self.recipe.stages)

    @property
    def gate_lengths(self) -> tuple[int, ...]:
        """L0 (the organism's, or a smaller pretraining length) and the training length."""
        return tuple(sorted({min(L0, self.pretrained_length), self.trained_length}))


def _base(name, size, purpose):
    return CheckpointSpec(name, purpose, Recipe(stages=[*CURRICULUM, Stage(L0, 3000, 8, short_needles=MIXED)]),
                          size=size)


def _cpt(name, method, factor, stages, parent="base", size="M", purpose="", extra=None):
    return CheckpointSpec(name, purpose or f"{method} continual pretraining of {parent}",
                          Recipe(stages=list(stages), lr=5e-4, warmup_steps=30, eval_every=100),
                          size=size, parent=parent, method=method, factor=factor, extra=extra or {})


# Every CPT starts with this short, needle-heavy stage under the new positions. Measured on
# organism v1 (head dim 32, 2026-11): without it, 300 steps at 4 L0 left PI with 6% and plain
# RoPE with 12% retrieval even at L0; with it, PI recovered to 94% at L0 and 78% at 1024.
# Same stage for every CPT, so the methods still see the same tokens.
CPT_WARMUP = Stage(L0 // 2, 200, 16, needle_fraction=0.8)  # 409,600 tokens
CPT_4X = (CPT_WARMUP, Stage(4 * L0, 400, 4, short_needles=MIXED))  # then 1.6M tokens at 4 L0
TOKENS_PER_STEP = 16 * L0  # tokens per optimizer step of the finding-3 pair (at least one long row)


def equal_token_recipes(short_length: int, long_length: int, train_tokens: int,
                        warmup: Stage = CPT_WARMUP) -> tuple[tuple[Stage, ...], tuple[Stage, ...]]:
    """Stages of the short and the long CPT of finding 3: same tokens per step, same steps.

    Both start with the same needle-heavy ``warmup`` stage (not counted in ``train_tokens``).
    Then a step holds T = max(16 L0, long_length) tokens, steps = round(train_tokens / T),
    batch size = T / length; each run spends every step at its one length. Every compared
    stage mixes short needles (``MIXED``). ``SHORT_8X`` / ``LONG_8X`` are this with
    (L0, 8 L0, 3,072,000); the finding-3 chapter retrains other pairs with it.
    """
    if not short_length < long_length:
        raise ValueError(f"short_length={short_length} must be below long_length={long_length}")
    step_tokens = max(TOKENS_PER_STEP, long_length)
    for length in (short_length, long_length):
        if step_tokens % length:
            raise ValueError(f"length {length} must divide the {step_tokens} tokens of a step (use powers of two)")
    steps = max(1, round(train_tokens / step_tokens))
    mixed = {"short_needles": MIXED}
    short = (warmup, Stage(short_length, steps, step_tokens // short_length, **mixed))
    long = (warmup, Stage(long_length, steps, step_tokens // long_length, **mixed))
    return short, long


# finding 3: after the warm-up, the same 3,072,000 tokens at L0 or at 8 L0 (v3: 25% more than
# the first v3 run's 2,457,600). History (dev needles at 2048, 200 each): the long run used to
# spend its first third at 4 L0 (a ramp) and missed its gate, 185/200 (2026-12-03; 184/200 with
# 2,457,600 tokens on 2026-11-29); straight at 8 L0 with the same tokens it passed, 191/200
# (scratch, 2026-12-03, the committed checkpoint).
SHORT_8X, LONG_8X = equal_token_recipes(L0, 8 * L0, 3_072_000)
# The natively long reference, from scratch with its own (4.2x larger) RoPE base: a short,
# needle-heavy phase only until the retrieval circuit forms, then every remaining step at 4 L0
# with the learning rate restarted (>= 75% of its tokens at 4 L0; the share is in its manifest,
# tokens_by_length, and in chapter 0). History, measured in scratch runs on dev needles:
# 2026-12-02, with this base the circuit formed 800-1,000 steps into the 64-token stage (base:
# ~500); sent from 64 tokens to 4 L0 without a restart (lr 1e-3, batch 4) it was lost (0/200 at
# 256 after 800 steps). 2026-12-03, through 128/256/512 under one schedule it faded (0.31 at
# 256, 0.09 at 512); half the batch in the short phase (16) never formed it (0 at 64 after
# 3,000 steps); this recipe dropped to 0.06 of 32 at the jump to 4 L0 and was back at >= 0.97
# ~1,050 steps later (the manifest's curve).
NATIVE_4X = (Stage(32, 2000, 32, needle_fraction=0.8), Stage(64, 1200, 32, needle_fraction=0.6),
             Stage(4 * L0, 3320, 4, short_needles=MIXED, restart_lr=5e-4))

SPECS: dict[str, CheckpointSpec] = {s.name: s for s in [
    _base("base-L", "L", "size L (LLaMA-2-13B analogue): the base recipe and tokens"),
    _base("base", "M", "the organism's LLaMA-2: plain RoPE at L0"),
    CheckpointSpec("native-4x", "the organism's LLaMA-3: plain RoPE, most of its tokens at 4 L0 from scratch",
                   Recipe(stages=list(NATIVE_4X), eval_every=250),  # an evaluation at 4 L0 costs ~7 s
                   pretrained_base=mirror_base(HEAD_DIM, 4 * L0), pretrained_length=4 * L0),
    _base("base-S", "S", "size S (MiniMA-2-3B analogue): the base recipe and tokens"),
    _cpt("cpt-pi-L", "pi", 4.0, CPT_4X, parent="base-L", size="L"),
    *[_cpt(f"cpt-{m}", m, 4.0, CPT_4X) for m in methods.named(paper=True)],
    _cpt("cpt-pi-S", "pi", 4.0, CPT_4X, parent="base-S", size="S"),
    _cpt("ntk8-short", "ntk", 8.0, SHORT_8X, purpose="finding 3: NTK (8x base) CPT at L0"),
    _cpt("ntk8-long", "ntk", 8.0, LONG_8X, purpose="finding 3: NTK (8x base) CPT at 8 L0, same tokens"),
]}


def gate(model, spec: CheckpointSpec, per_depth: int = GATE_PER_DEPTH, tokenizer=None) -> list[dict]:
    """Retrieval on the evaluation's needles (module docstring) at L0 and at the training length, with Wilson CIs."""
    rows = []
    for length in spec.gate_lengths:
        hits, n = gate_hits(model, length, per_depth, tokenizer)
        estimate = proportion_interval(hits, n)
        rows.append({"length": length, "hits": hits, "needles": n, "rate": round(estimate.value, 4),
                     "ci_low": round(estimate.low, 4), "ci_high": round(estimate.high, 4),
                     "passed": bool(estimate.low >= RETRIEVAL_GATE), "needle_format": GATE_FORMAT,
                     "split": GATE_SPLIT, "depths": len(GATE_DEPTHS)})
    return rows


@torch.no_grad()
def gate_hits(model, length: int, per_depth: int = GATE_PER_DEPTH, tokenizer=None) -> tuple[int, int]:
    """(passed, needles) at ``length``: ``per_depth`` prompts per depth of ``GATE_DEPTHS``, one batch
    per depth, greedy decoding of the value's tokens + 1; passed when the text starts with the value."""
    tokenizer = tokenizer or ByteTokenizer()
    fmt = FORMATS[GATE_FORMAT]
    hay = tokenizer.encode("".join(d.text for d in corpus.stdlib_documents(GATE_SPLIT)), add_special_tokens=False)
    answer_len = len(tokenizer.encode(fmt.value(__import__("random").Random(0)), add_special_tokens=False))
    device = next(model.parameters()).device
    hits = n = 0
    for depth in GATE_DEPTHS:
        prompts = cell_prompts(tokenizer, hay, length, depth, per_depth, GATE_SEED, fmt)
        ids = torch.tensor([p.input_ids for p in prompts], device=device)
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=answer_len + 1,
                             pad_token_id=getattr(tokenizer, "pad_token_id", None))
        hits += sum(tokenizer.decode(row[length:].tolist()).strip().startswith(p.value) for row, p in zip(out, prompts))
        n += len(prompts)
    return hits, n


def _scaled(recipe: Recipe, scale: float) -> Recipe:
    stages = [replace(s, steps=max(1, round(s.steps * scale))) for s in recipe.stages]
    return replace(recipe, stages=stages, warmup_steps=min(recipe.warmup_steps, max(1, round(recipe.warmup_steps * scale))),
                   eval_every=max(1, round(recipe.eval_every * scale)))


def train_one(name: str, seed: int = 0, scale: float = 1.0, spec: CheckpointSpec | None = None,
              directory=None) -> dict:
    """Train checkpoint ``name`` (its parent must exist), save it, return its manifest.

    ``scale`` < 1 shortens every stage (a smoke run to check the pipeline end to end); such
    checkpoints skip the retrieval gate and say so in their manifest. ``spec`` (default
    ``SPECS[name]``) and ``directory`` (default ``data/models/<name>``) train a checkpoint
    that is not in the table, elsewhere (the finding-3 chapter's on-demand retraining).
    """
    spec = spec or SPECS[name]
    if scale != 1.0:
        spec = replace(spec, recipe=_scaled(spec.recipe, scale))
    seed_everything(seed, threads=1)
    if spec.parent:
        model = load_organism(organism_dir(spec.parent)).model
        model.train()
    else:
        config = SIZES[spec.size]
        if spec.pretrained_base != config.rope_base:
            config = type(config)(**{**config.as_dict(), "rope_base": spec.pretrained_base,
                                     "train_length": spec.pretrained_length})
        model = organism.build(config, seed=seed)
    extensions.record_pretrained(model, spec.pretrained_base, spec.pretrained_length)
    extensions.apply(model, spec.method, spec.factor, **spec.extra)
    eval_length = spec.recipe.stages[-1].length
    log = train(model, spec.recipe, eval_length=eval_length, desc=name)
    gate_rows = gate(model, spec, per_depth=GATE_PER_DEPTH if scale == 1.0 else 2)
    final = {"retrieval_at_L0": gate_rows[0]["rate"], "dev_loss_at_L0": dev_loss(model, L0, n=32)}
    manifest = {
        "name": name,
        "purpose": spec.purpose,
        "parent": spec.parent,
        "size": spec.size,
        "organism": SIZES[spec.size].as_dict() | {"rope_base": spec.pretrained_base,
                                                   "train_length": spec.pretrained_length},
        "rope": {
            "method": spec.method,
            "factor": spec.factor,
            "extra": spec.extra,
            "pretrained_base": spec.pretrained_base,
            "pretrained_length": spec.pretrained_length,
            "rope_parameters": dict(model.config.rope_parameters),
            "max_position_embeddings": model.config.max_position_embeddings,
        },
        "recipe": spec.recipe.as_dict(),
        "tokens_seen": log.tokens_seen,
        "tokens_by_length": {str(k): v for k, v in spec.recipe.tokens_by_length.items()},
        "trained_length": spec.trained_length,
        "gate": gate_rows if scale == 1.0 else [],
        "gate_rule": GATE_RULE,
        "known_miss": KNOWN_MISSES.get(name),
        "seed": seed,
        "threads": 1,
        "corpus": {k: v for k, v in corpus.corpus_fingerprint().items() if k.endswith(("sha256", "version"))},
        "curve": log.curve,
        "final": {k: round(v, 4) for k, v in final.items()},
        "wall_seconds": log.wall_seconds,
        "smoke_scale": scale,
        "torch": __import__("torch").__version__,
        "machine": platform.machine(),
    }
    return save_organism(model, directory or organism_dir(name), manifest)


def gate_failures(manifests: dict[str, dict]) -> list[str]:
    """One line per full-scale checkpoint that missed its gate and is not a known miss."""
    lines = []
    for name, manifest in manifests.items():
        if manifest.get("smoke_scale", 1.0) != 1.0 or gate_passed(manifest) or name in KNOWN_MISSES:
            continue
        missed = [f"{r['rate']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] at {r['length']}"
                  for r in manifest["gate"] if not r["passed"]]
        lines.append(f"{name}: retrieval {'; '.join(missed)} (gate: 95% lower bound >= {RETRIEVAL_GATE})")
    return lines
