"""neuronatlas.corpus: sources (default, txt, jsonl, parquet, hf) and token windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuronatlas.corpus import (
    BosPolicy,
    batch_windows,
    iter_windows,
    open_source,
    resolve_bos,
)
from neuronatlas.corpus.sources import txt_layout
from neuronatlas.errors import BadInput


@pytest.fixture(scope="module")
def gpt2_tok():
    from tiny_models import gpt2_tokenizer

    return gpt2_tokenizer()


def test_txt_one_document_per_line(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("first doc\nsecond doc\n\u00e9t\u00e9 third\n")
    src = open_source(str(p))
    assert txt_layout(p) == "lines"
    assert list(src.documents()) == ["first doc", "second doc", "\u00e9t\u00e9 third"]
    d = src.describe()
    assert d["kind"] == "txt" and d["layout"] == "lines" and len(d["sha256"]) == 64


def test_txt_blank_line_separated(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("para one\nstill one\n\n\npara two\n  \nthree")
    assert txt_layout(p) == "paragraphs"
    assert list(open_source(str(p)).documents()) == ["para one\nstill one", "para two", "three"]


def test_jsonl_text_field_and_errors(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"body": "alpha"}) + "\n\n" + json.dumps({"body": "beta"}) + "\n")
    assert list(open_source(str(p), text_field="body").documents()) == ["alpha", "beta"]
    with pytest.raises(BadInput, match=r"c.jsonl:1: no field 'text'"):
        list(open_source(str(p)).documents())
    p.write_text("{not json\n")
    with pytest.raises(BadInput, match="not JSON"):
        list(open_source(str(p), text_field="body").documents())


def test_parquet_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": ["one", None, "two"], "n": [1, 2, 3]}), p)
    assert list(open_source(str(p)).documents()) == ["one", "two"]
    with pytest.raises(BadInput, match="no column 'body'"):
        list(open_source(str(p), text_field="body").documents())


def test_hf_source_fails_clearly_offline():
    src = open_source("hf:stas/openwebtext-10k")
    assert src.describe()["location"] == "stas/openwebtext-10k:train"
    with pytest.raises(BadInput, match=r"datasets|online only"):
        next(iter(src.documents()))


def test_unknown_sources(tmp_path):
    with pytest.raises(BadInput, match="use default"):
        open_source(str(tmp_path / "c.csv"))
    with pytest.raises(BadInput, match="no such file"):
        open_source(str(tmp_path / "missing.txt"))


def test_default_corpus_is_offline_wikipedia():
    src = open_source("default")
    docs = src.documents()
    first = [next(docs) for _ in range(3)]
    assert all(len(d) > 50 for d in first)
    assert src.describe()["kind"] == "default" and "sha256" in src.describe()


def test_windows_pack_documents_with_separator(gpt2_tok):
    docs = ["The cat sat.", "A dog ran far away.", "Hi"]
    policy = resolve_bos(gpt2_tok)
    assert policy == BosPolicy("none", 50256, 50256)
    stream = []
    for d in docs:
        stream += [*gpt2_tok.encode(d), 50256]
    got = list(iter_windows(docs, gpt2_tok, 4, policy))
    assert [w for w, _ in got] == list(range(len(stream) // 4))
    for wid, toks in got:
        assert toks.dtype == np.int32
        assert toks.tolist() == stream[wid * 4 : (wid + 1) * 4]
    tail = list(iter_windows(docs, gpt2_tok, 4, policy, start=1, stop=3))
    assert [w for w, _ in tail] == [1, 2]
    assert all(np.array_equal(t, got[w][1]) for w, t in tail)


def test_batches_and_bos_prepend(gpt2_tok):
    docs = ["one two three four five six seven eight nine ten"] * 4  # 4 × 11 tokens
    policy = resolve_bos(gpt2_tok, "prepend")
    batches = list(batch_windows(iter_windows(docs, gpt2_tok, 5, policy), 3))
    assert [len(b.ids) for b in batches] == [3, 3, 2]
    assert batches[1].ids.tolist() == [3, 4, 5]
    x = batches[0].model_input(policy)
    assert x.shape == (3, 6) and (x[:, 0] == 50256).all()
    assert np.array_equal(x[:, 1:], batches[0].tokens)
    none = BosPolicy("none", 50256, 50256)
    assert batches[0].model_input(none).shape == (3, 5)


def test_auto_bos_follows_the_tokenizer():
    class AddsBos:
        bos_token_id, eos_token_id = 2, 1

        def __call__(self, text):
            return type("E", (), {"input_ids": [2, 10, 11]})()

    assert resolve_bos(AddsBos()).mode == "prepend"
    with pytest.raises(BadInput):
        resolve_bos(AddsBos(), "sometimes")
