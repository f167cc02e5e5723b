"""Top-k inner-product search over unit vectors: exact (numpy) or HNSW (usearch) + exact rescoring.

Exact search reads the whole matrix per query, so it is bound by memory bandwidth: on a 2-core
box ~12 GB/s, i.e. ~78 ms for 307,200 × 768 float32 (0.94 GB), too slow for the 20 ms goal.
Above `EXACT_MAX` vectors we therefore build an HNSW graph (usearch, int8 vectors) once,
keep it in a cache file keyed by the vectors' digest, ask it for `oversample × k` candidates
and rescore those with the exact float32 vectors: returned similarities are always exact
cosines; only membership of the top k is approximate (recall@10 reported by
bench/search_bench.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Largest matrix searched exactly (≈ 10 ms at 768 dims on two cores).
EXACT_MAX = int(os.environ.get("NEURONATLAS_EXACT_MAX", "60000"))


def exact_top_k(matrix: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, similarities) of the k largest inner products, best first."""
    n = matrix.shape[0]
    if n == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    scores = matrix @ query
    k = min(k, n)
    part = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    order = part[np.argsort(-scores[part], kind="stable")]
    return order, scores[order]


#: Floats a block search may hold at once (scores, their partition and the gathered rows):
#: 2**24 float32 ≈ 64 MiB, so memory stays bounded at any atlas size.
BLOCK_FLOATS = 1 << 24


def exact_top_k_block(
    matrix: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, similarities), each (len(queries), k), best first, for a block of queries.

    Ties are broken by the lower row (a stable sort over all rows would give the same), so
    the result does not depend on the partition's internal order.
    """
    n = matrix.shape[0]
    k = min(k, n)
    scores = queries @ matrix.T
    if k < n:
        threshold = np.partition(scores, n - k, axis=1)[:, n - k]
        hit_row, hit_col = np.nonzero(scores >= threshold[:, None])
    else:
        hit_row = np.repeat(np.arange(len(queries)), n)
        hit_col = np.tile(np.arange(n), len(queries))
    bounds = np.searchsorted(hit_row, np.arange(len(queries) + 1))
    rows = np.empty((len(queries), k), dtype=np.int64)
    sims = np.empty((len(queries), k), dtype=np.float32)
    for i in range(len(queries)):
        cols = hit_col[bounds[i] : bounds[i + 1]]
        found = scores[i, cols]
        order = np.lexsort((cols, -found))[:k]
        rows[i], sims[i] = cols[order], found[order]
    return rows, sims


@dataclass
class VectorIndex:
    """A searchable matrix; `hnsw` is set when the matrix is large enough to need it."""

    matrix: np.ndarray
    hnsw: Any | None = None
    """A usearch Index (untyped package)."""
    oversample: int = 4
    expansion: int = 128
    digest: str = field(default="")

    @property
    def approximate(self) -> bool:
        return self.hnsw is not None

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(row indices, exact similarities) best first."""
        if self.hnsw is None:
            return exact_top_k(self.matrix, query, k)
        want = min(self.matrix.shape[0], max(k * self.oversample, k + 10))
        found = self.hnsw.search(query, want)
        rows = np.asarray(found.keys, dtype=np.int64)
        scores = self.matrix[rows] @ query
        order = np.argsort(-scores, kind="stable")[:k]
        return rows[order], scores[order]

    def block_size(self, k: int) -> int:
        """Queries per `search_block` call that keep its arrays near `BLOCK_FLOATS`."""
        n, dim = self.matrix.shape
        per_query = max(n, self._candidates(k) * dim) if self.hnsw is not None else 2 * n
        return max(1, BLOCK_FLOATS // max(1, per_query))

    def _candidates(self, k: int) -> int:
        return min(self.matrix.shape[0], max(k * self.oversample, k + 10))

    def search_block(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, exact similarities), each (len(queries), k), best first, ties by lower row.

        Exact: one matrix product per block. HNSW: one batched graph search for
        `oversample × k` candidates per query, rescored with the exact float32 vectors; a
        query the graph answers with fewer than k rows is padded with row -1 and similarity
        -inf (callers needing k search on with `search`).
        """
        if self.hnsw is None:
            return exact_top_k_block(self.matrix, queries, k)
        want = self._candidates(k)
        found = self.hnsw.search(queries, want)
        keys = np.asarray(found.keys, dtype=np.int64).reshape(len(queries), -1)
        counts = np.asarray(found.counts, dtype=np.int64).reshape(len(queries))
        valid = np.arange(keys.shape[1])[None, :] < counts[:, None]
        keys = np.where(valid, keys, 0)
        sims = np.einsum("qcd,qd->qc", self.matrix[keys], queries)
        sims = np.where(valid, sims, -np.inf).astype(np.float32)
        keys = np.where(valid, keys, -1)
        order = np.lexsort((np.where(valid, keys, np.iinfo(np.int64).max), -sims), axis=-1)
        keep = order[:, : min(k, keys.shape[1])]
        return np.take_along_axis(keys, keep, 1), np.take_along_axis(sims, keep, 1)


def matrix_digest(matrix: np.ndarray) -> str:
    """A digest of the vectors (shape + a strided sample), to key the cached HNSW graph."""
    h = hashlib.blake2b(digest_size=12)
    h.update(repr(matrix.shape).encode())
    step = max(1, matrix.shape[0] // 4096)
    h.update(np.ascontiguousarray(matrix[::step]).tobytes())
    h.update(np.ascontiguousarray(matrix[-1:]).tobytes())
    return h.hexdigest()


def build_index(
    matrix: np.ndarray,
    exact_max: int | None = None,
    cache: Path | None = None,
    threads: int = 0,
) -> VectorIndex:
    """Exact for small matrices; otherwise an HNSW graph, loaded from `cache` when present."""
    limit = EXACT_MAX if exact_max is None else exact_max
    if matrix.shape[0] <= limit:
        return VectorIndex(matrix)
    try:
        from usearch.index import Index
    except ImportError:
        log.warning(
            "usearch is not installed: exact search over %d vectors will be slow "
            "(pip install usearch)",
            matrix.shape[0],
        )
        return VectorIndex(matrix)
    digest = matrix_digest(matrix)
    path = None if cache is None else cache / f"{digest}.usearch"
    index = Index(
        ndim=matrix.shape[1],
        metric="ip",
        dtype="i8",
        connectivity=16,
        expansion_add=64,
        expansion_search=128,
    )
    if path is not None and path.exists():
        index.load(str(path))
        if len(index) == matrix.shape[0]:
            return VectorIndex(matrix, index, digest=digest)
        index = Index(
            ndim=matrix.shape[1],
            metric="ip",
            dtype="i8",
            connectivity=16,
            expansion_add=64,
            expansion_search=128,
        )
    log.info("building an HNSW index over %d vectors", matrix.shape[0])
    index.add(np.arange(matrix.shape[0], dtype=np.uint64), matrix, threads=threads)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        index.save(str(tmp))
        os.replace(tmp, path)
    return VectorIndex(matrix, index, digest=digest)
