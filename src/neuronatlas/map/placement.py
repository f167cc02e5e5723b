"""Placing new or changed neurons on an existing map, without refitting it.

A UMAP layout cannot take new points without its fitted model (which the atlas does not keep)
and a refit moves every point. When only a few neurons changed their primary explanation, each
is placed among its nearest current points by explanation vector: it joins the fine cluster
that carries most of its neighbours' similarity, at the similarity-weighted mean position of
its neighbours in that cluster (staying inside one island instead of landing between two).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Neighbours consulted per placed neuron.
NEIGHBOURS = 10
#: Rows of the similarity matrix computed at once (bounds memory at ~ CHUNK × n floats).
CHUNK = 1024


class Placement(NamedTuple):
    xy: np.ndarray
    """float64, m × 2."""
    cluster: np.ndarray
    """int64, m."""


def place(
    placed_vectors: np.ndarray,
    placed_xy: np.ndarray,
    placed_cluster: np.ndarray,
    new_vectors: np.ndarray,
    k: int = NEIGHBOURS,
) -> Placement:
    """Positions and fine clusters of `new_vectors` (unit rows) among the placed points."""
    n, m = len(placed_vectors), len(new_vectors)
    if n == 0:
        raise ValueError("placing points needs at least one placed point")
    k = min(k, n)
    xy = np.zeros((m, 2), dtype=np.float64)
    cluster = np.zeros(m, dtype=np.int64)
    for start in range(0, m, CHUNK):
        sims = new_vectors[start : start + CHUNK] @ placed_vectors.T
        near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        for row, idx in enumerate(near):
            # a small floor keeps a neuron unlike every point at its neighbours' centre
            weight = np.maximum(sims[row, idx], 0.0) + 1e-6
            votes: dict[int, float] = {}
            for c, w in zip(placed_cluster[idx].tolist(), weight.tolist(), strict=True):
                votes[c] = votes.get(c, 0.0) + w
            best = max(votes, key=lambda c: (votes[c], -c))
            inside = placed_cluster[idx] == best
            xy[start + row] = np.average(placed_xy[idx[inside]], axis=0, weights=weight[inside])
            cluster[start + row] = best
    return Placement(xy, cluster)
