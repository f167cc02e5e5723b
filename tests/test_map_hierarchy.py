"""The map's cluster hierarchy: every neuron in a fine cluster, fine clusters nested in coarse
ones, labels made of each cluster's own distinctive words, and coherence measured exactly."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy.sparse import csr_matrix

from map_fixtures import topical_atlas
from neuronatlas.errors import BadInput
from neuronatlas.map.coherence import coherence, pair_means, word_vectors
from neuronatlas.map.hierarchy import build_hierarchy, default_counts
from neuronatlas.map.labels import distinct_labels, stopwords, words
from neuronatlas.map.neuron_map import MapConfig, build_map
from neuronatlas.store import open_reader
from neuronatlas.store.embed import (
    cluster_labels,
    cluster_parents,
    coarse_clusters,
    map_coherence,
    map_points,
)
from neuronatlas.web import create_app


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    path, topic_of = topical_atlas(tmp_path_factory.mktemp("hier") / "atlas.db")
    result = build_map(path, MapConfig(neighbors=5, seed=3, n_clusters=6, n_coarse=3))
    return path, topic_of, result


def planted(n_themes=4, topics_per_theme=3, per_topic=25, dim=48, seed=0):
    """Unit vectors around topic centres that sit around theme centres (a real hierarchy)."""
    rng = np.random.default_rng(seed)
    rows, topic, theme = [], [], []
    for a in range(n_themes):
        centre = rng.normal(size=dim) * 3
        for b in range(topics_per_theme):
            sub = centre + rng.normal(size=dim)
            rows.append(sub + rng.normal(size=(per_topic, dim)) * 0.25)
            topic += [a * topics_per_theme + b] * per_topic
            theme += [a] * per_topic
    m = np.vstack(rows)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m.astype(np.float32), np.array(topic), np.array(theme)


def purity(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of points whose found cluster's majority truth is their own."""
    hits = sum(np.bincount(truth[found == c]).max() for c in np.unique(found))
    return hits / len(found)


def test_default_counts_give_tens_coarse_and_hundreds_fine():
    assert default_counts(36_864) == (32, 192)
    assert default_counts(307_200) == (50, 300)
    coarse, fine = default_counts(12)
    assert 2 <= coarse <= fine <= 12


def test_kmeans_hierarchy_assigns_every_point_and_nests():
    m, topic, theme = planted()
    h = build_hierarchy(m, np.zeros((len(m), 2)), "kmeans", n_fine=12, n_coarse=4, seed=1)
    assert h.fine.shape == (len(m),) and h.fine.min() == 0 and h.n_fine == 12
    assert h.n_coarse == 4
    for f in range(h.n_fine):  # every point of a fine cluster has that cluster's one parent
        assert set(h.coarse[h.fine == f].tolist()) == {h.parent[f]}
    assert purity(h.fine, topic) > 0.95 and purity(h.coarse, theme) > 0.95
    sizes = np.bincount(h.fine)
    assert list(sizes) == sorted(sizes, reverse=True)  # numbered largest first


def test_hdbscan_outliers_join_the_nearest_cluster():
    m, topic, _ = planted(n_themes=2, topics_per_theme=2, per_topic=40)
    rng = np.random.default_rng(5)
    coords = np.vstack([rng.normal(loc=(10 * (t % 2), 10 * (t // 2)), size=2) for t in topic])
    coords[:4] = [[50, 50], [-40, 5], [5, -60], [30, -30]]  # lone points HDBSCAN calls noise
    h = build_hierarchy(m, coords, "hdbscan", n_coarse=2, min_cluster_size=10, seed=0)
    assert h.fine.min() >= 0 and len(h.fine) == len(m)
    assert h.n_coarse == 2 and purity(h.fine, topic) > 0.9
    with pytest.raises(BadInput, match="clusterer"):
        build_hierarchy(m, coords, "spectral")  # type: ignore[arg-type]


def test_pair_means_are_exact():
    rng = np.random.default_rng(2)
    m = rng.normal(size=(30, 5))
    labels = rng.integers(0, 4, size=30)
    labels[0] = 4  # a singleton
    per_cluster, random = pair_means(m, labels)
    sims = m @ m.T
    for c in range(int(labels.max()) + 1):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:
            assert np.isnan(per_cluster[c])
            continue
        block = sims[np.ix_(idx, idx)]
        want = (block.sum() - np.trace(block)) / (len(idx) * (len(idx) - 1))
        assert per_cluster[c] == pytest.approx(want)
    assert random == pytest.approx((sims.sum() - np.trace(sims)) / (30 * 29))
    sparse_per, sparse_random = pair_means(csr_matrix(m), labels)
    assert np.allclose(np.nan_to_num(sparse_per), np.nan_to_num(per_cluster))
    assert sparse_random == pytest.approx(random)


def test_coherence_separates_real_clusters_from_a_shuffle():
    m, topic, _ = planted()
    real, _ = coherence(m, topic, "fine", "embedding")
    shuffled, _ = coherence(m, np.random.default_rng(0).permutation(topic), "fine", "embedding")
    assert real.within_low <= real.within <= real.within_high
    assert real.lift > 0.3 and real.within_low > real.random
    assert abs(shuffled.lift) < 0.05
    assert shuffled.random == pytest.approx(real.random)


def test_distinct_labels_extend_ties_with_each_clusters_own_words():
    top = {
        0: [("dogs", 1.0), ("cats", 0.5), ("pets", 0.2), ("vets", 0.1)],
        1: [("dogs", 1.0), ("cats", 0.5), ("pets", 0.2), ("barks", 0.1)],
        2: [("law", 1.0)],
        3: [("law", 1.0)],
        4: [("rain", 1.0), ("snow", 0.4), ("wind", 0.3), ("fog", 0.2)],
    }
    labels = distinct_labels(top)
    assert labels[0] == "dogs, cats, pets, vets" and labels[1] == "dogs, cats, pets, barks"
    assert labels[2] == "law (#2)" and labels[3] == "law (#3)"
    assert labels[4] == "rain, snow, wind"
    assert len(set(labels.values())) == len(labels)


def test_word_vectors_skip_stopwords_and_read_any_script():
    assert words("fires on “Москва”, “the”, “日本”", stopwords()) == ["москва", "日本"]
    vecs = word_vectors(["dogs and cats", "the tokens", "dogs"])
    assert vecs.shape[0] == 3 and vecs[1].nnz == 0  # nothing but stopwords: a zero row


@pytest.mark.slow  # UMAP's first fit in a process costs ~15 s of CPU
def test_built_map_puts_every_neuron_in_a_labelled_nested_cluster(mapped):
    path, topic_of, result = mapped
    conn = open_reader(path)
    points = map_points(conn)
    assert len(points) == len(topic_of) == result.points
    assert result.clusters == 6 and result.coarse == 3
    fine = {c.cluster: c for c in cluster_labels(conn)}
    assert set(fine) == set(range(6)) and {p.cluster for p in points} == set(fine)
    parents = cluster_parents(conn)
    coarse = coarse_clusters(conn)
    assert set(parents) == set(fine) and {p.parent for p in parents.values()} == {0, 1, 2}
    for c in coarse:  # a coarse cluster is exactly the union of its fine children
        assert c.children and all(parents[f].parent == c.cluster for f in c.children)
        assert c.size == sum(fine[f].size for f in c.children)
    assert sorted(f for c in coarse for f in c.children) == sorted(fine)
    # fine clusters recover the planted topics
    for cl in fine:
        assert len({topic_of[p.id] for p in points if p.cluster == cl}) == 1
    # labels: distinct, and made of words of the cluster's own explanations
    stop = stopwords()
    for level, clusters, members in (
        ("fine", list(fine.values()), lambda c: [c.cluster]),
        ("coarse", coarse, lambda c: c.children),
    ):
        labels = [c.label for c in clusters]
        assert len(set(labels)) == len(labels), level
        for c in clusters:
            own = {w for p in points if p.cluster in members(c) for w in words(p.explanation, stop)}
            assert set(c.label.split(", ")) <= own, (level, c.label)


@pytest.mark.slow  # UMAP's first fit in a process costs ~15 s of CPU
def test_built_map_stores_the_coherence_of_both_levels(mapped):
    path, _, result = mapped
    rows = map_coherence(open_reader(path))
    assert {(r.level, r.measure) for r in rows} == {
        (level, measure) for level in ("fine", "coarse") for measure in ("embedding", "words")
    }
    for r in rows:
        assert r.within_low <= r.within <= r.within_high
        assert r.within > r.random, r
    assert len(result.coherence) == 4
    fine_words = next(r for r in rows if (r.level, r.measure) == ("fine", "words"))
    coarse_words = next(r for r in rows if (r.level, r.measure) == ("coarse", "words"))
    assert fine_words.within > coarse_words.within  # smaller clusters, closer explanations


@pytest.mark.slow  # UMAP's first fit in a process costs ~15 s of CPU
def test_map_api_carries_both_levels(mapped):
    path, _, _ = mapped
    with TestClient(create_app(path)) as client:
        body = client.get("/api/map").json()
    cols = body["columns"]
    parent = {c["cluster"]: c["parent"] for c in body["clusters"]}
    assert len(parent) == 6 and set(parent.values()) == {0, 1, 2}
    assert cols["coarse"] == [parent[c] for c in cols["cluster"]]
    assert [c["cluster"] for c in body["coarse"]] and all(c["label"] for c in body["coarse"])
    assert all(c["coherence"] is not None for c in body["clusters"])
    assert len(body["coherence"]) == 4


@pytest.mark.slow  # UMAP's first fit in a process costs ~15 s of CPU
def test_map_command_builds_both_levels_and_prints_coherence(tmp_path):
    from typer.testing import CliRunner

    from neuronatlas.cli import app

    path, _ = topical_atlas(tmp_path / "atlas.db")
    args = ["map", "--db", str(path), "--clusters", "6", "--coarse", "3", "--neighbors", "5"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "3 coarse clusters of 6 fine ones, every neuron in one" in out.output
    assert "fine coherence (words): within" in out.output
    assert len(coarse_clusters(open_reader(path))) == 3
    bad = CliRunner().invoke(app, ["map", "--db", str(path), "--clusters", "0"])
    assert isinstance(bad.exception, BadInput) and "--clusters must be ≥ 1" in str(bad.exception)
