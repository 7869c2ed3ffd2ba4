"""Finding 3 (the paper's Figs. 4e-f): what is compared, checked before any work, and the retraining.

The comparison: the base model with the NTK switch and no training ("the original"), an NTK
continual pretraining (CPT) at a short length and one at a long length with the same tokens
(the organism's ``ntk8-short`` at L0 and ``ntk8-long`` at 8 L0).

  resolve_roles(model, short_model, long_model, ...)  -> Roles: base "ntk:<model>" when ``model`` is
                      set (reference "rope:<model>"), the pair from ``short_model`` / ``long_model``
                      (both or neither; without them only the base sweep runs); otherwise the
                      ``*_variant`` parameters. L0 comes from the base (``lineup.geometry``).
  cpt_variant(source) "ntk:" for an organism CPT, "rope:" (as saved) for a Hugging Face one
  check_setup(...)    lengths, organism training lengths (manifest ``trained_length``), retraining
  grid_lengths, setup_line, marks   the grid (default RATIOS x L0), the page's line, figure marks
  retrain             the pair retrained from ``base`` into a directory (never data/models), with
                      ``recipes.equal_token_recipes`` (the committed pair's rule)

Not here: the estimands and glance rows (``cpt_length.verdicts``, graded by ``findings.claims``),
running the models (``findings.sweep``), plots.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ropelib.models import lineup, variants
from ropelib.training import recipes
from ropelib.findings import sweep
from ropelib.models.organism import L0
from ropelib.training.recipes import CPT_WARMUP, equal_token_recipes
from ropelib.tasks.common import check_lengths
from ropelib.training.curriculum import Stage

CHAPTER = "cpt-length"


# --- who is compared ------------------------------------------------------------------


@dataclass
class Roles:
    base: variants.Variant
    short: variants.Variant | None
    long: variants.Variant | None
    references: list = field(default_factory=list)
    pretrained_length: int = L0

    @property
    def evaluated(self) -> list:
        """Every variant, in evaluation (and figure) order: references, base, short, long."""
        return [*self.references, self.base, *(v for v in (self.short, self.long) if v is not None)]

    @property
    def has_pair(self) -> bool:
        return self.short is not None and self.long is not None


def cpt_variant(source: str) -> str:
    """How a CPT checkpoint runs: "ntk:" for an organism one (its manifest records the NTK switch
    it was trained with), "rope:" for a Hugging Face one, whose config.json already holds the
    base it was trained with (the NTK switch on top would raise the base twice)."""
    return f"{'ntk' if sweep.manifest_of(source) else 'rope'}:{source}"


def resolve_roles(model: str, short_model: str, long_model: str, base_variant: str, short_variant: str,
                  long_variant: str, reference_variants: list[str]) -> Roles:
    """The chapter's line-up from its parameters, validated before any model is loaded.

    ``model`` set: base "ntk:<model>", reference "rope:<model>", the pair from ``short_model``
    / ``long_model`` (both or neither). ``model`` empty: the ``*_variant`` parameters, with
    ``short_model`` / ``long_model`` replacing the pair when given.
    """
    if bool(short_model) != bool(long_model):
        raise ValueError(f"short_model={short_model!r}, long_model={long_model!r}: give both CPT checkpoints or neither")
    if model:
        base_variant, reference_variants = f"ntk:{model}", [f"rope:{model}"]
        short_variant = long_variant = ""
    if short_model:
        short_variant, long_variant = cpt_variant(short_model), cpt_variant(long_model)
    specs = [*reference_variants, base_variant, *(v for v in (short_variant, long_variant) if v)]
    parsed = variants.parse(specs, "the chapter's variants")
    pair = parsed[len(reference_variants) + 1:]
    short, long = pair if pair else (None, None)
    return Roles(parsed[len(reference_variants)], short, long, parsed[:len(reference_variants)],
                 lineup.geometry(parsed[len(reference_variants)].source).pretrained_length)


def cpt_length(source: str) -> int | None:
    """Training length of an organism checkpoint (its manifest's ``trained_length``); None for others."""
    manifest = sweep.manifest_of(source)
    if not manifest:
        return None
    return int(manifest.get("trained_length") or max(s["length"] for s in manifest["recipe"]["stages"]))


def check_cpt_length(source: str, expected: int, name: str) -> None:
    """Fail before any work when an organism checkpoint was not trained at the length the chapter says."""
    found = cpt_length(source)
    if found is not None and found != expected:
        raise ValueError(f"{name}={expected} but checkpoint {source!r} was continually pretrained at {found} tokens; "
                         f"set {name}={found} or retrain=True")


RATIOS = (1, 2, 4, 8, 16)  # default grid: these multiples of L0 (the organism: 256 ... 4096)


def grid_lengths(lengths: list[int], pretrained_length: int) -> list[int]:
    """The grid's lengths, sorted: as given, or ``RATIOS`` x L0 when empty."""
    return check_lengths(sorted(lengths) or [r * pretrained_length for r in RATIOS])


def check_setup(roles: Roles, lengths: list[int], short_length: int, long_length: int, retrain: bool,
                train_tokens: int, factor: float) -> None:
    """Every check that needs no model, before any work (one-line ValueErrors).

    The pair: short_length < long_length; organism checkpoints trained at exactly those
    lengths (their manifests' ``trained_length``) with the NTK factor the page applies
    (re-applying another factor would evaluate a model it was not trained as); at least two
    grid lengths >= short_length (a slope) and one above it. Retraining starts from the
    organism's ``base``, so ``model`` must be empty then.
    """
    if retrain and roles.base.source != "base":
        raise ValueError(f"retrain=True trains the organism's pair from 'base'; base is {roles.base.source!r} "
                         "(leave model empty, or give short_model and long_model instead)")
    if not (retrain or roles.has_pair):
        return
    if not short_length < long_length:
        raise ValueError(f"short_length={short_length} must be below long_length={long_length}")
    if retrain:
        equal_token_recipes(short_length, long_length, train_tokens)  # bad lengths fail here
    else:
        check_cpt_length(roles.short.source, short_length, "short_length")
        check_cpt_length(roles.long.source, long_length, "long_length")
        for variant in (roles.short, roles.long):
            rope = sweep.manifest_of(variant.source).get("rope", {})
            if rope and (rope["method"], float(rope["factor"])) != ("ntk", float(factor)):
                raise ValueError(f"factor={factor:g} but {variant.source!r} was trained with {rope['method']} "
                                 f"x{rope['factor']:g}; set factor={rope['factor']:g}")
    if sum(length >= short_length for length in lengths) < 2 or max(lengths) <= short_length:
        raise ValueError(f"lengths={lengths}: need at least two lengths >= short_length={short_length}, "
                         "one of them above it (the slope against ln L)")


def setup_line(roles: Roles, short_length: int, long_length: int, factor: float) -> str:
    """What the page compares, in one line (says plainly when the pair is missing)."""
    head = f"base {roles.base.label}, L0 = {roles.pretrained_length} (from its manifest or config.json), NTK s = {factor:g}"
    if not roles.has_pair:
        return (f"{head}; no short/long CPT pair given: the base sweep only, the short-vs-long comparison is "
                "skipped and every finding-3 claim is not testable (nothing to compare)")
    return f"{head}; short CPT {roles.short.label} at {short_length}, long CPT {roles.long.label} at {long_length}"


def marks(roles: Roles, short_length: int, long_length: int) -> dict[str, int]:
    """Vertical lines for the figures: L0, and the CPT lengths when there is a pair."""
    lines = {f"L0 = {roles.pretrained_length}": roles.pretrained_length}
    if roles.has_pair:
        if short_length != roles.pretrained_length:
            lines[f"short CPT = {short_length}"] = short_length
        lines[f"long CPT = {long_length}"] = long_length
    return lines


# --- retraining the pair -------------------------------------------------------------


def retrain(short_length: int, long_length: int, train_tokens: int, factor: float, directory: Path,
            seed: int = 0, warmup: Stage = CPT_WARMUP) -> tuple[str, str]:
    """Train the short and the long NTK CPT of ``base`` into ``directory``; returns the two "ntk:path" variants.

    Same hyperparameters as the committed ``ntk8-short`` / ``ntk8-long`` (``recipes.SPECS``),
    stages from ``recipes.equal_token_recipes``, NTK base for ``factor``. Slow (minutes of CPU
    each); writes only under ``directory``, never ``data/models``.
    """
    short_stages, long_stages = equal_token_recipes(short_length, long_length, train_tokens, warmup)
    out = []
    for role, stages in (("short", short_stages), ("long", long_stages)):
        template = recipes.SPECS[f"ntk8-{role}"]
        name = f"ntk{factor:g}-{role}-{stages[-1].length}"
        spec = replace(template, name=name, factor=float(factor), recipe=replace(template.recipe, stages=list(stages)),
                       purpose=f"finding 3 retrained: NTK ({factor:g}x) CPT at {stages[-1].length}, "
                               f"{sum(s.length * s.steps * s.batch_size for s in stages)} tokens")
        recipes.train_one(name, seed=seed, spec=spec, directory=Path(directory) / name)
        out.append(f"ntk:{Path(directory) / name}")
    return out[0], out[1]
