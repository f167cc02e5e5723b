"""The explorer over an atlas with every read stage built (embeddings, map, token index):
the real embed/search/map functions behind /api/search, /api/tokens, /api/map and the pages."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from embed_fixtures import NEURONS, build_atlas
from neuronatlas.embed.embed import EmbedConfig, embed_atlas
from neuronatlas.map.neuron_map import MapConfig, build_map
from neuronatlas.store import AtlasWriter
from neuronatlas.store.search import rebuild_search_indexes
from neuronatlas.web import create_app

HTML = {"accept": "text/html"}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    path = build_atlas(tmp_path_factory.mktemp("stages") / "atlas.db")
    embed_atlas(path, EmbedConfig(embedder="test-hashing"))
    with AtlasWriter(path) as w:
        rebuild_search_indexes(w.conn)
    return path


@pytest.fixture(scope="module")
def client(embedded):
    with TestClient(create_app(embedded)) as c:
        yield c


@pytest.fixture(scope="module")
def mapped_client(embedded):
    """With the map built: UMAP's first fit in a process compiles for ~15 s of CPU (slow)."""
    build_map(embedded, MapConfig(neighbors=4, clusterer="kmeans", n_clusters=3, seed=1))
    with TestClient(create_app(embedded)) as c:
        yield c


def test_auto_search_is_semantic_once_embedded(client):
    body = client.get("/api/search?q=dogs and puppies&k=3").json()
    assert body["mode"] == "semantic"
    assert body["results"][0]["id"] == "L00N0001"
    assert body["results"][0]["similarity"] > body["results"][-1]["similarity"]


def test_fulltext_and_token_search(client):
    full = client.get("/api/search?q=weather&mode=fulltext").json()
    assert full["results"][0]["id"] == "L01N0004"
    tokens = client.get("/api/tokens?q=the piano").json()
    assert tokens["mode"] == "tokens" and tokens["results"][0]["id"] == "L04N0009"


@pytest.mark.slow
def test_map_is_built_with_clusters(mapped_client):
    body = mapped_client.get("/api/map").json()
    assert body["built"] is True and body["message"] is None
    assert body["count"] == len(NEURONS)
    assert len({c for c in body["columns"]["cluster"]}) == 3
    assert len(body["clusters"]) == 3 and all(c["label"] for c in body["clusters"])
    assert all(isinstance(v, float) for v in body["columns"]["x"])


def test_neuron_shows_similar_neurons(client):
    body = client.get("/api/neurons/L05N0012?view=full").json()
    assert "similar" not in body["unavailable"]
    by_tokens = [s["id"] for s in body["similar"]["by_tokens"]]
    assert "L00N0001" in by_tokens  # both peak on " dog" / " puppy"
    assert body["similar"]["by_embedding"]
    page = client.get("/neurons/L05N0012?view=full", headers=HTML).text
    assert 'href="/neurons/L00N0001"' in page


def test_search_page_semantic_results(client):
    page = client.get("/search?q=dogs and puppies", headers=HTML).text
    assert "semantic" in page and 'href="/neurons/L00N0001"' in page
