"""Needle-in-a-haystack prompts, shared by training and evaluation.

Design after Fu et al. (2024): a sentence carrying a random 5-digit value is inserted,
at a line boundary, at a given depth (0-100%) of a haystack of held-out text; the prompt
ends with a question whose answer is the value, and the model continues greedily.

Layout of one prompt of ``length`` tokens (one BOS, at the front, never mid-sequence):

    [BOS] haystack[:k] NEEDLE haystack[k:n] QUESTION   -> model should emit VALUE

The default ("compact") wording is a minimal Python comment, ``# §12345``, and the
question is ``# §``: the organism's haystack is Python source, and its first curriculum
stage is only 32 tokens long, so every token of format costs haystack. ``§`` (a single
token in the organism's tokenizer) marks where the value starts. As in Fu et al.'s
wording, the question ends with the very tokens that precede the value in the needle,
which is what a copy (induction) circuit matches on. The "sentence" format is Fu et al.'s
wording, for real checkpoints.
Any tokenizer with ``encode``/``decode`` works.
Not here: running a model (``tasks.needle``) or building training batches (``training``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class NeedleFormat:
    needle: str = "# §{value}\n"
    question: str = "\n# §"
    digits: int = 5

    def value(self, rng: random.Random) -> str:
        return str(rng.randrange(10 ** (self.digits - 1), 10**self.digits))


# "compact" fits the organism's 64-token curriculum stage; "sentence" is Fu et al.'s wording,
# for real checkpoints that follow natural-language questions.
FORMATS = {
    "compact": NeedleFormat(),
    "sentence": NeedleFormat(
        needle="The special magic number is: {value}.\n",
        question="\nWhat is the special magic number mentioned in the text above? The special magic number is: ",
    ),
}


@dataclass
class NeedlePrompt:
    input_ids: list[int]  # BOS + haystack with needle + question, exactly `length` tokens
    value: str  # the expected answer
    needle_start: int  # token index of the needle sentence
    needle_end: int  # one past its last token
    value_start: int  # token index where the value's tokens begin
    depth: float  # requested depth in percent
    actual_depth: float  # where the needle landed, in percent of the haystack


def _line_starts(tokenizer, ids: list[int]) -> list[int]:
    """Token indices that begin a line (index 0 and every token after one ending in a newline)."""
    starts = [0]
    for i, tok in enumerate(ids[:-1]):
        if tokenizer.decode([tok]).endswith("\n"):
            starts.append(i + 1)
    return starts


def build_prompt(tokenizer, haystack_ids: list[int], length: int, depth: float, value: str,
                 fmt: NeedleFormat = NeedleFormat(), at_line_boundary: bool = True) -> NeedlePrompt:
    """A prompt of exactly ``length`` tokens with the needle at ``depth`` percent.

    ``haystack_ids`` must be long enough; it is cut to fit, and the needle is placed at
    the last line boundary at or before ``depth`` percent of the kept haystack (Fu et al.),
    or exactly at that token when ``at_line_boundary`` is False. Training uses the latter:
    in short sequences a line boundary is rare, so the needle would almost always land at
    the very start and the model would learn "copy from the beginning" instead of retrieval.
    """
    if not 0 <= depth <= 100:
        raise ValueError(f"depth={depth!r} must be in [0, 100] percent")
    needle_ids = list(tokenizer.encode(fmt.needle.format(value=value), add_special_tokens=False))
    prefix_ids = list(tokenizer.encode(fmt.needle.split("{value}")[0], add_special_tokens=False))
    question_ids = list(tokenizer.encode(fmt.question, add_special_tokens=False))
    bos = getattr(tokenizer, "bos_token_id", None)
    n_hay = length - len(needle_ids) - len(question_ids) - (bos is not None)
    if n_hay < 1:
        raise ValueError(f"length={length} is too short for the needle and question ({length - n_hay} tokens)")
    if len(haystack_ids) < n_hay:
        raise ValueError(f"haystack has {len(haystack_ids)} tokens, {n_hay} needed for length={length}")
    hay = list(haystack_ids[:n_hay])
    target = round(depth / 100 * n_hay)
    if at_line_boundary:
        starts = [s for s in _line_starts(tokenizer, hay) if s <= target] + ([n_hay] if depth == 100 else [])
        k = max(starts)
    else:
        k = target
    head = [bos] if bos is not None else []
    ids = head + hay[:k] + needle_ids + hay[k:] + question_ids
    needle_start = len(head) + k
    return NeedlePrompt(
        input_ids=ids,
        value=value,
        needle_start=needle_start,
        needle_end=needle_start + len(needle_ids),
        value_start=needle_start + len(prefix_ids),
        depth=float(depth),
        actual_depth=100.0 * k / n_hay,
    )


def cell_prompts(tokenizer, haystack_ids: list[int], length: int, depth: float, n: int, seed: int,
                 fmt: NeedleFormat = NeedleFormat()) -> list[NeedlePrompt]:
    """The ``n`` prompts of one (length, depth) cell of a needle grid: each its own random value
    and haystack offset, seeded by (seed, length, depth), needle at a line boundary (Fu et al.).

    The one place a cell's prompts are drawn: the evaluation (``tasks.needle.needle_grid``, test
    split) and the retrieval gate (``training.recipes.gate``, dev split) build the same format.
    """
    rng = random.Random(f"{seed}-{length}-{depth}")
    prompts = []
    for _ in range(n):
        start = rng.randrange(0, len(haystack_ids) - length)
        prompts.append(build_prompt(tokenizer, haystack_ids[start:start + length], length, depth, fmt.value(rng), fmt))
    return prompts


def shared_prompts(tokenizer, haystack_ids: list[int], length: int, depth: float, n: int, seed: int,
                   fmt: NeedleFormat = NeedleFormat()) -> tuple[list[NeedlePrompt], NeedlePrompt]:
    """The ``n`` prompts of one cell on ONE haystack (one offset), each with its own random value, and
    a control prompt on another offset (never run: the "found in the context by chance" text).

    Unlike :func:`cell_prompts`: the prompts differ only from the needle's value on, so the text
    before it is computed once per cell (``tasks.needle``'s shared prefix). The cost: a cell's
    trials share their haystack, so haystacks, not trials, are the independent draws of text.
    Seeded by (seed, length, depth), apart from :func:`cell_prompts`' draws.
    """
    rng = random.Random(f"{seed}-{length}-{depth}-shared")
    start, other = (rng.randrange(0, len(haystack_ids) - length) for _ in range(2))
    prompts = [build_prompt(tokenizer, haystack_ids[start:start + length], length, depth, fmt.value(rng), fmt)
               for _ in range(n)]
    control = build_prompt(tokenizer, haystack_ids[other:other + length], length, depth, fmt.value(rng), fmt)
    return prompts, control


def answer_ids(tokenizer, value: str) -> list[int]:
    return list(tokenizer.encode(value, add_special_tokens=False))
