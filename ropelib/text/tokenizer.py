"""Byte-level tokenizer for the model organism, with the slice of the Hugging Face
tokenizer interface that ``ropelib.tasks`` uses.

Ids 0..255 are the bytes of the UTF-8 text; special ids follow. One symbol, the needle
marker ``§`` (two bytes in UTF-8), is a single token of its own, like a merge a BPE
tokenizer would learn: it gives the organism's retrieval (induction) circuit a clean,
one-token key to match, which it did not learn to use when the marker spanned two bytes.
``encode`` never adds
BOS: a task that builds a prompt from pieces adds BOS once, at the front, through
:func:`encode_document` (a BOS in the middle of a haystack is a classic needle bug).
Not here: merges, normalisation, anything a real tokenizer learns.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ByteTokenizer:
    bos_token_id: int = 256
    eos_token_id: int = 257
    pad_token_id: int = 258
    marker_token_id: int = 259
    marker: str = "§"

    @property
    def vocab_size(self) -> int:
        return 260

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids: list[int] = [self.bos_token_id] if add_special_tokens else []
        for i, piece in enumerate(text.split(self.marker)):
            if i:
                ids.append(self.marker_token_id)
            ids.extend(piece.encode("utf-8"))
        return ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        out, run = [], bytearray()
        for i in ids:
            i = int(i)
            if i < 256:
                run.append(i)
                continue
            out.append(run.decode("utf-8", errors="replace"))
            run = bytearray()
            if i == self.marker_token_id:
                out.append(self.marker)
            elif not skip_special_tokens:
                out.append({self.bos_token_id: "<s>", self.eos_token_id: "</s>", self.pad_token_id: "<pad>"}[i])
        out.append(run.decode("utf-8", errors="replace"))
        return "".join(out)


def encode_document(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` with exactly one BOS at the front (if the tokenizer has one)."""
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    bos = getattr(tokenizer, "bos_token_id", None)
    return ([bos] if bos is not None else []) + ids
