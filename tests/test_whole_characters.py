"""Whole characters: a record's display strings join to the text the model read.

Checked as properties on the real GPT-2 tokenizer (byte-level BPE) and on a small
SentencePiece-style tokenizer with byte fallback (Gemma's kind); the real Gemma tokenizer in a
slow test.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuronatlas.models.tokens import (
    REPLACEMENT,
    TokenStrings,
    character_of,
    legacy_strings,
    whole_characters,
)
from tiny_models import byte_fallback_tokenizer, gpt2_tokenizer

# Any character UTF-8 can carry (surrogates cannot be encoded); weighted towards the ones
# tokenizers split: non-breaking spaces, symbols, accents, CJK, emoji.
SPLIT_PRONE = "\u00a0\u202f°€…—ï東京😀🚀👍🏽\u200b"
TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(SPLIT_PRONE),
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from("abc xyz 0123"),
    ),
    max_size=40,
)


@pytest.fixture(scope="module")
def gpt2():
    tok = gpt2_tokenizer()
    return tok, TokenStrings(tok)


@pytest.fixture(scope="module")
def fallback():
    tok = byte_fallback_tokenizer()
    return tok, TokenStrings(tok)


def _check_text(tok, strings: TokenStrings, text: str) -> None:
    ids = tok.encode(text, add_special_tokens=False)
    shown = strings.record(ids)
    assert len(shown) == len(ids)
    assert "".join(shown) == tok.decode(ids, clean_up_tokenization_spaces=False)
    if REPLACEMENT not in text:
        assert REPLACEMENT not in "".join(shown)


@settings(max_examples=150, deadline=None)
@given(text=TEXT)
def test_gpt2_records_join_to_the_text(gpt2, text):
    tok, strings = gpt2
    _check_text(tok, strings, text)
    ids = tok.encode(text)
    assert "".join(strings.record(ids)) == text  # GPT-2's byte-level BPE is lossless


@settings(max_examples=150, deadline=None)
@given(text=TEXT.filter(lambda t: "▁" not in t))
def test_byte_fallback_records_join_to_the_text(fallback, text):
    tok, strings = fallback
    _check_text(tok, strings, text)


@settings(max_examples=100, deadline=None)
@given(ids=st.lists(st.integers(0, 50256), max_size=30))
def test_any_gpt2_ids_give_one_string_each_and_no_replacement_character(gpt2, ids):
    """Windows start and end anywhere, even inside a character: bytes that form no character
    are shown as `<0xXX>`, never as U+FFFD (unless the bytes spell U+FFFD)."""
    _, strings = gpt2
    shown = strings.record(ids)
    assert len(shown) == len(ids)
    pieces = [strings.piece(i) for i in ids]
    data = b"".join(p if isinstance(p, bytes) else b"|" for p in pieces)  # special: a cut
    if "\ufffd".encode() not in data:
        assert REPLACEMENT not in "".join(shown)


def test_a_split_character_is_shown_once_on_its_first_piece(gpt2, fallback):
    for tok, strings in (gpt2, fallback):
        ids = tok.encode("28\u202fkm 😀", add_special_tokens=False)
        shown = strings.record(ids)
        assert shown.count("") >= 2, shown
        assert "".join(shown) == "28\u202fkm 😀"
        assert REPLACEMENT in "".join(legacy_strings(strings, ids))  # what atlases held before


def test_a_character_cut_by_the_window_is_shown_as_bytes(fallback):
    tok, strings = fallback
    ids = tok.encode("a😀b", add_special_tokens=False)  # a, <0xF0>, <0x9F>, <0x98>, <0x80>, b
    assert strings.record(ids[2:]) == ["<0x9F>", "<0x98>", "<0x80>", "b"]
    assert strings.record(ids[:3]) == ["a", "<0xF0>", "<0x9F>"]
    assert strings(ids[1:3]) == ["<0xF0>", "<0x9F>"]  # one by one: each piece alone


def test_special_tokens_are_shown_as_they_are_and_cut_characters(fallback):
    tok, strings = fallback
    ids = tok.encode("é😀", add_special_tokens=False)
    ids = [*ids[:2], tok.bos_token_id, *ids[2:]]
    assert strings.record(ids) == ["é", "<0xF0>", "<bos>", "<0x9F>", "<0x98>", "<0x80>"]


def test_whole_characters_assigns_each_character_to_its_first_byte():
    pieces: list[bytes | str] = [b"a\xe2", b"\x80", b"\xa6b", "<|endoftext|>", b"\xff"]
    assert whole_characters(pieces) == ["a…", "", "b", "<|endoftext|>", "<0xFF>"]


def test_character_of_gives_continuation_pieces_their_character():
    assert character_of(["", " 😀", "", "", "x", ""]) == ["", " 😀", " 😀", " 😀", "x", "x"]


@pytest.mark.slow
def test_gemma_records_join_to_the_text():
    """The real Gemma-3 tokenizer (byte fallback for characters outside its vocabulary)."""
    from transformers import AutoTokenizer

    from neuronatlas.models.default import ensure_default_model

    tok = AutoTokenizer.from_pretrained(ensure_default_model())
    strings = TokenStrings(tok)
    assert strings.family == "metaspace"
    texts = ["300\u00a0°F and 28\u202fkm 😀 東京 naïve ☃︎ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ᚠᛇᚻ᛫ᛒᛦᚦ ⸘‽ 🜂🜄 \U0010fffd"]
    for text in texts:
        _check_text(tok, strings, text)
        ids = tok.encode(text, add_special_tokens=False)
        assert "".join(strings.record(ids)) == text
        assert any(s == "" for s in strings.record(ids))  # some character was split
