"""Semantic search: a query's embedding against each neuron's embedded primary explanation (or
every embedded explanation after `embed --all-explanations`), best neuron first.

The vector matrix is read from the atlas once and cached per (file, modification time), so a web
server pays the load once; the query embedder is loaded once per process (`get_embedder`). A
neuron with several embedded explanations appears once, with its best-matching explanation.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from neuronatlas.embed.embedders import Embedder, get_embedder
from neuronatlas.errors import BadInput, MixedEmbedders
from neuronatlas.search.vector_index import VectorIndex, build_index
from neuronatlas.store import embed as store
from neuronatlas.store import reader

log = logging.getLogger(__name__)


@dataclass
class LoadedVectors:
    """Every stored vector of one atlas, ready to search."""

    explanation_ids: np.ndarray
    neuron_ids: list[str]
    index: VectorIndex
    embedder: str | None
    embedder_spec: str | None


_CACHE: OrderedDict[tuple, LoadedVectors] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_LOAD_LOCK = threading.Lock()
_CACHE_SIZE = 2


def _file_key(conn: sqlite3.Connection) -> tuple:
    """(path, mtime, size) of the file and its WAL: changes whenever a writer commits.

    An empty WAL counts as none: the first reader of a checkpointed atlas creates one, and
    that must not look like a change (the first two searches would each load the vectors)."""
    path = store.database_path(conn)
    if not path:
        return ("memory", id(conn), store.data_version(conn))
    key: list = [path]
    for p in (Path(path), Path(path + "-wal")):
        try:
            st = p.stat()
        except FileNotFoundError:
            st = None
        key += [st.st_mtime_ns, st.st_size] if st and st.st_size else [None, None]
    return tuple(key)


def index_cache_dir() -> Path:
    from neuronatlas.paths import neuronatlas_home

    return neuronatlas_home() / "indexes"


def load_vectors(conn: sqlite3.Connection) -> LoadedVectors:
    """The atlas's vectors and search index, from the per-process cache when unchanged."""
    key = _file_key(conn)
    with _LOAD_LOCK:  # one load at a time: concurrent first requests share it
        with _CACHE_LOCK:
            found = _CACHE.get(key)
            if found is not None:
                _CACHE.move_to_end(key)
                return found
        return _load(conn, key)


def _load(conn: sqlite3.Connection, key: tuple) -> LoadedVectors:
    # Each neuron is found by its current primary explanation only (unless every explanation
    # was embedded on purpose): a vector of an explanation that is no longer primary would
    # match and show text the neuron's page no longer leads with.
    meta = reader.meta(conn)
    ids, neuron_ids, matrix = store.load_vectors(
        conn, primary_only=meta.get(store.EMBED_SCOPE_KEY) != "all"
    )
    names = store.stored_embedders(conn)
    if len(names) > 1:
        raise MixedEmbedders(
            f"this atlas mixes embeddings from {', '.join(names)}; run "
            f"`neuronatlas embed --reembed` to rebuild them with one embedder"
        )
    loaded = LoadedVectors(
        ids,
        neuron_ids,
        build_index(matrix, cache=index_cache_dir()),
        names[0] if names else None,
        meta.get("embedder_spec"),
    )
    with _CACHE_LOCK:
        _CACHE[key] = loaded
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return loaded


def query_embedder(vectors: LoadedVectors, embedder: str | Embedder | None) -> Embedder:
    """The embedder that made the stored vectors (or the given one, if it is the same)."""
    if vectors.embedder is None:
        raise BadInput("this atlas has no embeddings yet: run `neuronatlas embed --db PATH`")
    chosen = get_embedder(
        embedder if embedder is not None else vectors.embedder_spec or vectors.embedder
    )
    if chosen.name != vectors.embedder:
        raise MixedEmbedders(
            f"the atlas was embedded with {vectors.embedder}, the query with {chosen.name}: "
            f"search with `--embedder {vectors.embedder}` or re-embed the atlas "
            f"(`neuronatlas embed --embedder {chosen.spec} --reembed`)"
        )
    return chosen


def search_vector(
    conn: sqlite3.Connection,
    vector: np.ndarray,
    k: int = 10,
    vectors: LoadedVectors | None = None,
    exclude: str | None = None,
) -> list[dict]:
    """Top-k neurons for a unit query vector (no encoding): the timed part of a search."""
    vectors = vectors or load_vectors(conn)
    n = len(vectors.explanation_ids)
    if n == 0 or k <= 0:
        return []
    want = min(n, k * 3 + 1)
    while True:
        rows, sims = vectors.index.search(np.asarray(vector, dtype=np.float32), want)
        best: dict[str, tuple[int, float]] = {}
        for row, sim in zip(rows.tolist(), sims.tolist(), strict=False):
            nid = vectors.neuron_ids[row]
            if nid != exclude and nid not in best:
                best[nid] = (int(vectors.explanation_ids[row]), float(sim))
        if len(best) >= k or want >= n:
            break
        want = min(n, want * 4)
    picked = list(best.values())[:k]
    info = store.describe_explanations(conn, [eid for eid, _ in picked])
    return [
        msgspec.structs.asdict(info[eid]) | {"similarity": sim}
        for eid, sim in picked
        if eid in info
    ]


def semantic_search(
    conn: sqlite3.Connection, query: str, k: int = 10, embedder: str | Embedder | None = None
) -> list[dict]:
    """Neurons whose explanations mean what `query` means, best first.

    Each result: id, layer, neuron, explanation (the matched one), score (its
    ev_correlation_score or None) and similarity (cosine, -1…1).
    """
    if not query.strip():
        raise BadInput("the search query is empty")
    vectors = load_vectors(conn)
    model = query_embedder(vectors, embedder)
    vector = model.encode([query])[0]
    return search_vector(conn, vector, k, vectors)


def clear_cache() -> None:
    """Forget loaded matrices (tests; a server that must drop memory)."""
    with _CACHE_LOCK:
        _CACHE.clear()
