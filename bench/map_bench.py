"""Which clustering makes a readable map: coherence and map contiguity of candidate methods.

On one atlas's stored explanation vectors (and its stored UMAP layout, or a fresh one), in the
same run:

- `hdbscan-eom (before)`: the map before issue 12 (HDBSCAN, excess-of-mass, min cluster size
  √n / 2, on the 2-D layout); its noise counts as one cluster, as the page showed it;
- `hdbscan-leaf+nearest`: HDBSCAN's leaf clusters on the layout, outliers given to the nearest
  centroid, nested into coarse clusters by weighted k-means on the centroids;
- `kmeans-vectors`: k-means on the vectors, nested likewise (the default);
- `kmeans-2d`: k-means on the 2-D layout, nested on the layout;
- `random`: the kmeans-vectors partition with points shuffled (what no structure scores).

For each level: cluster count, size range, unassigned points, coherence (mean within-cluster
similarity with its 95% cluster-bootstrap interval, against random pairs) by embedding cosine
and by TF-IDF word cosine, and 2-D contiguity (share of each point's 10 nearest neighbours on
the layout that are in its cluster: how much a cluster looks like one region of the map).

    .venv/bin/python bench/map_bench.py --db /path/atlas.db
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

from neuronatlas.map.coherence import coherence, word_vectors
from neuronatlas.map.hierarchy import (
    Hierarchy,
    build_hierarchy,
    default_counts,
    nest,
    renumber_by_size,
)
from neuronatlas.map.neuron_map import MapConfig, layout
from neuronatlas.store import embed as store
from neuronatlas.store import open_reader


def load(db: str, relayout: bool) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """(vectors, 2-D coordinates, explanation texts, where the coordinates came from)."""
    conn = open_reader(db)
    neuron_ids, explanation_ids, matrix = store.neuron_vectors(conn)
    texts = store.explanation_texts(conn, explanation_ids)
    stored = {p.id: (p.x, p.y) for p in store.map_points(conn)}
    conn.close()
    if not relayout and all(n in stored for n in neuron_ids):
        return matrix, np.array([stored[n] for n in neuron_ids]), texts, "stored layout"
    t = time.perf_counter()
    coords = layout(matrix, MapConfig())
    return matrix, coords, texts, f"fresh UMAP ({time.perf_counter() - t:.0f} s)"


def contiguity(coords: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Mean share of a point's k nearest 2-D neighbours that share its cluster."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(labels) - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords)
    return float((labels[idx[:, 1:]] == labels[:, None]).mean())


def methods(matrix: np.ndarray, coords: np.ndarray, seed: int) -> dict[str, tuple]:
    """name -> (fine labels, coarse labels or None, seconds)."""
    from sklearn.cluster import HDBSCAN, KMeans

    n = len(matrix)
    out: dict[str, tuple] = {}
    t = time.perf_counter()
    before = HDBSCAN(min_cluster_size=max(3, round(math.sqrt(n) / 2)), copy=True).fit_predict(
        coords
    )
    out["hdbscan-eom (before)"] = (before, None, time.perf_counter() - t)
    for name, method in (("hdbscan-leaf+nearest", "hdbscan"), ("kmeans-vectors", "kmeans")):
        t = time.perf_counter()
        h = build_hierarchy(matrix, coords, method, seed=seed)
        out[name] = (h.fine, h.coarse, time.perf_counter() - t)
    t = time.perf_counter()
    n_coarse, n_fine = default_counts(n)
    fine = renumber_by_size(
        KMeans(n_clusters=n_fine, random_state=seed, n_init=1).fit_predict(coords)
    )
    h2 = Hierarchy(fine, np.asarray(nest(coords, fine, n_coarse, seed)))
    out["kmeans-2d"] = (h2.fine, h2.coarse, time.perf_counter() - t)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    f, c, _ = out["kmeans-vectors"]
    out["random"] = (f[perm], c[perm], 0.0)
    return out


def describe(name: str, level: str, labels: np.ndarray, coords, vectors: dict) -> str:
    noise = int((labels < 0).sum())
    lab = np.where(labels < 0, labels.max() + 1, labels)  # noise as one more cluster
    sizes = np.bincount(lab)
    cells = [
        f"{name} | {level} | {len(sizes)} | {sizes.min()}–{np.median(sizes):.0f}–{sizes.max()}",
        f"{noise}",
    ]
    for measure in ("embedding", "words"):
        q, _ = coherence(vectors[measure], lab, level, measure)
        cells.append(
            f"{q.within:.3f} [{q.within_low:.3f}, {q.within_high:.3f}] vs {q.random:.3f}"
            f" (lift {q.lift:.3f})"
        )
    cells.append(f"{contiguity(coords, lab):.2f}")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--relayout", action="store_true", help="run UMAP even if a map is stored")
    args = ap.parse_args()
    load_avg = os.getloadavg()
    matrix, coords, texts, source = load(args.db, args.relayout)
    vectors = {"embedding": matrix, "words": word_vectors(texts)}
    print(f"{args.db}: {len(matrix):,} neurons, {source}; load average {load_avg[0]:.1f}")
    found = methods(matrix, coords, args.seed)
    print(
        "| method | level | clusters | size min–median–max | unassigned |"
        " embedding within [95% CI] vs random | words within [95% CI] vs random |"
        " 2-D contiguity |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, (fine, coarse, _) in found.items():
        print(describe(name, "fine" if coarse is not None else "flat", fine, coords, vectors))
        if coarse is not None:
            print(describe(name, "coarse", coarse, coords, vectors))
    print()
    for name, (*_, seconds) in found.items():
        print(f"{name}: clustering {seconds:.1f} s")
    ref = found["hdbscan-eom (before)"][0]
    ref_lab = np.where(ref < 0, ref.max() + 1, ref)
    q_ref, _ = coherence(matrix, ref_lab, "flat", "embedding")
    q_new, _ = coherence(matrix, found["kmeans-vectors"][0], "fine", "embedding")
    print(
        f"embedding lift, kmeans-vectors fine vs before: {q_new.lift:.3f} / {q_ref.lift:.3f}"
        f" = {q_new.lift / q_ref.lift:.1f}×"
    )


if __name__ == "__main__":
    main()
