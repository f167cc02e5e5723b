"""The neuron map: UMAP layout, clusters and c-TF-IDF labels, stored with their parameters."""

from __future__ import annotations

import pytest

from embed_fixtures import NEURONS, build_atlas
from neuronatlas.embed.embed import EmbedConfig, embed_atlas
from neuronatlas.errors import BadInput
from neuronatlas.map.labels import class_tfidf
from neuronatlas.map.neuron_map import MapConfig, build_map
from neuronatlas.store import open_reader
from neuronatlas.store.embed import cluster_labels, map_info, map_points


@pytest.mark.slow
def test_every_embedded_neuron_gets_a_point_a_cluster_and_a_label(db_path):
    build_atlas(db_path)
    with pytest.raises(BadInput, match="embed"):
        build_map(db_path)
    embed_atlas(db_path, EmbedConfig(embedder="all-MiniLM-L6-v2"))
    config = MapConfig(neighbors=5, seed=7, min_cluster_size=2)
    result = build_map(db_path, config)
    conn = open_reader(db_path)
    points = map_points(conn)
    assert result.points == len(points) == len(NEURONS)
    assert {p.id for p in points} == {f"L{a:02d}N{b:04d}" for a, b in NEURONS}
    assert set(points[0].__struct_fields__) == {
        "id",
        "layer",
        "neuron",
        "x",
        "y",
        "cluster",
        "explanation",
        "score",
    }
    clusters = cluster_labels(conn)
    assert {c.cluster for c in clusters} == {p.cluster for p in points}
    assert sum(c.size for c in clusters) == len(points)
    for c in clusters:
        assert c.label
    info = map_info(conn)
    assert info.config["neighbors"] == 5 and info.config["seed"] == 7
    assert info.embedder == "all-MiniLM-L6-v2" and info.n_points == len(NEURONS)
    # the same seed and vectors give the same layout
    assert build_map(db_path, config).action == "current"
    assert build_map(db_path, config, refit=True).action == "refit"
    again = map_points(open_reader(db_path))
    assert [(p.x, p.y) for p in again] == [(p.x, p.y) for p in points]
    # re-embedding with another model drops the stale map
    embed_atlas(db_path, EmbedConfig(embedder="test-hashing", reembed=True))
    assert map_points(open_reader(db_path)) == []


def test_class_tfidf_prefers_words_particular_to_a_cluster():
    top = class_tfidf(
        {
            0: ["dogs and puppies", "dogs barking", "words about cats"],
            1: ["taxes and law", "law courts", "words about cats"],
        }
    )
    assert top[0][0][0] == "dogs" and top[1][0][0] == "law"
    assert all(w not in ("and", "words", "about") for c in top.values() for w, _ in c)


def test_map_parameters_are_checked():
    with pytest.raises(BadInput):
        MapConfig(neighbors=1)
    with pytest.raises(BadInput):
        MapConfig(min_dist=2.0)


@pytest.mark.slow  # UMAP's first fit in a process compiles for ~15 s of CPU
def test_kmeans_clusters_on_vectors(db_path):
    build_atlas(db_path)
    embed_atlas(db_path, EmbedConfig(embedder="test-hashing"))
    build_map(db_path, MapConfig(neighbors=4, clusterer="kmeans", n_clusters=3))
    clusters = cluster_labels(open_reader(db_path))
    assert len(clusters) == 3 and sum(c.size for c in clusters) == len(NEURONS)


def test_a_large_map_of_many_duplicate_explanations_starts_from_pca(monkeypatch):
    """Neurons with equal explanations have equal vectors, so UMAP's neighbour graph splits
    into many components; above SPECTRAL_MAX the layout starts from PCA (the spectral start
    lays out each component over the whole graph, which took > 10 min at GPT-2 XL's size).
    Equal vectors still land together and distinct groups apart."""
    import numpy as np

    from neuronatlas.map import neuron_map

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(60, 16)).astype(np.float32)
    groups = np.repeat(np.arange(60), 8)  # 60 texts, 8 neurons each: ≥ 60 components
    matrix = centres[groups]
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    monkeypatch.setattr(neuron_map, "SPECTRAL_MAX", 100)
    assert neuron_map.initial_layout(len(matrix)) == "pca"
    coords = neuron_map.layout(matrix, MapConfig(neighbors=5))
    assert coords.shape == (480, 2) and np.isfinite(coords).all()
    spread_within = np.mean([coords[groups == g].std(axis=0).sum() for g in range(60)])
    spread_all = coords.std(axis=0).sum()
    assert spread_within < 0.2 * spread_all
