"""Byte-level tokenizer for the model organism, with the slice of the Hugging Face
tokenizer interface that ``ropelib.tasks`` uses.

Ids 0..255 are the bytes of the UTF-8 text; special ids follow. ``encode`` never adds
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

    @property
    def vocab_size(self) -> int:
        return 259

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids = list(text.encode("utf-8"))
        return [self.bos_token_id, *ids] if add_special_tokens else ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        data = bytes(i for i in ids if i < 256) if skip_special_tokens else bytes(i % 256 for i in ids)
        return data.decode("utf-8", errors="replace")


def encode_document(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` with exactly one BOS at the front (if the tokenizer has one)."""
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    bos = getattr(tokenizer, "bos_token_id", None)
    return ([bos] if bos is not None else []) + ids
