"""The neuron map: UMAP of explanation embeddings to 2-D, clusters, and a label per cluster.

One point per embedded neuron (its primary explanation's vector, or its first embedded one).
UMAP uses the cosine metric and a fixed seed, so the same vectors and parameters give the same
map. Clusters come from HDBSCAN on the 2-D layout (what the user sees as islands) or k-means on
the full vectors; each gets a c-TF-IDF label (`labels.py`). The whole map is replaced at once,
stored with its parameters.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from neuronatlas.embed.labels import class_tfidf, label_of
from neuronatlas.errors import BadInput
from neuronatlas.store import AtlasWriter
from neuronatlas.store import embed as store

log = logging.getLogger(__name__)

NOISE = -1


@dataclass(frozen=True)
class MapConfig:
    """Settings of one map run (stored in `map_config` and `runs`)."""

    #: UMAP neighbourhood size: larger keeps more global structure.
    neighbors: int = 15
    #: UMAP minimum distance between points in the layout (0 … 1).
    min_dist: float = 0.1
    #: Random seed: fixes the layout (UMAP then runs single-threaded).
    seed: int = 42
    #: 'hdbscan' on the 2-D layout, or 'kmeans' on the embedding vectors.
    clusterer: Literal["hdbscan", "kmeans"] = "hdbscan"
    #: HDBSCAN's smallest cluster; None = about √n / 2 (at least 3).
    min_cluster_size: int | None = None
    #: k-means cluster count; None = about √(n / 2).
    n_clusters: int | None = None

    def __post_init__(self) -> None:
        if self.neighbors < 2:
            raise BadInput(f"--neighbors must be ≥ 2, not {self.neighbors}")
        if not 0.0 <= self.min_dist <= 1.0:
            raise BadInput(f"--min-dist must be in [0, 1], not {self.min_dist}")
        if self.clusterer not in ("hdbscan", "kmeans"):
            raise BadInput(f"--clusterer must be hdbscan or kmeans, not {self.clusterer!r}")


@dataclass
class MapResult:
    points: int
    clusters: int
    noise: int
    embedder: str


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
        init="spectral" if n >= 100 else "random",
        n_jobs=1,  # a fixed seed makes UMAP single-threaded anyway; say so, no warning
    )
    return np.asarray(reducer.fit_transform(matrix), dtype=np.float64)


def cluster(coords: np.ndarray, matrix: np.ndarray, config: MapConfig) -> np.ndarray:
    """A cluster number per point (NOISE for HDBSCAN's outliers)."""
    n = coords.shape[0]
    if config.clusterer == "kmeans":
        from sklearn.cluster import KMeans

        k = config.n_clusters or max(1, round(math.sqrt(n / 2)))
        return KMeans(n_clusters=min(k, n), random_state=config.seed, n_init=4).fit_predict(matrix)
    from sklearn.cluster import HDBSCAN

    size = config.min_cluster_size or max(3, round(math.sqrt(n) / 2))
    return HDBSCAN(min_cluster_size=max(2, min(size, n)), copy=True).fit_predict(coords)


def describe_clusters(
    labels: np.ndarray, coords: np.ndarray, texts: list[str]
) -> list[tuple[int, str, list[tuple[str, float]], int, float, float]]:
    """(cluster, label, words, size, x, y) per cluster; noise is labelled "unclustered"."""
    docs: dict[int, list[str]] = {}
    for c, text in zip(labels.tolist(), texts, strict=False):
        docs.setdefault(int(c), []).append(text)
    tfidf = class_tfidf({c: t for c, t in docs.items() if c != NOISE})
    out = []
    for c in sorted(docs):
        mask = labels == c
        x, y = np.median(coords[mask], axis=0).tolist()
        top = tfidf.get(c, [])
        label = "unclustered" if c == NOISE else label_of(top)
        out.append((c, label, top, int(mask.sum()), float(x), float(y)))
    return out


def build_map(db: str | Path, config: MapConfig | None = None) -> MapResult:
    """Lay out, cluster and label every embedded neuron; replace the stored map."""
    config = config or MapConfig()
    with AtlasWriter(db) as writer:
        conn = writer.conn
        names = store.stored_embedders(conn)
        if not names:
            raise BadInput(f"{db}: nothing is embedded yet: run `neuronatlas embed --db {db}`")
        neuron_ids, explanation_ids, matrix = store.neuron_vectors(conn)
        if len(neuron_ids) < 3:
            raise BadInput(
                f"the map needs at least 3 embedded neurons, this atlas has {len(neuron_ids)}"
            )
        run = writer.begin_run("map", asdict(config))
        try:
            coords = layout(matrix, config)
            labels = cluster(coords, matrix, config)
            texts = store.explanation_texts(conn, explanation_ids)
            clusters = describe_clusters(labels, coords, texts)
            points = [
                (nid, eid, float(x), float(y), int(c))
                for nid, eid, (x, y), c in zip(
                    neuron_ids, explanation_ids, coords.tolist(), labels.tolist(), strict=False
                )
            ]
            store.write_map(conn, points, clusters, names[0], asdict(config), run)
        except BaseException:
            writer.end_run(run, "failed")
            raise
        writer.end_run(run, "done")
    noise = int((labels == NOISE).sum())
    return MapResult(len(points), sum(1 for c in clusters if c[0] != NOISE), noise, names[0])
