"""Per-token display strings with their leading spaces (" the"), as OpenAI stores tokens.

`tokenizer.decode([id])` is not enough: SentencePiece tokenizers drop the leading space of a
lone token, and byte-level BPE pieces ("Ġthe") need their byte alphabet undone. So the string is
built from the vocabulary piece, by the tokenizer's family:

- byte-level BPE (GPT-2, GPT-NeoX, Llama-3, Qwen): map the piece's characters back to bytes and
  decode UTF-8 (a piece holding part of a multi-byte character shows U+FFFD, as OpenAI's do);
- SentencePiece/metaspace (Gemma, Llama-2, Mistral): "▁" is a space; byte-fallback pieces
  `<0x0A>` are that byte;
- anything else: the tokenizer's own `decode`.
"""

from __future__ import annotations

import re
from functools import lru_cache

_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's `bytes_to_unicode`: printable stand-in character → byte."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=False)}


def tokenizer_family(tokenizer) -> str:
    """'byte_level', 'metaspace' or 'other', from the pieces the vocabulary uses."""
    vocab = tokenizer.get_vocab()
    if "Ġthe" in vocab or "Ġt" in vocab:
        return "byte_level"
    if "▁the" in vocab or "▁t" in vocab:
        return "metaspace"
    return "other"


class TokenStrings:
    """Id → display string, memoised per id (a vocabulary is decoded once at most)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.family = tokenizer_family(tokenizer)
        self.special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self._cache: dict[int, str] = {}

    def __call__(self, ids) -> list[str]:
        out = []
        cache = self._cache
        for i in (int(x) for x in ids):
            s = cache.get(i)
            if s is None:
                s = cache[i] = self._one(i)
            out.append(s)
        return out

    def _one(self, token_id: int) -> str:
        piece = self.tokenizer.convert_ids_to_tokens(token_id)
        if piece is None:
            return self.tokenizer.decode([token_id])
        if token_id in self.special:
            return piece
        if self.family == "byte_level":
            table = byte_decoder()
            if all(ch in table for ch in piece):
                return bytes(table[ch] for ch in piece).decode("utf-8", errors="replace")
            return piece
        if self.family == "metaspace":
            m = _BYTE_PIECE.match(piece)
            if m:
                return bytes([int(m.group(1), 16)]).decode("utf-8", errors="replace")
            return piece.replace("▁", " ")
        return self.tokenizer.decode([token_id], clean_up_tokenization_spaces=False)
