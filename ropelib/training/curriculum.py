"""Training the organism: a length curriculum over a mixture of language modelling and
needle retrieval, with the retrieval check that gates a checkpoint.

Why a curriculum: at 256 tokens from scratch the retrieval (induction) circuit did not
form in ~10M tokens; at 64 tokens it forms quickly and then carries over to longer
inputs. Each :class:`Stage` trains at one length; a recipe is a list of stages. Every
batch mixes three kinds of sequence from the training split, loss on every next-token
prediction: LM chunks, needle prompts (haystack from the same split), and "repeats" (a
segment followed by itself). Repeats were added because needle prompts alone carry only
5 copyable tokens each. History (organisms v1-v2, 2026-11, M size, batch 32, needles at
uniformly random token positions; not re-measured since): at 64 tokens from scratch the
retrieval circuit had not formed after 1500 steps; at 32 tokens with 100% needles it
formed after ~800-1100 steps (exact match of the first digit 0.1 -> 0.9). So the first
stage is short, needle-heavy and long. Organism v3 (manifests' ``curve``): after the
32-token stage, base (RoPE base 663) formed it ~500 steps into the 64-token stage; with
native-4x's base (2,774) a scratch run (2026-12-02) needed 800-1,000 steps there. (An earlier
recipe that inserted needles only at line boundaries "learned" retrieval at 64 tokens:
short haystacks rarely have a line break, so the needle sat at position 1 and the model
learned to copy from there, which failed at every longer length.)

Mixed needle lengths (organism v3): with probability ``Stage.short_needles`` a needle
prompt is shorter than the stage length (uniform in [``MIN_NEEDLE_LENGTH``, length]) and
the rest of the row is a new document (BOS + text). Without it, checkpoints trained last
at 4 L0 lost retrieval at L0 (organism v2, 2026-11: plain-RoPE CPT 0.69, the long-trained
reference 0.16 at L0): every needle they had seen was asked ~1000 tokens after the BOS.

Learning rate: linear warmup, then cosine to ``min_lr_ratio`` of the peak, over the whole
recipe, unless a stage sets ``restart_lr``: a new warmup + cosine starts there (``lr_schedule``).
native-4x restarts when it jumps from its short phase to 4 L0: under one schedule over every
stage the circuit formed in the short phase faded at longer lengths (scratch runs, 2026-12-02/03).

Continual pretraining (CPT) is the same loop started from a parent checkpoint after
``extensions.apply``. Every evaluation during training and every gate reads the ``dev``
split; the findings read ``test``. Exact-match retrieval is measured teacher-forced, which equals
greedy decoding's exact match (greedy fails at the first wrong digit, and so does this).
Not here: which checkpoints the book needs (``recipes``), saving/loading (``models``).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ropelib.text.corpus import stdlib_documents
from ropelib.text.haystack import NeedleFormat, answer_ids, build_prompt
from ropelib.text.tokenizer import ByteTokenizer

TOKENIZER = ByteTokenizer()
MIN_NEEDLE_LENGTH = 64


@dataclass(frozen=True)
class Stage:
    length: int  # tokens per training sequence
    steps: int
    batch_size: int
    needle_fraction: float | None = None  # overrides the recipe's mixture for this stage
    short_needles: float = 0.0  # share of needle prompts shorter than `length` (mixed lengths)
    restart_lr: float | None = None  # a new warmup + cosine schedule starts here, peaking at this lr


@dataclass
class Recipe:
    stages: list[Stage]
    lr: float = 1e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    needle_fraction: float = 0.5
    repeat_fraction: float = 0.1
    weight_decay: float = 0.01
    eval_every: int = 100
    seed: int = 0

    @property
    def tokens(self) -> int:
        return sum(s.length * s.steps * s.batch_size for s in self.stages)

    @property
    def tokens_by_length(self) -> dict[int, int]:
        """{length: tokens trained at it}, shortest first (a manifest's ``tokens_by_length``)."""
        tokens: dict[int, int] = {}
        for s in sorted(self.stages, key=lambda stage: stage.length):
            tokens[s.length] = tokens.get(s.length, 0) + s.length * s.steps * s.batch_size
        return tokens

    def as_dict(self) -> dict:
        return {**asdict(self), "tokens": self.tokens}


@lru_cache(maxsize=2)
def token_stream(split: str) -> np.ndarray:
    """All documents of a split, concatenated, as byte ids (uint8)."""
    docs = stdlib_documents(split)
    return np.frombuffer(b"".join(d.text.encode("utf-8") for d in docs), dtype=np.uint8)


class BatchSampler:
    """Seeded mixture of LM chunks and needle prompts, each ``length + 1`` tokens."""

    def __init__(self, split: str, seed: int, needle_fraction: float, repeat_fraction: float = 0.0,
                 fmt: NeedleFormat = NeedleFormat()):
        if needle_fraction + repeat_fraction > 1:
            raise ValueError("needle_fraction + repeat_fraction must be <= 1")
        self.stream = token_stream(split)
        self.rng = random.Random(seed)
        self.needle_fraction = needle_fraction
        self.repeat_fraction = repeat_fraction
        self.short_needles = 0.0
        self.fmt = fmt

    def _chunk(self, n: int) -> list[int]:
        start = self.rng.randrange(0, len(self.stream) - n)
        return self.stream[start:start + n].tolist()  # raw bytes: a "§" in the corpus stays two byte tokens

    def lm_example(self, length: int) -> list[int]:
        return [TOKENIZER.bos_token_id] + self._chunk(length)

    def needle_example(self, length: int) -> list[int]:
        """A needle prompt + answer; shorter ones (``short_needles``) are followed by a new document."""
        value = self.fmt.value(self.rng)
        answer = answer_ids(TOKENIZER, value)
        prompt_length = length
        if length > MIN_NEEDLE_LENGTH and self.rng.random() < self.short_needles:
            prompt_length = self.rng.randint(MIN_NEEDLE_LENGTH, length)
        prompt = build_prompt(TOKENIZER, self._chunk(prompt_length + 1), prompt_length + 1 - len(answer),
                              self.rng.uniform(0, 100), value, self.fmt, at_line_boundary=False)
        row = prompt.input_ids + answer
        if len(row) < length + 1:
            row += [TOKENIZER.bos_token_id] + self._chunk(length - len(row))
        return row

    def repeat_example(self, length: int) -> list[int]:
        """A text segment followed by itself: the plainest signal for an induction (copy) circuit."""
        half = length // 2
        segment = self._chunk(half + 1)
        return ([TOKENIZER.bos_token_id] + segment + segment)[: length + 1]

    def example(self, length: int) -> list[int]:
        draw = self.rng.random()
        if draw < self.needle_fraction:
            return self.needle_example(length)
        if draw < self.needle_fraction + self.repeat_fraction:
            return self.repeat_example(length)
        return self.lm_example(length)

    def batch(self, length: int, batch_size: int) -> torch.Tensor:
        rows = [self.example(length) for _ in range(batch_size)]
        return torch.tensor(rows, dtype=torch.long)  # (batch, length + 1)


def lm_loss(model, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats/token) of ``tokens`` (batch, length + 1)."""
    logits = model(tokens[:, :-1]).logits  # (batch, length, vocab)
    return F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())


@torch.no_grad()
def dev_loss(model, length: int, n: int = 16, seed: int = 1234, split: str = "dev") -> float:
    sampler = BatchSampler(split, seed, needle_fraction=0.0)
    return float(lm_loss(model, sampler.batch(length, n)))


@torch.no_grad()
def retrieval_hits(model, length: int, n: int = 32, seed: int = 4321, split: str = "dev",
                   batch_size: int = 16) -> int:
    """Needles (5-digit values) retrieved exactly, teacher-forced, at ``length`` tokens, out of ``n``."""
    sampler = BatchSampler(split, seed, needle_fraction=1.0)
    n_answer, hits = sampler.fmt.digits, 0
    for start in range(0, n, batch_size):
        tokens = sampler.batch(length, min(batch_size, n - start))  # (batch, length + 1)
        logits = model(tokens[:, :-1]).logits[:, -n_answer:]  # predictions for the answer tokens
        hits += int((logits.argmax(-1) == tokens[:, -n_answer:]).all(-1).sum())
    return hits


def retrieval_accuracy(model, length: int, n: int = 32, seed: int = 4321, split: str = "dev") -> float:
    """Exact-match rate of the needle value at ``length`` tokens (see :func:`retrieval_hits`)."""
    return retrieval_hits(model, length, n, seed, split) / n


def _lr_at(step: int, total: int, recipe: Recipe, peak: float | None = None) -> float:
    """Linear warmup to ``peak`` (default ``recipe.lr``), then cosine down to ``min_lr_ratio * peak``."""
    peak = recipe.lr if peak is None else peak
    if step < recipe.warmup_steps:
        return peak * (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, total - recipe.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return peak * (recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * cosine)


def lr_schedule(recipe: Recipe) -> list[float]:
    """The learning rate of every step. One warmup + cosine over the whole recipe, restarted at
    each stage that sets ``restart_lr`` (a later phase, e.g. longer sequences after a
    curriculum, gets its own schedule as a continual pretraining would)."""
    segments = []  # [steps, peak lr] per schedule
    for stage in recipe.stages:
        if stage.restart_lr is not None or not segments:
            segments.append([0, recipe.lr if stage.restart_lr is None else stage.restart_lr])
        segments[-1][0] += stage.steps
    return [_lr_at(step, steps, recipe, peak) for steps, peak in segments for step in range(steps)]


@dataclass
class TrainLog:
    curve: list[dict] = field(default_factory=list)
    tokens_seen: int = 0
    wall_seconds: float = 0.0


def optimizer_step(model, optimizer, loss, max_grad_norm: float = 1.0) -> None:
    """One update: clear the gradients, backpropagate ``loss``, clip their global norm, step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()


def train(model, recipe: Recipe, eval_length: int, desc: str = "train", log_every: int | None = None) -> TrainLog:
    """Run ``recipe`` on ``model`` in place; log held-out loss and retrieval at ``eval_length``."""
    torch.manual_seed(recipe.seed)
    sampler = BatchSampler("train", recipe.seed, recipe.needle_fraction, recipe.repeat_fraction)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay,
                                  betas=(0.9, 0.95))
    schedule = lr_schedule(recipe)
    total = len(schedule)
    log, step, start = TrainLog(), 0, time.perf_counter()
    bar = tqdm(total=total, desc=desc, mininterval=5, disable=None)
    for stage in recipe.stages:
        sampler.needle_fraction = recipe.needle_fraction if stage.needle_fraction is None else stage.needle_fraction
        sampler.repeat_fraction = min(recipe.repeat_fraction, 1 - sampler.needle_fraction)
        sampler.short_needles = stage.short_needles
        for _ in range(stage.steps):
            model.train()
            for group in optimizer.param_groups:
                group["lr"] = schedule[step]
            loss = lm_loss(model, sampler.batch(stage.length, stage.batch_size))
            optimizer_step(model, optimizer, loss)
            step += 1
            log.tokens_seen += stage.length * stage.batch_size
            bar.update(1)
            if step % recipe.eval_every == 0 or step == total:
                model.eval()
                point = {
                    "step": step,
                    "tokens": log.tokens_seen,
                    "stage_length": stage.length,
                    "train_loss": round(float(loss.detach()), 4),
                    "dev_loss": round(dev_loss(model, eval_length), 4),
                    "retrieval": round(retrieval_accuracy(model, eval_length), 4),
                    "retrieval_at_stage_length": round(retrieval_accuracy(model, stage.length), 4),
                    "seconds": round(time.perf_counter() - start, 1),
                }
                log.curve.append(point)
                bar.set_postfix(loss=point["dev_loss"], retrieval=point["retrieval"])
                if bar.disable:  # no live bar (a log file): one line per evaluation instead
                    print(f"{desc}: {point}", flush=True)
    bar.close()
    model.eval()
    log.wall_seconds = round(time.perf_counter() - start, 1)
    return log
