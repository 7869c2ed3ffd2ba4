"""Needle-in-a-Haystack with attention entropy (the paper's Fig. 4 and Appendix C).

For every (length, depth) cell, ``needles_per_cell`` prompts are built from held-out text
(``haystack.build_prompt``: one BOS at the front, needle at a line boundary at the depth),
each with its own random value and haystack offset, seeded by (seed, length, depth). The
cell's prompts have the same length, so they run as one batch, with no padding (a cell on
one shared haystack instead runs its prompts one by one from the shared prefix: ``run_cell``). The
model decodes greedily; a trial passes when the decoded text starts with the value.

Per trial, three attention entropies (-sum_k p_k ln p_k of a row, averaged over heads and
layers; nats), which differ in what the row is conditioned on:
  - ``entropy_first``: the row of the last prompt token, which predicts the first answer
    token: measured before anything is generated, so a wrong digit cannot cause it.
  - ``entropy_teacher``: teacher-forced, the rows that predict each answer token when the
    *true* value is fed (one forward pass over prompt + value), averaged over the answer
    tokens: identical inputs for passing and failing trials.
  - ``entropy``: Appendix C's measure, the rows that generated each answer token during
    greedy decoding (``probe.capture_generation``), averaged over the answer tokens. After
    the first wrong digit these rows are conditioned on the error, so this one mixes cause
    and effect; it is kept because it is the paper's.
  - ``needle_mass``: attention on the needle's value tokens, same averaging.
  - for failures, ``borrowed``: whether the wrong answer's first ``BORROW_MIN`` tokens
    occur elsewhere in the context, ``borrowed_mass``: attention on those places,
    ``borrowed_count``: how many places (distinct positions) that mass is spread over, and
    ``borrowed_by_chance``: whether the same tokens occur in the *next* prompt of the cell
    (same length, different haystack, never seen by this trial), outside its needle: the
    rate at which a wrong answer is "found in the context" by chance alone.
Not here: statistics across trials (``ropelib.core.stats``) or plots.
"""

from __future__ import annotations

import random
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from ropelib.progress import progress as progress_bar
from ropelib.core import extensions, metrics, probe
from ropelib.text.corpus import stdlib_documents
from ropelib.tasks import trials
from ropelib.text.haystack import FORMATS, NeedleFormat, cell_prompts, shared_prompts
from ropelib.tasks.common import check_lengths, check_memory

BORROW_MIN = 3  # answer tokens that must match for a wrong answer to count as borrowed
PREFILL_CHUNK = 1024  # tokens a forward pass when a prompt continues a cached prefix (:func:`_continue`)


def haystack_tokens(tokenizer, documents=None) -> list[int]:
    """Test-split documents (or ``documents``) concatenated (no BOS between them) as one token list.

    Cached per (tokenizer, documents): a BPE tokenizer takes 2-3 s over a whole split, and a
    chapter asks for the same split once per variant and length.
    """
    docs = tuple(documents if documents is not None else stdlib_documents("test"))
    try:
        return _encoded(tokenizer, docs).tolist()
    except TypeError:  # an unhashable tokenizer or document: no cache
        return _encode(tokenizer, docs).tolist()


def _encode(tokenizer, docs: tuple) -> np.ndarray:
    text = "".join(getattr(d, "text", d) for d in docs)
    return np.asarray(tokenizer.encode(text, add_special_tokens=False), dtype=np.int64)  # (tokens,)


_encoded = lru_cache(maxsize=4)(_encode)


def find_occurrences(context: list[int], pattern: list[int], exclude: range = range(0)) -> list[int]:
    """Start indices of ``pattern`` in ``context``, skipping matches that overlap ``exclude``."""
    n = len(pattern)
    if n == 0:
        return []
    hits = []
    for i in range(len(context) - n + 1):
        if context[i:i + n] == pattern and not (i < exclude.stop and i + n > exclude.start):
            hits.append(i)
    return hits


def _mass(rows: torch.Tensor, positions: list[int]) -> float:
    """Mean over layers, heads and tokens of the attention on ``positions``; rows (layers, heads, tokens, keys)."""
    if not positions:
        return 0.0
    return float(rows[..., positions].sum(-1).mean())


def _trial_record(tokenizer, prompt, generated: list[int], rows: torch.Tensor, answer_len: int,
                  control=None, teacher_rows: torch.Tensor | None = None) -> dict:
    text = tokenizer.decode(generated)
    passed = text.strip().startswith(prompt.value)
    rows = rows[:, :, :answer_len]  # (layers, heads, answer tokens, keys)
    record = {
        "value": prompt.value,
        "answer": text[: len(prompt.value) + 2].strip(),
        "passed": passed,
        "actual_depth": round(prompt.actual_depth, 2),
        "entropy": float(metrics.entropy(rows).mean()),
        "entropy_first": float(metrics.entropy(rows[:, :, :1]).mean()),
        "entropy_teacher": float("nan") if teacher_rows is None else float(metrics.entropy(teacher_rows).nanmean()),
        "needle_mass": _mass(rows, list(range(prompt.value_start, prompt.value_start + answer_len))),
        "borrowed": False,
        "borrowed_mass": 0.0,
        "borrowed_count": 0,
        "borrowed_positions": "",
        "borrowed_by_chance": False,
    }
    if not passed:
        wrong = generated[:BORROW_MIN]
        hits = find_occurrences(prompt.input_ids, wrong, exclude=range(prompt.needle_start, prompt.needle_end))
        if hits:
            places = sorted({h + j for h in hits for j in range(BORROW_MIN)})
            record.update(borrowed=True, borrowed_positions=" ".join(map(str, hits[:20])),
                          borrowed_mass=_mass(rows, places), borrowed_count=len(places))
        if control is not None:
            unseen = find_occurrences(control.input_ids, wrong, exclude=range(control.needle_start, control.needle_end))
            record["borrowed_by_chance"] = bool(unseen)
    return record


def _keys_to(rows: torch.Tensor, width: int) -> torch.Tensor:
    """``rows`` (..., keys) cut or zero-padded to ``width`` keys (a zero is a key not visible yet)."""
    return torch.nn.functional.pad(rows[..., :width], (0, max(0, width - rows.shape[-1])))


def _nan_rows_to(rows: torch.Tensor, answer_len: int) -> torch.Tensor:
    """``rows`` (layers, b, heads, n, keys) with NaN rows appended up to ``answer_len`` answer tokens (a shorter value)."""
    if rows.shape[3] >= answer_len:
        return rows
    pad = torch.full((*rows.shape[:3], answer_len - rows.shape[3], rows.shape[4]), float("nan"))
    return torch.cat([rows, pad], dim=3)


def _answer_rows(attention: list[torch.Tensor], answer_len: int, width: int) -> torch.Tensor:
    """Recorded rows of the answer's queries (one (b, heads, n, keys) a layer) -> (layers, b, heads, answer_len,
    width): the first ``answer_len`` rows, NaN rows past a shorter value, keys cut or zero-padded to ``width``."""
    return _keys_to(_nan_rows_to(torch.stack(attention)[:, :, :, :answer_len], answer_len), width)


def _value_tokens(tokenizer, prompt) -> list[int]:
    """The needle value's tokens as the model reads them after the prompt (the teacher-forced input)."""
    return list(tokenizer.encode(prompt.value, add_special_tokens=False))


def _teacher_forced_rows(model, tokenizer, prompts, input_ids: torch.Tensor, answer_len: int) -> torch.Tensor:
    """Rows predicting each true answer token, the true value fed: (layers, batch, heads, answer_len, keys).

    A tokenizer may split two values into different numbers of tokens (BPE); prompts are then
    run one by one and each keeps the rows of its first ``answer_len`` answer tokens (padded
    with NaN rows if its value is shorter), so every prompt's rows are its own.
    """
    values = [_value_tokens(tokenizer, p) for p in prompts]
    groups = [list(range(len(prompts)))] if len({len(v) for v in values}) == 1 else [[i] for i in range(len(prompts))]
    out = [None] * len(prompts)
    for group in groups:
        n = len(values[group[0]])
        fed = torch.tensor([values[i][:-1] for i in group], device=input_ids.device, dtype=input_ids.dtype)
        forced = torch.cat([input_ids[group], fed.reshape(len(group), n - 1)], dim=1)  # (b, length + n - 1)
        with probe.capture(model, queries=n) as rec:
            model(forced, use_cache=False, logits_to_keep=1)  # only the rows are used, never the logits
        width = input_ids.shape[1] + answer_len - 1
        rows = _answer_rows(rec.attention, answer_len, width)  # (layers, b, heads, answer_len, width)
        for j, i in enumerate(group):
            out[i] = rows[:, j]
    return torch.stack(out, dim=1)


def _teacher_rows_from_cache(model, tokenizer, prompts, first_rows: torch.Tensor, cache, length: int,
                            answer_len: int) -> torch.Tensor | None:
    """The rows of :func:`_teacher_forced_rows` without a second pass over the prompt: (layers, batch, heads,
    answer_len, keys), or None when the values' token counts differ (the caller then runs the full pass).

    The row predicting answer token 0 is the generation's first row (``first_rows``: the last prompt
    token, the same conditioning); the rows predicting tokens 1..n-1 come from feeding the true value's
    first n-1 tokens to the generation's KV cache cropped back to the prompt (``Cache.crop``).
    One prompt-length forward per trial instead of two; equal to the full pass up to float rounding,
    not bit for bit (tested). Only for a model whose RoPE does not depend on the sequence length:
    the cached keys were rotated for the prompt's length.
    """
    values = [_value_tokens(tokenizer, p) for p in prompts]
    if len({len(v) for v in values}) != 1 or not hasattr(cache, "crop"):
        return None
    n = len(values[0])
    width = length + answer_len - 1
    rows = [_keys_to(first_rows, width)]
    if n > 1:
        cache.crop(length - cache.get_seq_length())  # back to the prompt: a negative count of tokens to drop
        fed = torch.tensor([v[:-1] for v in values], device=next(model.parameters()).device)
        with probe.capture(model, queries=n - 1) as rec:
            model(fed, past_key_values=cache, use_cache=True, logits_to_keep=1)  # (b, n - 1) tokens after the prompt
        rest = torch.stack(rec.attention)  # (layers, b, heads, n - 1, length + n - 1)
        rows.append(_keys_to(rest, width))
    return _nan_rows_to(torch.cat(rows, dim=3)[:, :, :, :answer_len], answer_len)  # (layers, b, heads, answer_len, width)


def common_prefix(prompts) -> int:
    """Tokens every prompt of a cell starts with, at most up to the first value (0 for one prompt: nothing to share)."""
    if len(prompts) < 2:
        return 0
    first, limit = prompts[0].input_ids, min(p.value_start for p in prompts)
    return next((i for i in range(limit) if any(p.input_ids[i] != first[i] for p in prompts[1:])), limit)


def _prefix_cache(model, ids: list[int]):
    """The KV cache of ``ids`` (the text before a cell's needle values), one sequence: (1, ...)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    model(torch.tensor([ids], device=next(model.parameters()).device), past_key_values=cache, use_cache=True,
          logits_to_keep=1)
    return cache


def _continue(model, ids: list[int], cache, chunk: int) -> None:
    """Feed ``ids`` into ``cache`` (which holds the tokens before them), ``chunk`` tokens a forward pass.

    Why chunks: a forward pass whose queries are not all the keys gets an explicit causal mask, and
    the CPU attention kernel then computes every (query, key) pair, masked ones included: the q x k
    rectangle. In chunks, chunk i attends to the prefix and chunks 0..i only, so the pairs computed
    are the triangle plus one chunk's square (measured once on SmolLM2 at 8,192 tokens, depth 50: 40.7 s
    in one pass, 30.9 s in chunks of 1,024; README, Performance). Not transformers' ``prefill_chunk_size``:
    inside ``generate`` every chunk would be a forward pass that ``probe.capture_generation`` records.
    """
    device = next(model.parameters()).device
    for start in range(0, len(ids), chunk):
        model(torch.tensor([ids[start:start + chunk]], device=device), past_key_values=cache, use_cache=True,
              logits_to_keep=1)  # only the cache is kept


def _teacher_rows_from_prefix(model, tokenizer, prompt, caches: dict, prefix: int, answer_len: int) -> torch.Tensor:
    """:func:`_teacher_forced_rows` of one prompt from a KV cache of its cell's shared prefix: (layers, 1, heads,
    answer_len, length + answer_len - 1).

    The full pass's input (prompt + the true value but its last token, l tokens) is fed as the prefix
    (once per cell and value length: ``caches``), the rest in chunks, and its last n tokens in one pass
    whose rows are kept; all of it under ``extensions.rotation_of_length(model, l)``, so a model whose
    RoPE depends on the sequence length (dynamic NTK) rotates every piece as that one pass does.
    """
    value = _value_tokens(tokenizer, prompt)
    n = len(value)
    ids = prompt.input_ids + value[:-1]  # the teacher-forced pass's input, l = length + n - 1 tokens
    device = next(model.parameters()).device
    with extensions.rotation_of_length(model, len(ids)):
        if n not in caches:
            caches[n] = _prefix_cache(model, ids[:prefix])
        cache = caches[n]
        cache.crop(prefix - cache.get_seq_length())
        _continue(model, ids[prefix:len(ids) - n], cache, PREFILL_CHUNK)
        with probe.capture(model, queries=n) as rec:
            model(torch.tensor([ids[len(ids) - n:]], device=device), past_key_values=cache, use_cache=True,
                  logits_to_keep=1)  # only the rows are used
    width = len(prompt.input_ids) + answer_len - 1
    return _answer_rows(rec.attention, answer_len, width)  # (layers, 1, heads, answer_len, width)


def _generate_records(model, tokenizer, prompts, controls, length: int, answer_len: int, share_prefill: bool,
                      cache=None, teacher: torch.Tensor | None = None) -> list[dict]:
    """The prompts generated as one batch (continuing ``cache`` when given), one record per prompt.
    ``teacher``: their teacher-forced rows when already computed (:func:`_teacher_rows_from_prefix`)."""
    input_ids = torch.tensor([p.input_ids for p in prompts], device=next(model.parameters()).device)
    with probe.capture_generation(model, prompt_length=length) as rec:
        generated = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                                   max_new_tokens=answer_len + 1, return_dict_in_generate=True,
                                   past_key_values=cache, pad_token_id=getattr(tokenizer, "pad_token_id", None))
    out = generated.sequences  # (batch, length + new tokens)
    attention = rec.stacked("all")  # (layers, batch, heads, new tokens, keys)
    if teacher is None and share_prefill:
        teacher = _teacher_rows_from_cache(model, tokenizer, prompts, attention[:, :, :, :1],
                                           generated.past_key_values, length, answer_len)
    if teacher is None:
        teacher = _teacher_forced_rows(model, tokenizer, prompts, input_ids, answer_len)
    return [_trial_record(tokenizer, prompt, out[b, length:].tolist(), attention[:, b], answer_len, controls[b],
                          teacher[:, b]) for b, prompt in enumerate(prompts)]


def run_cell(model, tokenizer, prompts, controls, length: int, answer_len: int, share_prefill: bool = False,
             prefix: int = 0) -> list[dict]:
    """One record per prompt of a cell (:func:`_trial_record`).

    ``controls[b]``: the prompt whose text decides whether prompt b's wrong answer occurs by chance.
    ``prefix`` = 0: the prompts run as one batch, each a full pass.
    ``prefix`` > 0: the first ``prefix`` tokens, the same in every prompt, run once into a KV cache;
    then, one prompt at a time, the cache is cut back to the prefix, the rest of the prompt but its
    last token is fed in chunks of ``PREFILL_CHUNK`` (:func:`_continue`), and generation starts from
    the last prompt token; prefix and rest are rotated as one pass over the prompt
    (``extensions.rotation_of_length``: dynamic NTK's base is that of the prompt's length, as in the
    full pass). The teacher-forced rows come from the generation's cache with ``share_prefill``
    (a RoPE that does not depend on the length), else from a second prefix cache per cell
    (:func:`_teacher_rows_from_prefix`). Equal to the full pass within float rounding (tested, dynamic
    NTK included), so a cell's records do not depend on this path.
    Unlike the batched path: one prompt at a time, since five 8K continuations in one batch cost
    30.5 s a prompt against 25.4 s alone (SmolLM2, measured 2026-12-07).
    """
    if not prefix:
        return _generate_records(model, tokenizer, prompts, controls, length, answer_len, share_prefill)
    with extensions.rotation_of_length(model, length):
        cache = _prefix_cache(model, prompts[0].input_ids[:prefix])
    records, teacher_caches = [], {}
    for prompt, control in zip(prompts, controls):
        teacher = None if share_prefill else _teacher_rows_from_prefix(model, tokenizer, prompt, teacher_caches,
                                                                       prefix, answer_len)
        cache.crop(prefix - cache.get_seq_length())  # back to the shared prefix: a negative count of tokens to drop
        with extensions.rotation_of_length(model, length):
            _continue(model, prompt.input_ids[prefix:-1], cache, PREFILL_CHUNK)
        records += _generate_records(model, tokenizer, [prompt], [control], length, answer_len, share_prefill, cache,
                                     teacher)
    return records


@torch.no_grad()
def needle_grid(model, tokenizer, lengths, depths=tuple(range(0, 101, 10)), needles_per_cell: int = 5,
                seed: int = 0, method: str = "", fmt: NeedleFormat | str = "compact", documents=None,
                progress: bool = True, share_prefill: bool = False, shared_haystack: bool = False,
                share_prefix: bool = False, store=trials.NOTHING) -> pd.DataFrame:
    """Tidy table, one row per trial: length, depth, passed, entropy, needle/borrowed mass (and, with
    ``shared_haystack``, ``haystack``: the cell whose haystack the trial shares).

    ``share_prefill``: the teacher-forced rows from the generation's KV cache
    (:func:`_teacher_rows_from_cache`), one prompt-length pass per trial instead of two; for a
    model whose RoPE does not depend on the length. Off by default: the organism's pages were
    computed with the second pass and re-execute bit for bit.
    ``shared_haystack``: a cell's needles sit at the same place of one haystack
    (``haystack.shared_prompts``; the control text is another haystack); with ``share_prefix`` the
    text before the value is then computed once per cell (:func:`run_cell`'s ``prefix``), for any RoPE.
    Otherwise each needle has its own haystack (``haystack.cell_prompts``; the control text is the
    cell's next prompt). ``store``: where each cell's records are kept (``ropelib.tasks.trials``).
    """
    fmt = FORMATS[fmt] if isinstance(fmt, str) else fmt
    lengths = check_lengths(lengths)
    depths = [float(d) for d in depths]
    if any(not 0 <= d <= 100 for d in depths):
        raise ValueError(f"depths={depths}: every depth must be in [0, 100] percent")
    if needles_per_cell < 1:
        raise ValueError(f"needles_per_cell={needles_per_cell} must be >= 1")
    answer_len = len(tokenizer.encode(fmt.value(random.Random(0)), add_special_tokens=False))
    # generation, then the teacher-forced pass while the generation's rows are still held
    check_memory(model, max(lengths), batch=needles_per_cell, generate_tokens=answer_len + 1, probe_queries=1,
                 full_logits=False)
    check_memory(model, max(lengths) + answer_len - 1, batch=needles_per_cell, probe_queries=2 * answer_len + 1,
                 use_cache=False, full_logits=False)
    hay = haystack_tokens(tokenizer, documents)
    rows_out = []
    cells = [(length, depth) for length in lengths for depth in depths]
    for length, depth in progress_bar(cells, desc=f"needles {method}".strip(), disable=None if progress else True):
        if shared_haystack:
            prompts, control = shared_prompts(tokenizer, hay, length, depth, needles_per_cell, seed, fmt)
            controls, prefix = [control] * len(prompts), common_prefix(prompts) if share_prefix else 0
        else:
            prompts, prefix = cell_prompts(tokenizer, hay, length, depth, needles_per_cell, seed, fmt), 0
            controls = [prompts[(b + 1) % len(prompts)] if len(prompts) > 1 else None for b in range(len(prompts))]
        inputs = {"prompts": [trials.digest(p.input_ids) for p in prompts], "answer_len": answer_len, "prefix": prefix,
                  "controls": [trials.digest(c.input_ids) if c is not None else "" for c in controls],
                  "share_prefill": share_prefill}
        records = store.records("needle-cell", inputs, lambda: run_cell(model, tokenizer, prompts, controls, length,
                                                                        answer_len, share_prefill, prefix))
        for b, record in enumerate(records):
            prompt_id = f"{length}-{depth:g}-{b}"  # the same prompt for every model
            shared = {"haystack": f"{length}-{depth:g}"} if shared_haystack else {}  # the cell's one haystack
            rows_out.append({"method": method, "length": length, "depth": depth, "trial": len(rows_out),
                             "prompt": prompt_id, **shared, **record})
    return pd.DataFrame(rows_out)


def cell_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (method, length, depth): pass rate, mean entropies, trials."""
    return (trials.groupby(["method", "length", "depth"], as_index=False)
            .agg(pass_rate=("passed", "mean"), entropy=("entropy", "mean"), entropy_first=("entropy_first", "mean"),
                 entropy_teacher=("entropy_teacher", "mean"), trials=("passed", "size"),
                 needle_mass=("needle_mass", "mean")))

