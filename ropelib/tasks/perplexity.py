"""Perplexity as a function of context length (the paper's Fig. 1).

Protocol (as in the PI and YaRN evaluations): take held-out documents with at least
``max(lengths) + 1`` tokens, the same documents at every length; truncate each to its
first L tokens (one BOS at the front counts as a token); score the next-token loss of
every position 1..L-1 given everything before it; perplexity = exp(mean loss) per
document. ``stride`` switches to a sliding-window variant: windows of L tokens advanced
by ``stride``, each scoring only its last ``stride`` positions (the first window scores
all), over the first ``max(lengths)`` tokens.

One forward pass per document serves every length when the model's positions do not depend
on the sequence's length (every static RoPE scaling: ``share_forward``): the model is
causal, so the loss of position i in the longest sequence is the loss of position i in any
truncation that contains it. Dynamic NTK rescales by the current length, so it runs one
pass per length (``ropelib.core.extensions.length_dependent``).

Not here: plotting or the extrapolation-limit rule (``ropelib.findings``).
"""

from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F

from ropelib.tasks import trials
from ropelib.progress import progress as progress_bar
from ropelib.text.corpus import Document, stdlib_documents
from ropelib.tasks.common import check_lengths, check_memory
from ropelib.text.tokenizer import encode_document


def long_documents(tokenizer, min_tokens: int, n: int, documents=None) -> list[tuple[str, list[int]]]:
    """The first ``n`` documents (sorted order) with at least ``min_tokens`` tokens."""
    docs = documents if documents is not None else stdlib_documents("test")
    picked = []
    for doc in docs:
        doc = doc if isinstance(doc, Document) else Document(str(len(picked)), str(doc))
        if len(doc.text) < min_tokens // 8:  # cheap pre-filter before tokenizing
            continue
        ids = encode_document(tokenizer, doc.text)
        if len(ids) >= min_tokens:
            picked.append((doc.name, ids))
            if len(picked) == n:
                return picked
    raise ValueError(f"only {len(picked)} documents have >= {min_tokens} tokens, {n} requested; "
                     "lower n_documents or the largest length")


@torch.no_grad()
def sequence_losses(model, ids: list[int]) -> torch.Tensor:
    """Per-position next-token loss (nats) of one sequence: shape (len(ids) - 1,)."""
    device = next(model.parameters()).device
    tokens = torch.tensor([ids], device=device)
    logits = model(tokens, use_cache=False).logits[0, :-1].float()  # (L-1, vocab)
    return F.cross_entropy(logits, tokens[0, 1:], reduction="none")


def _sliding_loss(model, ids: list[int], window: int, stride: int) -> float:
    total, count, start = 0.0, 0, 0
    while True:
        chunk = ids[start:start + window]
        losses = sequence_losses(model, chunk)
        scored = losses if start == 0 else losses[-stride:]
        total, count = total + float(scored.sum()), count + scored.numel()
        if start + window >= len(ids):
            return total / count
        start += stride


def perplexity_by_length(model, tokenizer, lengths, n_documents: int = 8, method: str = "",
                         stride: int | None = None, documents=None, progress: bool = True,
                         share_forward: bool = False, store=trials.NOTHING) -> pd.DataFrame:
    """Tidy table: one row per (length, document): mean loss (nats/token) and perplexity over all
    positions, and ``loss_new``: the mean loss on the positions this length adds, [previous
    length, length) (all positions for the shortest), so a failure just past L0 is not
    averaged away by the positions below it. ``share_forward``: one pass at the longest length
    per document, sliced for the shorter ones (only for a model whose RoPE does not depend on
    the sequence length; see the module docstring). ``store``: where each document's losses are kept
    (``ropelib.tasks.trials``; a real model's page resumes from them)."""
    lengths = check_lengths(lengths)
    if n_documents < 1:
        raise ValueError(f"n_documents={n_documents} must be >= 1")
    if stride is not None and not 1 <= stride <= min(lengths):
        raise ValueError(f"stride={stride} must be in [1, {min(lengths)}] (the smallest length)")
    check_memory(model, max(lengths), use_cache=False)
    docs = long_documents(tokenizer, max(lengths) + 1, n_documents, documents)
    rows = []
    ordered = sorted(set(lengths))
    previous = {length: (ordered[i - 1] if i else 0) for i, length in enumerate(ordered)}
    longest = max(lengths)
    def losses_of(ids: list[int]) -> torch.Tensor:  # (len(ids) - 1,), kept per document and length
        kept = store.arrays("losses", {"ids": trials.digest(ids), "n": len(ids)},
                            lambda: {"losses": sequence_losses(model, ids).cpu().numpy()})
        return torch.from_numpy(kept["losses"])

    shared = {name: losses_of(ids[:longest]) for name, ids in
              progress_bar(docs, desc=f"perplexity {method}".strip(), disable=None if progress else True)} \
        if share_forward and stride is None else {}
    for length in progress_bar(lengths, desc=f"perplexity {method}".strip(),
                               disable=True if shared or not progress else None):
        for name, ids in docs:
            if stride is None:
                # (length - 1,): loss of predicting token i + 1
                losses = shared[name][:length - 1] if shared else losses_of(ids[:length])
                loss = float(losses.mean())
                loss_new = float(losses[max(0, previous[length] - 1):].mean())
            else:
                loss = loss_new = _sliding_loss(model, ids[:max(lengths)], length, stride)
            rows.append({"method": method, "length": length, "document": name, "loss": loss, "ppl": math.exp(loss),
                         "loss_new": loss_new})
    return pd.DataFrame(rows)
