"""Per-token display strings with their leading spaces (" the"), as OpenAI stores tokens, and
whole characters where a tokenizer splits one character over several tokens.

`tokenizer.decode([id])` is not enough: SentencePiece tokenizers drop the leading space of a
lone token, and byte-level BPE pieces ("Ġthe") need their byte alphabet undone. So each
token's *bytes* are built from the vocabulary piece, by the tokenizer's family:

- byte-level BPE (GPT-2, GPT-NeoX, Llama-3, Qwen): map the piece's characters back to bytes;
- SentencePiece/metaspace (Gemma, Llama-2, Mistral): "▁" is a space; byte-fallback pieces
  `<0x0A>` are that byte;
- anything else: the tokenizer's own `decode` (already text).

A character the vocabulary lacks is split into byte pieces (GPT-2: "°" is `Â` `°`; Gemma:
`<0xE2>` `<0x80>` `<0xAF>`). Decoded one token at a time every piece is U+FFFD, and a record
read "300��°F". `whole_characters` decodes a record's bytes together instead: each character
is shown once, on the token holding its first byte, and the other pieces of it are empty
strings (still tokens of their own, with their own activation); bytes that form no character
(a window cut inside one, an invalid sequence) are shown as explicit bytes, `<0xC2>`. So
joining a record's strings gives the text the model read, and U+FFFD appears only where the
text holds it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
REPLACEMENT = "\ufffd"


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


def byte_string(byte: int) -> str:
    """How a byte that forms no character is shown: `<0xC2>` (SentencePiece's own spelling)."""
    return f"<0x{byte:02X}>"


def whole_characters(pieces: Sequence[bytes | str]) -> list[str]:
    """Display strings of one record's tokens, one per token, with whole characters.

    `pieces[i]` is token i's bytes, or a str for a token shown as it is (a special token such
    as `<bos>`, which no character crosses). Consecutive byte pieces are decoded together as
    UTF-8; each character goes to the token that holds its first byte (the others of it get
    ""), and a byte that starts no valid character is shown as `<0xXX>` on its own token.
    """
    out = [""] * len(pieces)
    i = 0
    while i < len(pieces):
        if isinstance(pieces[i], str):
            out[i] = pieces[i]  # type: ignore[assignment]
            i += 1
            continue
        j = i
        owner: list[int] = []
        while j < len(pieces) and not isinstance(pieces[j], str):
            owner.extend([j] * len(pieces[j]))
            j += 1
        data = b"".join(pieces[i:j])  # type: ignore[arg-type]
        # surrogateescape turns each undecodable byte into one lone surrogate U+DC80..U+DCFF;
        # real text never holds those (they are not valid UTF-8), so the mapping is exact.
        text = data.decode("utf-8", errors="surrogateescape")
        at = 0
        parts: list[list[str]] = [[] for _ in range(j - i)]
        for ch in text:
            code = ord(ch)
            if 0xDC80 <= code <= 0xDCFF:
                parts[owner[at] - i].append(byte_string(code - 0xDC00))
                at += 1
            else:
                parts[owner[at] - i].append(ch)
                at += len(ch.encode("utf-8"))
        for k, p in enumerate(parts):
            out[i + k] = "".join(p)
        i = j
    return out


def character_of(tokens: Sequence[str]) -> list[str]:
    """Per position, the string a record shows for the character the token belongs to.

    A token that is the second or later piece of a split character is "" in a record; counting
    tokens by string would count "" and miss the character. Here such a position gets the
    string of the token that shows the character (the nearest non-empty one before it), so a
    character split over two tokens counts as that character wherever a neuron peaks in it.
    """
    out: list[str] = []
    last = ""
    for t in tokens:
        if t:
            last = t
        out.append(t if t else last)
    return out


def tokenizer_family(tokenizer) -> str:
    """'byte_level', 'metaspace' or 'other', from the pieces the vocabulary uses."""
    vocab = tokenizer.get_vocab()
    if "Ġthe" in vocab or "Ġt" in vocab:
        return "byte_level"
    if "▁the" in vocab or "▁t" in vocab:
        return "metaspace"
    return "other"


class TokenStrings:
    """Id → bytes and display strings, memoised per id (a vocabulary is decoded once at most).

    Calling it maps ids one by one (a vocabulary, a list of top tokens): a lone piece of a
    split character shows its bytes (`<0xE2>`). `record(ids)` decodes ids that follow each
    other in a text, so split characters come out whole (`whole_characters`).
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.family = tokenizer_family(tokenizer)
        self.special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self._pieces: dict[int, bytes | str] = {}
        self._strings: dict[int, str] = {}

    def __call__(self, ids: Iterable[int]) -> list[str]:
        out = []
        cache = self._strings
        for i in (int(x) for x in ids):
            s = cache.get(i)
            if s is None:
                s = cache[i] = whole_characters([self.piece(i)])[0]
            out.append(s)
        return out

    def record(self, ids: Iterable[int]) -> list[str]:
        """Display strings of consecutive tokens: one per id, split characters whole."""
        return whole_characters([self.piece(int(i)) for i in ids])

    def piece(self, token_id: int) -> bytes | str:
        """Token `token_id`'s bytes, or its string when it is shown as it is (special)."""
        got = self._pieces.get(token_id)
        if got is None:
            got = self._pieces[token_id] = self._piece(token_id)
        return got

    def _piece(self, token_id: int) -> bytes | str:
        piece = self.tokenizer.convert_ids_to_tokens(token_id)
        if piece is None:
            return self.tokenizer.decode([token_id])
        if token_id in self.special:
            return piece
        if self.family == "byte_level":
            table = byte_decoder()
            if all(ch in table for ch in piece):
                return bytes(table[ch] for ch in piece)
            return piece.encode("utf-8")
        if self.family == "metaspace":
            m = _BYTE_PIECE.match(piece)
            if m:
                return bytes([int(m.group(1), 16)])
            return piece.replace("▁", " ").encode("utf-8")
        return self.tokenizer.decode([token_id], clean_up_tokenization_spaces=False).encode("utf-8")


def legacy_strings(strings: TokenStrings, ids: Iterable[int]) -> list[str]:
    """The strings atlases held before whole characters: each token decoded alone, U+FFFD
    for every byte of a split character. Only for finding such records again to repair them."""
    out = []
    for i in ids:
        p = strings.piece(int(i))
        out.append(p if isinstance(p, str) else p.decode("utf-8", errors="replace"))
    return out
