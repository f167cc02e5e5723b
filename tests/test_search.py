"""Semantic, token and full-text search, and similar neurons.

Token, full-text and cache tests run on an atlas embedded by the instant hashing embedder; the
semantic ones need the real MiniLM (slow tier)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embed_fixtures import NEURONS, QUERIES, build_atlas, content_words, write_openai_source
from neuronatlas.cli import app
from neuronatlas.embed.embed import EmbedConfig, embed_atlas
from neuronatlas.errors import BadInput, MixedEmbedders
from neuronatlas.relations.similar import similar_neurons
from neuronatlas.search import semantic as S
from neuronatlas.search.fulltext import fulltext_search
from neuronatlas.search.token_search import (
    atlas_tokenizer,
    query_tokens,
    regex_pieces,
    token_search,
)
from neuronatlas.search.vector_index import build_index, exact_top_k, exact_top_k_block
from neuronatlas.store import AtlasWriter, open_reader, reader
from neuronatlas.store.search import rebuild_search_indexes, stale_search_indexes

KEYS = ["id", "layer", "neuron", "explanation", "score", "similarity"]
#: a hit as the CLI, the API and `Atlas` give it: the library's keys and what it measures
HIT_KEYS = [*KEYS, "similarity_measure"]


def _indexed_atlas(folder, embedder: str):
    path = build_atlas(folder / "atlas.db")
    embed_atlas(path, EmbedConfig(embedder=embedder))
    with AtlasWriter(path) as w:
        rebuild_search_indexes(w.conn)
    return path


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    """Embedded by MiniLM: for the tests that need real semantics (mark them slow)."""
    return _indexed_atlas(tmp_path_factory.mktemp("search"), "all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def hashed(tmp_path_factory):
    """Embedded by the hashing test embedder: vectors and indexes, no model."""
    return _indexed_atlas(tmp_path_factory.mktemp("hashed"), "test-hashing")


@pytest.mark.slow
def test_paraphrases_sharing_no_content_word_find_their_neuron_first(atlas):
    explained = set().union(*(content_words(text) for text, _ in NEURONS.values()))
    conn = open_reader(atlas)
    for query, want in QUERIES.items():
        assert not content_words(query) & explained, query
        top = S.semantic_search(conn, query, k=3)
        assert top[0]["id"] == want, (query, top)
        assert list(top[0]) == KEYS
        assert top[0]["similarity"] >= top[1]["similarity"]


@pytest.mark.slow
def test_search_results_carry_the_explanation_and_its_score(atlas):
    conn = open_reader(atlas)
    hit = S.semantic_search(conn, "canine companions", k=1)[0]
    assert hit == {
        **hit,
        "layer": 0,
        "neuron": 1,
        "explanation": "references to dogs and puppies",
        "score": pytest.approx(0.1),
    }
    assert len(S.semantic_search(conn, "anything", k=50)) == len(NEURONS)


def test_matrix_is_cached_until_the_file_changes(hashed):
    conn = open_reader(hashed)
    first = S.load_vectors(conn)
    assert S.load_vectors(conn) is first
    with AtlasWriter(hashed) as w:
        w.set_meta({"touched": "1"})
    assert S.load_vectors(conn) is not first


def test_a_query_embedder_other_than_the_atlas_one_is_refused(hashed):
    with pytest.raises(MixedEmbedders):
        S.semantic_search(open_reader(hashed), "dogs", embedder="test-hashing-b")


def test_hnsw_index_returns_exact_similarities_and_finds_near_duplicates(tmp_path):
    rng = np.random.default_rng(0)
    m = rng.standard_normal((3000, 32)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    index = build_index(m, exact_max=100, cache=tmp_path)
    assert index.approximate and list(tmp_path.glob("*.usearch"))
    again = build_index(m, exact_max=100, cache=tmp_path)  # loads the cached graph
    for row in (0, 1234, 2999):
        q = m[row] + 0.01 * rng.standard_normal(32).astype(np.float32)
        q /= np.linalg.norm(q)
        rows, sims = again.search(q, 10)
        want_rows, _ = exact_top_k(m, q, 10)
        assert rows[0] == row == want_rows[0]
        np.testing.assert_allclose(sims, m[rows] @ q, rtol=1e-6)
        assert len(set(rows.tolist()) & set(want_rows.tolist())) >= 8


def test_block_search_is_per_query_search_with_ties_to_the_lower_row(tmp_path):
    rng = np.random.default_rng(1)
    m = rng.standard_normal((2000, 32)).astype(np.float32)
    m[1500:1600] = m[100]  # exact duplicates: tied similarities
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    queries = m[[0, 100, 1555, 1999]]
    rows, sims = exact_top_k_block(m, queries, 12)
    assert rows.shape == sims.shape == (4, 12)
    for q, r, s in zip(queries, rows, sims, strict=True):
        _, want_sims = exact_top_k(m, q, 12)
        np.testing.assert_allclose(s, want_sims, rtol=1e-6)
        np.testing.assert_allclose(s, m[r] @ q, rtol=1e-6)
    # the 101 copies of row 100 tie at 1.0: the lowest rows come first
    assert rows[1].tolist() == [100, *range(1500, 1511)] == rows[2].tolist()
    exact = build_index(m, exact_max=10**6)
    np.testing.assert_array_equal(exact.search_block(queries, 12)[0], rows)
    hnsw = build_index(m, exact_max=100, cache=tmp_path)
    assert hnsw.approximate
    got, got_sims = hnsw.search_block(m[:300], 10)
    want, _ = exact_top_k_block(m, m[:300], 10)
    np.testing.assert_allclose(got_sims, np.einsum("qkd,qd->qk", m[got], m[:300]), rtol=1e-5)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)])
    assert recall >= 0.9
    assert exact.block_size(61) * 2 * len(m) <= 1 << 24 < (exact.block_size(61) + 1) * 2 * len(m)


def test_token_index_and_token_search(hashed):
    conn = open_reader(hashed)
    assert stale_search_indexes(conn) == []
    rows = token_search(conn, "Paris", k=5)
    assert rows[0]["id"] == "L03N0008" and rows[0]["token"] == " Paris"
    assert 0 < rows[0]["similarity"] <= 1
    assert set(KEYS) <= set(rows[0])
    dogs = [r["id"] for r in token_search(conn, "my dog", k=10)]
    assert dogs[:1] == ["L00N0001"] and {"L05N0011", "L05N0012"} <= set(dogs)
    assert "L02N0006" not in dogs


def test_token_pieces_follow_gpt2_pre_tokenization():
    assert regex_pieces("Hello world, it's 42!") == [
        "Hello",
        " world",
        ",",
        " it",
        "'s",
        " 42",
        "!",
    ]
    assert " Paris" in query_tokens("Paris") and "Paris" in query_tokens("Paris")


def test_fulltext_over_explanations_and_excerpts(hashed):
    conn = open_reader(hashed)
    hits = fulltext_search(conn, "lawsuits", k=5)
    assert hits[0]["id"] == "L04N0010" and hits[0]["field"] == "explanation"
    excerpt_hits = fulltext_search(conn, "piano", k=5)
    assert [h["id"] for h in excerpt_hits] == ["L04N0009"]
    assert excerpt_hits[0]["field"] == "excerpts"
    assert fulltext_search(conn, "C++ don't", k=5) == []  # quoted: no FTS5 syntax error
    with pytest.raises(BadInput):
        fulltext_search(conn, "   ", k=5)


def test_fulltext_follows_explanation_edits(db_path):
    build_atlas(db_path)
    with AtlasWriter(db_path) as w:
        w.write_explanations("L00N0002", "openai", [("volcanic eruptions", None, None, None)])
    conn = open_reader(db_path)
    assert [h["id"] for h in fulltext_search(conn, "volcanic", field="explanations")] == [
        "L00N0002"
    ]
    assert fulltext_search(conn, "recipes", field="explanations") == []
    assert [h["id"] for h in fulltext_search(conn, "volcanic")] == ["L00N0002"]
    with pytest.raises(BadInput, match="neuronatlas index"):
        fulltext_search(conn, "piano", field="excerpts")
    with pytest.raises(BadInput, match="neuronatlas index"):
        token_search(conn, "piano")
    conn.close()
    out = CliRunner().invoke(app, ["index", "--db", str(db_path), "--silent"])
    assert out.exit_code == 0, out.output
    conn = open_reader(db_path)
    assert [h["id"] for h in fulltext_search(conn, "piano", field="excerpts")] == ["L04N0009"]
    assert token_search(conn, "piano")[0]["id"] == "L04N0009"


@pytest.mark.slow
def test_similar_by_tokens_is_symmetric_and_by_embedding_excludes_self(atlas):
    conn = open_reader(atlas)
    a = similar_neurons(conn, "L00N0001", k=10)
    b = similar_neurons(conn, "L5N12", k=10)
    ab = {r["id"]: r["similarity"] for r in a["by_tokens"]}
    ba = {r["id"]: r["similarity"] for r in b["by_tokens"]}
    assert ab["L05N0012"] == pytest.approx(ba["L00N0001"])
    # shares: L00N0001 dog 11/15, puppy 4/15; L05N0012 cat .4, dog 1/3, puppy 4/15
    assert ab["L05N0012"] == pytest.approx((1 / 3 + 4 / 15) / (2 - (1 / 3 + 4 / 15)), abs=1e-6)
    assert "L04N0010" not in ab
    assert "L00N0001" not in [r["id"] for r in a["by_embedding"]]
    assert a["by_embedding"][0]["id"] == "L05N0012"  # "pets" is nearest to "dogs and puppies"


@pytest.mark.slow
def test_cli_search_json_has_exactly_the_contract_keys(atlas):
    runner = CliRunner()
    out = runner.invoke(
        app, ["search", "canine companions", "--db", str(atlas), "--k", "2", "--json"]
    )
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert [list(r) for r in rows] == [HIT_KEYS, HIT_KEYS] and rows[0]["id"] == "L00N0001"
    out = runner.invoke(app, ["tokens", " Berlin", "--db", str(atlas), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)[0]["id"] == "L03N0008"
    out = runner.invoke(app, ["search", "lawsuits", "--db", str(atlas), "--fulltext", "--json"])
    assert json.loads(out.stdout)[0]["id"] == "L04N0010"


@pytest.mark.slow
def test_imported_openai_atlas_end_to_end(tmp_path):
    source = write_openai_source(tmp_path / "src")
    db = tmp_path / "gpt2.db"
    runner = CliRunner()
    for args in (
        [
            "import-openai",
            str(source),
            "--db",
            str(db),
            "--model",
            "gpt2-small",
            "--workers",
            "0",
            "--silent",
        ],
        ["embed", "--db", str(db), "--embedder", "all-MiniLM-L6-v2", "--silent"],
        ["index", "--db", str(db), "--silent"],
    ):
        out = runner.invoke(app, args)
        assert out.exit_code == 0, (args, out.output)
    for query in ("canine companions", "judge, attorney and trial"):
        out = runner.invoke(app, ["search", query, "--db", str(db), "--k", "1", "--json"])
        assert json.loads(out.stdout)[0]["id"] == QUERIES[query]
        assert json.loads(out.stdout)[0]["score"] == 0.5
    # the atlas records the gpt2 model id, so TEXT is cut with the offline GPT-2 tokenizer
    conn = open_reader(db)
    assert atlas_tokenizer(reader.meta(conn)) is not None
    rows = token_search(conn, "Paris and Berlin", k=3)
    assert rows[0]["id"] == "L03N0008"
