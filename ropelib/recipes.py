"""The checkpoints the book needs, how each is trained, and ``train_all`` (``make models``).

| name           | paper analogue                                   | from          |
|----------------|--------------------------------------------------|---------------|
| base           | LLaMA-2-7B (pretrained at L0 with plain RoPE)    | scratch       |
| base-S, base-L | MiniMA-2-3B, LLaMA-2-13B (appendix sizes)        | scratch       |
| native-4x      | LLaMA-3 (trained natively on a longer context)   | scratch, 4 L0 |
| cpt-{rope,pi,ntk,yarn} | CPT of LLaMA-2 at 4 L0 with each method  | base          |
| cpt-pi-S, cpt-pi-L     | PI CPT at the other sizes (Figs. 5, 7)   | base-S/L      |
| ntk8-short, ntk8-long  | finding 3: NTK CPT at L0 vs 8 L0, same tokens | base     |

Every run is seeded and single-threaded (deterministic on a given machine); ``train_all``
runs independent checkpoints in parallel processes, parents first. If ``base`` retrieves
fewer than 90% of needles at L0 the run fails loudly: the findings need a model that can
retrieve within its training length. The other sizes record their retrieval, ungated.
"""

from __future__ import annotations

import platform
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace

from ropelib import corpus, extensions, organism
from ropelib.determinism import seed_everything
from ropelib.geometry import mirror_base
from ropelib.models import load_organism, organism_dir, save_organism
from ropelib.organism import HEAD_DIM, L0, SIZES
from ropelib.training import Recipe, Stage, train

RETRIEVAL_GATE = 0.9
# short, needle-heavy stages until retrieval forms (~1000 steps at 32 tokens, see training.py)
CURRICULUM = (Stage(32, 2000, 32, needle_fraction=0.8), Stage(64, 600, 32, needle_fraction=0.6),
              Stage(128, 400, 16))


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
    gate: float | None = None  # minimum retrieval at L0, checked after training


def _base(name, size, main_steps, purpose, gate=None):
    return CheckpointSpec(name, purpose, Recipe(stages=[*CURRICULUM, Stage(L0, main_steps, 8)]), size=size, gate=gate)


def _cpt(name, method, factor, stages, parent="base", size="M", purpose=""):
    return CheckpointSpec(name, purpose or f"{method} continual pretraining of {parent}",
                          Recipe(stages=list(stages), lr=5e-4, warmup_steps=30, eval_every=50),
                          size=size, parent=parent, method=method, factor=factor)


# Every CPT starts with this short, needle-heavy stage under the new positions. Measured on
# the first organism (head dim 32): without it, 300 steps at 4 L0 left PI with 6% and plain
# RoPE with 12% retrieval even at L0 (needles re-formed at 1024 only for NTK/YaRN); with it,
# PI recovered to 94% at L0 and 78% at 1024; a lower learning rate alone (2e-4) did not help
# (3%). Same stage for every CPT, so the methods still see the same tokens.
CPT_WARMUP = Stage(L0 // 2, 200, 16, needle_fraction=0.8)  # 409,600 tokens
CPT_4X = (CPT_WARMUP, Stage(4 * L0, 400, 4))  # then 1.6M tokens at 4 L0
# finding 3: after the warm-up, the same 2,457,600 tokens at L0 or (after a short ramp) at 8 L0
SHORT_8X = (CPT_WARMUP, Stage(L0, 600, 16))
LONG_8X = (CPT_WARMUP, Stage(4 * L0, 200, 4), Stage(8 * L0, 400, 2))

SPECS: dict[str, CheckpointSpec] = {s.name: s for s in [
    _base("base", "M", 3000, "the organism's LLaMA-2: plain RoPE at L0", gate=RETRIEVAL_GATE),
    _base("base-L", "L", 1600, "size L (LLaMA-2-13B analogue)"),
    CheckpointSpec("native-4x", "the organism's LLaMA-3: plain RoPE trained from scratch at 4 L0",
                   Recipe(stages=[*CURRICULUM, Stage(L0, 3000, 8), Stage(4 * L0, 400, 4)]),
                   pretrained_base=mirror_base(HEAD_DIM, 4 * L0), pretrained_length=4 * L0),
    _base("base-S", "S", 3000, "size S (MiniMA-2-3B analogue)"),
    *[_cpt(f"cpt-{m}", m, 4.0, CPT_4X) for m in ("rope", "pi", "ntk", "yarn")],
    _cpt("cpt-pi-S", "pi", 4.0, CPT_4X, parent="base-S", size="S"),
    _cpt("cpt-pi-L", "pi", 4.0, CPT_4X, parent="base-L", size="L"),
    _cpt("ntk8-short", "ntk", 8.0, SHORT_8X, purpose="finding 3: NTK (8x base) CPT at L0"),
    _cpt("ntk8-long", "ntk", 8.0, LONG_8X, purpose="finding 3: NTK (8x base) CPT at 8 L0, same tokens"),
]}


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
        spec = replace(spec, recipe=_scaled(spec.recipe, scale), gate=None)
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
    from ropelib.training import retrieval_accuracy, heldout_loss

    final = {"retrieval_at_L0": retrieval_accuracy(model, L0, n=64), "heldout_loss_at_L0": heldout_loss(model, L0, n=32)}
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
    if spec.gate is not None and final["retrieval_at_L0"] < spec.gate:
        raise RuntimeError(f"{name}: retrieval at L0 = {final['retrieval_at_L0']:.2f} < gate {spec.gate}; "
                           "the organism cannot retrieve within its training length, findings would be meaningless")
    return save_organism(model, directory or organism_dir(name), manifest)


def train_all(names: list[str] | None = None, jobs: int = 2, scale: float = 1.0) -> None:
    """Retrain ``names`` (default: all), ``jobs`` processes at a time, each after its parent."""
    names = names or list(SPECS)
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise ValueError(f"unknown checkpoint(s) {unknown}; expected some of {', '.join(SPECS)}")
    corpus.build_manifest()
    start, pending, running, done = time.perf_counter(), list(names), {}, set()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        def submit_ready():
            for name in list(pending):
                parent = SPECS[name].parent
                if parent is None or parent not in names or parent in done:
                    running[pool.submit(train_one, name, 0, scale)] = name
                    pending.remove(name)

        submit_ready()
        while running:
            future = next(as_completed(running))
            name = running.pop(future)
            manifest = future.result()  # re-raises a failed gate: the whole run fails
            done.add(name)
            print(f"{name}: {manifest['final']} in {manifest['wall_seconds']} s", flush=True)
            submit_ready()
    print(f"all checkpoints trained in {time.perf_counter() - start:.0f} s")
