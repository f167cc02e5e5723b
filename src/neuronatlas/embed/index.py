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
