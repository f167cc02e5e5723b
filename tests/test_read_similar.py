"""Similar neurons precomputed at build time (migration 009) are the ones a page would compute
per request, and a stage that changes their inputs drops them."""

from __future__ import annotations

import pytest

from embed_fixtures import NEURONS, build_atlas
from neuronatlas.embed.embed import EmbedConfig, embed_atlas
from neuronatlas.read import neuron as read_neuron
from neuronatlas.read import relations as read_relations
from neuronatlas.relations.similar import precompute_similar
from neuronatlas.relations.stage import SIMILAR, SimilarSettings
from neuronatlas.stage import no_progress
from neuronatlas.store import AtlasWriter, browse, open_reader
from neuronatlas.store.search import rebuild_search_indexes


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    path = build_atlas(tmp_path_factory.mktemp("similar") / "atlas.db")
    with AtlasWriter(path) as w:
        rebuild_search_indexes(w.conn)
    embed_atlas(path, EmbedConfig(embedder="test-hashing"))
    SIMILAR.run(path, SimilarSettings(), no_progress)  # the stage after embed: both kinds
    return path


def test_the_similar_stage_stores_both_kinds(atlas):
    conn = open_reader(atlas)
    assert browse.similar_built(conn) == {"embedding": 20, "tokens": 20}
    n = conn.execute("SELECT count(DISTINCT neuron_id) FROM similar_neurons").fetchone()[0]
    assert n == len(NEURONS)


@pytest.mark.parametrize("k", [3, 10])
def test_stored_neighbours_equal_the_computed_ones(atlas, monkeypatch, k):
    conn = open_reader(atlas)
    ids = [r[0] for r in conn.execute("SELECT id FROM neuron_info")]
    stored = {nid: read_neuron.neuron_detail(conn, nid, similar_k=k).similar for nid in ids}
    monkeypatch.setattr(browse, "similar_built", lambda conn: {})  # compute per request
    for nid in ids:
        live = read_neuron.neuron_detail(conn, nid, similar_k=k).similar
        assert stored[nid] is not None and live is not None
        assert [h.id for h in stored[nid].by_tokens] == [h.id for h in live.by_tokens], nid
        assert stored[nid].by_tokens == live.by_tokens
        # the same cosines, best first; neurons tied on a cosine may come in either order
        got = [round(h.similarity, 5) for h in stored[nid].by_embedding]
        assert got == [round(h.similarity, 5) for h in live.by_embedding], nid
        if got:
            above = {h.id for h in live.by_embedding if round(h.similarity, 5) > got[-1]}
            assert above <= {h.id for h in stored[nid].by_embedding}, nid
    assert any(s.by_tokens for s in stored.values())
    assert all(len(s.by_embedding) == min(k, len(ids) - 1) for s in stored.values())


def test_neighbours_through_the_hnsw_graph_equal_the_exact_ones(atlas, monkeypatch, tmp_path):
    """Above EXACT_MAX the block search asks the HNSW graph; on a small atlas the graph is
    exact, so both paths must store the same neighbours."""
    from collections import Counter, OrderedDict

    from neuronatlas.relations import similar
    from neuronatlas.search import semantic, vector_index

    conn = open_reader(atlas)
    exact = list(similar._all_by_embedding(conn, 10))
    monkeypatch.setenv("NEURONATLAS_HOME", str(tmp_path))
    monkeypatch.setattr(vector_index, "EXACT_MAX", 5)
    monkeypatch.setattr(semantic, "_CACHE", OrderedDict())
    assert semantic.load_vectors(conn).index.approximate
    graph = list(similar._all_by_embedding(conn, 10))
    assert [(r[0], r[1], round(r[3], 5)) for r in graph] == [
        (r[0], r[1], round(r[3], 5)) for r in exact
    ]
    ties = Counter((r[0], round(r[3], 5)) for r in exact)
    untied = [
        (a[2], b[2]) for a, b in zip(graph, exact, strict=True) if ties[b[0], round(b[3], 5)] == 1
    ]
    assert untied and all(a == b for a, b in untied)
    assert len(exact) == len(NEURONS) * 10


@pytest.mark.parametrize("budget", [1, 50, 1 << 20])
@pytest.mark.parametrize("dense", [0, 1 << 30], ids=["sorted-keys", "dense-table"])
def test_token_neighbours_in_blocks_equal_the_per_neuron_join(atlas, budget, dense, monkeypatch):
    """One query per block, a few, or all in one, each block summed by sorting its pair keys
    or in a dense table: each neuron's rows are the self-join's."""
    from neuronatlas.relations import token_neighbours
    from neuronatlas.relations.similar import _token_neighbours
    from neuronatlas.relations.token_neighbours import all_token_neighbours
    from neuronatlas.store.search import token_shares

    monkeypatch.setattr(token_neighbours, "DENSE_PER_PAIR", dense)

    conn = open_reader(atlas)
    got = dict(all_token_neighbours(token_shares(conn), 7, budget))
    with_tokens = {r[0] for r in conn.execute("SELECT DISTINCT neuron_id FROM token_index")}
    assert set(got) == with_tokens and any(len(v) > 1 for v in got.values())
    for nid in with_tokens:
        assert got[nid] == _token_neighbours(conn, nid, 7), nid


def test_new_inputs_drop_the_stored_kind(atlas, tmp_path):
    import shutil

    copy = tmp_path / "copy.db"
    shutil.copy(atlas, copy)
    with AtlasWriter(copy) as w:
        rebuild_search_indexes(w.conn, excerpts=False)
        assert browse.similar_built(w.conn) == {"embedding": 20}
        assert precompute_similar(w.conn, ["tokens"], k=5)["tokens"] > 0
        assert browse.similar_built(w.conn) == {"embedding": 20, "tokens": 5}
    conn = open_reader(copy)
    # k above what was stored for tokens: that kind is computed, the other read
    page = read_neuron.neuron_detail(conn, "L00N0001", similar_k=8)
    assert page.similar is not None and len(page.similar.by_tokens) <= 8


def test_served_pages_read_the_stored_neighbours_on_the_loop(atlas):
    from fastapi.testclient import TestClient

    from neuronatlas.web import create_app

    with TestClient(create_app(atlas)) as client:
        assert client.app.state.similar_k >= read_relations.DEFAULT_SIMILAR
        body = client.get("/api/neurons/L05N0012?view=full").json()
        assert client.get("/api/neurons/L05N0012/similar").json() == body["similar"]
    conn = open_reader(atlas)
    want = read_neuron.neuron_detail(conn, "L05N0012").similar
    assert [h["id"] for h in body["similar"]["by_tokens"]] == [h.id for h in want.by_tokens]
    assert "L00N0001" in [h["id"] for h in body["similar"]["by_tokens"]]
