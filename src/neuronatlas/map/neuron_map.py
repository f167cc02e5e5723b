"""The neuron map: UMAP of explanation embeddings to 2-D, a two-level cluster hierarchy, labels.

One point per embedded neuron (its primary explanation's vector, or its first embedded one).
UMAP uses the cosine metric and a fixed seed, so the same vectors and parameters give the same
map. Every point gets a fine cluster, and each fine cluster sits in one coarse cluster
(`hierarchy.py`): the page shows the coarse labels zoomed out and the fine ones zoomed in. Each
cluster gets a c-TF-IDF label from its explanations' words (`labels.py`), distinct across its
level, and a coherence (`coherence.py`). The whole map is replaced at once, stored with its
parameters and the coherence of both levels.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from neuronatlas.errors import BadInput
from neuronatlas.map.coherence import Coherence, coherence, word_vectors
from neuronatlas.map.hierarchy import Hierarchy, build_hierarchy
from neuronatlas.map.labels import class_tfidf, distinct_labels
from neuronatlas.map.placement import place
from neuronatlas.store import AtlasWriter, derived
from neuronatlas.store import embed as store

log = logging.getLogger(__name__)

#: Words kept per cluster (the label uses the first few; more break ties between labels).
LABEL_WORDS = 8


@dataclass(frozen=True)
class MapConfig:
    """Settings of one map run (stored in `map_config` and `runs`)."""

    #: UMAP neighbourhood size: larger keeps more global structure.
    neighbors: int = 15
    #: UMAP minimum distance between points in the layout (0 … 1).
    min_dist: float = 0.1
    #: Random seed: fixes the layout and the clusters (UMAP then runs single-threaded).
    seed: int = 42
    #: Fine clusters from 'kmeans' on the embedding vectors, or 'hdbscan' (leaf clusters on
    #: the 2-D layout, each outlier given to the nearest cluster).
    clusterer: Literal["kmeans", "hdbscan"] = "kmeans"
    #: HDBSCAN's smallest cluster; None = n / 400 (at least 5).
    min_cluster_size: int | None = None
    #: Fine (k-means) cluster count; None = about √n, at most 300.
    n_clusters: int | None = None
    #: Coarse cluster count; None = about a sixth of the fine count (at least 2).
    n_coarse: int | None = None

    def __post_init__(self) -> None:
        if self.neighbors < 2:
            raise BadInput(f"--neighbors must be ≥ 2, not {self.neighbors}")
        if not 0.0 <= self.min_dist <= 1.0:
            raise BadInput(f"--min-dist must be in [0, 1], not {self.min_dist}")
        if self.clusterer not in ("hdbscan", "kmeans"):
            raise BadInput(f"--clusterer must be kmeans or hdbscan, not {self.clusterer!r}")
        for name, value in (("--clusters", self.n_clusters), ("--coarse", self.n_coarse)):
            if value is not None and value < 1:
                raise BadInput(f"{name} must be ≥ 1, not {value}")


@dataclass
class MapResult:
    points: int
    #: fine clusters (every point is in one)
    clusters: int
    coarse: int
    embedder: str
    coherence: list[Coherence] = field(default_factory=list)
    #: how the map was brought up to date: "refit" (UMAP and clusters anew), "placed" (new or
    #: changed neurons placed on the stored map) or "current" (nothing to do)
    action: str = "refit"
    #: neurons placed on the stored map (action "placed")
    placed: int = 0


#: Above this many points UMAP starts from PCA instead of the graph's spectral embedding.
#: Neurons with the same explanation have the same vector, so the neighbour graph falls
#: into thousands of components, and umap-learn lays out each component by slicing the whole
#: graph (time ∝ components × n): at 307,200 points it ran for more than ten minutes without
#: finishing. A PCA start costs one pass over the vectors at any size.
SPECTRAL_MAX = 60_000


def initial_layout(n: int) -> str:
    """UMAP's `init` for n points (see `SPECTRAL_MAX`; random for tiny maps, where the
    spectral solver can fail)."""
    if n < 100:
        return "random"
    return "spectral" if n <= SPECTRAL_MAX else "pca"


def layout(matrix: np.ndarray, config: MapConfig) -> np.ndarray:
    """UMAP 2-D coordinates (float64, n × 2) of unit vectors, cosine metric, seeded."""
    import umap

    n = matrix.shape[0]
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=max(2, min(config.neighbors, n - 1)),
        min_dist=config.min_dist,
        metric="cosine",
        random_state=config.seed,
        init=initial_layout(n),
        n_jobs=1,  # a fixed seed makes UMAP single-threaded anyway; say so, no warning
    )
    return np.asarray(reducer.fit_transform(matrix), dtype=np.float64)


@dataclass
class Level:
    """One level of the hierarchy as stored: a row per cluster, and the level's coherence."""

    #: (cluster, label, words, size, x, y, coherence) per cluster
    clusters: list[tuple[int, str, list[tuple[str, float]], int, float, float, float | None]]
    coherence: list[Coherence]


def label_position(coords: np.ndarray) -> tuple[float, float]:
    """Where a cluster's label goes: the member nearest the members' median, so the label
    sits on the cluster even when its points form a crescent or two islands."""
    median = np.median(coords, axis=0)
    x, y = coords[np.argmin(((coords - median) ** 2).sum(axis=1))].tolist()
    return float(x), float(y)


def describe_level(
    name: str, labels: np.ndarray, coords: np.ndarray, texts: list[str], vectors: dict
) -> Level:
    """Labels, sizes, label positions and coherence of one level's clusters."""
    k = int(labels.max()) + 1
    docs: dict[int, list[str]] = {c: [] for c in range(k)}
    for c, text in zip(labels.tolist(), texts, strict=True):
        docs[c].append(text)
    top = class_tfidf(docs, top=LABEL_WORDS)
    names = distinct_labels(top)
    scores = []
    per_cluster = None
    for measure, vecs in vectors.items():
        score, sims = coherence(vecs, labels, name, measure)
        scores.append(score)
        if measure == "embedding":
            per_cluster = sims
    rows = []
    for c in range(k):
        mask = labels == c
        x, y = label_position(coords[mask])
        sim = None if per_cluster is None or np.isnan(per_cluster[c]) else float(per_cluster[c])
        rows.append((c, names[c], top[c], int(mask.sum()), x, y, sim))
    return Level(rows, scores)


def describe(hierarchy: Hierarchy, coords: np.ndarray, matrix: np.ndarray, texts: list[str]):
    """(fine level, coarse level) of a hierarchy, coherence by embedding and by words."""
    vectors = {"embedding": matrix, "words": word_vectors(texts)}
    fine = describe_level("fine", hierarchy.fine, coords, texts, vectors)
    coarse = describe_level("coarse", hierarchy.coarse, coords, texts, vectors)
    return fine, coarse


#: Above this share of stale points (relative to the current ones) the map is refit: placing
#: many points on a layout made without them would describe the old atlas more than the new.
PLACE_AT_MOST = 0.25


def _update_in_place(writer: AtlasWriter, config: MapConfig, embedder: str) -> MapResult | None:
    """Bring a stored map with the same embedder and settings up to date without refitting:
    nothing to do, or place the few stale neurons (see `placement`). None: refit instead."""
    conn = writer.conn
    info = store.map_info(conn)
    if info is None or info.embedder != embedder or info.config != asdict(config):
        return None
    hood = derived.map_neighbourhood(conn)
    fine = int(conn.execute("SELECT count(*) FROM map_clusters").fetchone()[0])
    coarse = int(conn.execute("SELECT count(*) FROM map_coarse_clusters").fetchone()[0])
    if not hood.todo_ids:
        return MapResult(len(hood.placed_ids), fine, coarse, embedder, action="current")
    if len(hood.todo_ids) > PLACE_AT_MOST * len(hood.placed_ids):
        return None
    run = writer.begin_run("map", asdict(config) | {"placed": len(hood.todo_ids)})
    try:
        where = place(hood.placed_vectors, hood.placed_xy, hood.placed_cluster, hood.todo_vectors)
        derived.place_points(
            conn,
            [
                (nid, eid, float(x), float(y), int(c))
                for nid, eid, (x, y), c in zip(
                    hood.todo_ids,
                    hood.todo_explanations,
                    where.xy.tolist(),
                    where.cluster.tolist(),
                    strict=True,
                )
            ],
        )
    except BaseException:
        writer.end_run(run, "failed")
        raise
    writer.end_run(run, "done")
    total = len(hood.placed_ids) + len(hood.todo_ids)
    return MapResult(total, fine, coarse, embedder, action="placed", placed=len(hood.todo_ids))


def build_map(db: str | Path, config: MapConfig | None = None, *, refit: bool = False) -> MapResult:
    """Bring the stored map up to date with the atlas's embedded primary explanations.

    With the same embedder and settings as the stored map, neurons whose primary explanation
    changed (or that are new) are placed on it, when they are at most `PLACE_AT_MOST` of it;
    otherwise, or with `refit`, every embedded neuron is laid out, clustered (two levels) and
    labelled anew, replacing the stored map."""
    config = config or MapConfig()
    with AtlasWriter(db) as writer:
        conn = writer.conn
        names = store.stored_embedders(conn)
        if not names:
            raise BadInput(f"{db}: nothing is embedded yet: run `neuronatlas embed --db {db}`")
        if not refit:
            updated = _update_in_place(writer, config, names[0])
            if updated is not None:
                return updated
        neuron_ids, explanation_ids, matrix = store.neuron_vectors(conn)
        if len(neuron_ids) < 3:
            raise BadInput(
                f"the map needs at least 3 embedded neurons, this atlas has {len(neuron_ids)}"
            )
        run = writer.begin_run("map", asdict(config))
        try:
            coords = layout(matrix, config)
            hierarchy = build_hierarchy(
                matrix,
                coords,
                config.clusterer,
                n_fine=config.n_clusters,
                n_coarse=config.n_coarse,
                min_cluster_size=config.min_cluster_size,
                seed=config.seed,
            )
            texts = store.explanation_texts(conn, explanation_ids)
            fine, coarse = describe(hierarchy, coords, matrix, texts)
            points = [
                (nid, eid, float(x), float(y), int(c))
                for nid, eid, (x, y), c in zip(
                    neuron_ids,
                    explanation_ids,
                    coords.tolist(),
                    hierarchy.fine.tolist(),
                    strict=True,
                )
            ]
            store.write_map(
                conn,
                points,
                [row[:6] for row in fine.clusters],
                names[0],
                asdict(config),
                run,
                coarse=coarse.clusters,
                parents=[
                    (c, int(hierarchy.parent[c]), row[6]) for c, row in enumerate(fine.clusters)
                ],
                quality=[
                    store.CoherenceRow(
                        q.level,
                        q.measure,
                        q.clusters,
                        q.within,
                        q.within_low,
                        q.within_high,
                        q.random,
                    )
                    for q in fine.coherence + coarse.coherence
                ],
            )
        except BaseException:
            writer.end_run(run, "failed")
            raise
        writer.end_run(run, "done")
    return MapResult(
        len(points),
        hierarchy.n_fine,
        hierarchy.n_coarse,
        names[0],
        fine.coherence + coarse.coherence,
    )
