"""Derived data follows a changed primary explanation: vectors, search, similar neurons and the
map record what they were made from; `embed` and `map` redo exactly the stale ones, and the
neuron page says what is out of date until they do."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from map_fixtures import TopicWordsEmbedder, topical_atlas
from neuronatlas.cli import app
from neuronatlas.embed.embed import EmbedConfig, embed_atlas
from neuronatlas.map.placement import place
from neuronatlas.read.neuron import neuron_detail
from neuronatlas.read.relations import neuron_similar
from neuronatlas.search.semantic import clear_cache, semantic_search
from neuronatlas.store import AtlasWriter, open_reader
from neuronatlas.store.derived import staleness
from neuronatlas.store.embed import map_points
from neuronatlas.store.llm import write_scores

NEURON = "L00N0001"  # an "animals" neuron of the topical atlas
NEW_TEXT = "courts, judges and verdicts"  # words of the "law" topic only


def _make_primary(db, neuron_id: str, text: str) -> None:
    """Give the neuron a second explanation that outranks the first by score."""
    with AtlasWriter(db) as w:
        w.write_explanations(neuron_id, "llm:test", [(text, None, None, None)])
        eid = w.conn.execute(
            "SELECT id FROM explanations WHERE neuron_id = ? AND source = 'llm:test'",
            (neuron_id,),
        ).fetchone()[0]
        write_scores(w.conn, [(eid, "embedding", "test", 0.99, {}, None)])


def _map(db, *args: str):
    return CliRunner().invoke(
        app, ["map", "--db", str(db), "--neighbors", "5", "--seed", "3", "--clusters", "6", *args]
    )


@pytest.mark.slow  # UMAP's first fit in a process compiles for ~15 s of CPU
def test_primary_change_is_flagged_then_followed_by_embed_map_search_similar(tmp_path):
    db, topic_of = topical_atlas(tmp_path / "atlas.db")
    assert _map(db).exit_code == 0
    conn = open_reader(db)
    assert staleness(conn).fresh and neuron_detail(conn, NEURON).stale == {}
    conn.close()

    _make_primary(db, NEURON, NEW_TEXT)
    conn = open_reader(db)
    page = neuron_detail(conn, NEURON)
    assert page.explanation == NEW_TEXT
    assert set(page.stale) == {"embedding", "map"}
    assert f"neuronatlas embed --db {db}" in page.stale["embedding"]
    lag = staleness(conn)
    assert (lag.unembedded, lag.map_stale) == (1, 0)
    # search never shows the neuron with its old, no longer primary text
    clear_cache()
    hits = semantic_search(conn, "dogs cats puppies", k=60, embedder=TopicWordsEmbedder.name)
    assert NEURON not in {h["id"] for h in hits}
    conn.close()

    result = embed_atlas(db, EmbedConfig(embedder=TopicWordsEmbedder.name))
    assert result.embedded == 1  # exactly the stale one
    conn = open_reader(db)
    assert set(neuron_detail(conn, NEURON).stale) == {"map"}
    clear_cache()
    law = semantic_search(conn, "judges courts verdicts", k=11, embedder=TopicWordsEmbedder.name)
    assert NEURON in {h["id"] for h in law}
    assert next(h for h in law if h["id"] == NEURON)["explanation"] == NEW_TEXT
    # similar neurons follow: its neighbours are now law neurons
    similar = neuron_similar(conn, NEURON, k=5).by_embedding
    assert similar and all(topic_of[s.id] == "law" for s in similar)
    before = {p.id: p for p in map_points(conn)}
    conn.close()

    out = _map(db)
    assert out.exit_code == 0 and "placed 1 neurons" in out.output
    conn = open_reader(db)
    after = {p.id: p for p in map_points(conn)}
    assert staleness(conn).fresh and neuron_detail(conn, NEURON).stale == {}
    # only the changed neuron moved, into a law cluster, near the law points
    moved = [n for n in after if (after[n].x, after[n].y) != (before[n].x, before[n].y)]
    assert moved == [NEURON]
    law_clusters = {p.cluster for n, p in after.items() if topic_of[n] == "law" and n != NEURON}
    assert after[NEURON].cluster in law_clusters
    assert after[NEURON].explanation == NEW_TEXT
    conn.close()
    # nothing stale: the map is current, and --refit lays everything out again
    assert "up to date" in _map(db).output
    refit = _map(db, "--refit")
    assert refit.exit_code == 0 and "coarse clusters" in refit.output


def test_explain_style_change_names_the_commands_that_refresh(tmp_path):
    db, _ = topical_atlas(tmp_path / "atlas.db")
    _make_primary(db, NEURON, NEW_TEXT)
    out = CliRunner().invoke(app, ["show", NEURON, "--db", str(db)])
    assert out.exit_code == 0
    assert "out of date (embedding)" in out.output and "neuronatlas embed" in out.output


def test_placement_joins_the_cluster_of_its_nearest_points():
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16, dtype=np.float32)
    vecs = np.repeat(centres, 20, axis=0) + rng.normal(0, 0.05, (80, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    xy = np.repeat(np.array([[0, 0], [10, 0], [0, 10], [10, 10]], float), 20, axis=0)
    clusters = np.repeat(np.arange(4), 20)
    new = centres[[2, 1]] + 0.01
    new /= np.linalg.norm(new, axis=1, keepdims=True)
    where = place(vecs, xy, clusters, new)
    assert where.cluster.tolist() == [2, 1]
    assert np.allclose(where.xy, [[0, 10], [10, 0]])


def test_embedding_all_explanations_keeps_searching_every_explanation(tmp_path):
    db, _ = topical_atlas(tmp_path / "atlas.db")
    _make_primary(db, NEURON, NEW_TEXT)
    embed_atlas(db, EmbedConfig(embedder=TopicWordsEmbedder.name, all_explanations=True))
    conn = open_reader(db)
    clear_cache()
    hits = semantic_search(conn, "dogs cats puppies", k=60, embedder=TopicWordsEmbedder.name)
    assert NEURON in {h["id"] for h in hits}
    conn.close()
