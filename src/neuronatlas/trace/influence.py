"""Influence and pruning on an attribution matrix (the normalised-|A| power series).

normalise: |A| with each row scaled to sum 1, so a node passes on its own influence split
in proportion to how strongly each source drives it. Influence of a node on the weighted
logits: w^T (Â + Â^2 + ...), which ends because the graph is acyclic (sources are always at
earlier layers, or embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_DEPTH = 1000


def normalise(a: np.ndarray) -> np.ndarray:
    """|A| with rows scaled to sum 1 (all-zero rows stay 0)."""
    mag = np.abs(a)
    return mag / np.maximum(mag.sum(axis=1, keepdims=True), 1e-10)


def propagate(
    norm_rows: np.ndarray, weights: np.ndarray, row_of_col: dict[int, int], n_seed: int
) -> np.ndarray:
    """Influence of every column when only some nodes have rows: rows 0..n_seed-1 are the
    logits (weights `weights`); a column that is also a row (row_of_col) passes on what it
    receives. Returns influence per column."""
    q = np.zeros(len(norm_rows))
    q[:n_seed] = weights
    total = np.zeros(norm_rows.shape[1])
    cols = np.fromiter(row_of_col.keys(), dtype=np.int64, count=len(row_of_col))
    rows = np.fromiter(row_of_col.values(), dtype=np.int64, count=len(row_of_col))
    for _ in range(MAX_DEPTH):
        got = q @ norm_rows
        total += got
        q = np.zeros(len(norm_rows))
        if len(cols):
            q[rows] = got[cols]
        if not q.any():
            break
    return total


def influence(a: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """w^T sum_k Â^k for a square matrix (weights over all nodes: 0 except the logits)."""
    norm = normalise(a)
    x = weights.astype(np.float64)
    total = np.zeros_like(x)
    for _ in range(MAX_DEPTH):
        x = x @ norm
        if not x.any():
            return total
        total += x
    raise RuntimeError("influence did not converge: the graph has a cycle")


def threshold(scores: np.ndarray, share: float) -> float:
    """The score at which the descending cumulative share of `scores` first reaches `share`
    (keep scores >= it)."""
    if not len(scores):
        return 0.0
    order = np.sort(scores)[::-1]
    total = order.sum()
    if total <= 0:
        return float("inf")
    cum = np.cumsum(order) / total
    i = int(np.searchsorted(cum, share))
    return float(order[min(i, len(order) - 1)])


def cumulative_share(scores: np.ndarray) -> np.ndarray:
    """Each node's cumulative share in the descending order of scores (the exported
    `influence` of the Neuronpedia format: 0.8 keeps the nodes that make up 80%)."""
    order = np.argsort(-scores, kind="stable")
    total = scores.sum()
    out = np.zeros_like(scores, dtype=np.float64)
    if total > 0:
        out[order] = np.cumsum(scores[order]) / total
    return out


@dataclass(frozen=True)
class Pruned:
    """Kept nodes and edges, node influence before pruning and edge scores."""

    nodes: np.ndarray  # bool [N]
    edges: np.ndarray  # bool [N, N] (target, source)
    influence: np.ndarray  # [N]


def prune(
    a: np.ndarray,
    weights: np.ndarray,
    always: np.ndarray,
    sources: np.ndarray,
    needs_input: np.ndarray,
    node_threshold: float,
    edge_threshold: float,
) -> Pruned:
    """Keep nodes making up `node_threshold` of the total influence (and `always`: logits,
    embeddings), then edges making up `edge_threshold` of the edge scores; then drop, until
    nothing changes, `sources` (neurons and buckets) without a kept outgoing edge and
    `needs_input` nodes (neurons) without a kept incoming edge."""
    infl = influence(a, weights)
    cut = threshold(infl[~always], node_threshold) if (~always).any() else 0.0
    keep = always | (infl >= cut)
    keep &= always | (infl > 0)
    masked = a * keep[:, None] * keep[None, :]
    infl2 = influence(masked, weights) + weights
    score = normalise(masked) * infl2[:, None]
    positive = score[score > 0]
    ecut = threshold(positive, edge_threshold) if len(positive) else float("inf")
    edges = (score >= ecut) & (score > 0)
    while True:
        has_out = edges.any(axis=0)
        has_in = edges.any(axis=1)
        drop = keep & sources & ~has_out
        drop |= keep & needs_input & ~has_in
        drop &= ~always
        if not drop.any():
            break
        keep &= ~drop
        edges &= keep[:, None] & keep[None, :]
    return Pruned(nodes=keep, edges=edges, influence=infl)
