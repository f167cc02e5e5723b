"""Neurons similar to a given one: by explanation meaning, by shared activating tokens, and (when
the model is at hand) by weights, plus the neuron's logit effect.

by_tokens uses the weighted Jaccard index of the two neurons' peak-token distributions
(each token's share of the neuron's top-record peak mass): Σ min(a, b) / Σ max(a, b). It is
symmetric — sim(A, B) = sim(B, A) — unlike DeepDecipher's overlap, which divides by one side.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec
import numpy as np

from neuronatlas.errors import NeuronNotFound
from neuronatlas.ids import canonical, format_id, parse_id
from neuronatlas.relations import weights as W
from neuronatlas.search.semantic import load_vectors, search_vector
from neuronatlas.store import browse, reader
from neuronatlas.store import embed as store_embed
from neuronatlas.store import search as store_search
from neuronatlas.store.browse import NeuronBrief

_WEIGHTS: dict[int, tuple[Any, W.NeuronWeights]] = {}
_WEIGHTS_LOCK = threading.Lock()


def by_embedding(conn: sqlite3.Connection, neuron_id: str, k: int = 10) -> list[dict]:
    """Neurons whose explanations are nearest to this neuron's (cosine), itself excluded."""
    found = store_embed.explanation_vector(conn, neuron_id)
    if found is None:
        return []
    return search_vector(conn, found[1], k, load_vectors(conn), exclude=neuron_id)


def by_tokens(conn: sqlite3.Connection, neuron_id: str, k: int = 10) -> list[dict]:
    """Neurons whose top records peak on the same tokens (weighted Jaccard), best first."""
    rows = _token_neighbours(conn, neuron_id, k)
    info = store_embed.describe_neurons(conn, [r[0] for r in rows])
    return [
        msgspec.structs.asdict(info[nid]) | {"similarity": sim, "shared_tokens": shared}
        for nid, sim, shared in rows
        if nid in info
    ]


def _token_neighbours(
    conn: sqlite3.Connection, neuron_id: str, k: int
) -> list[tuple[str, float, list[str]]]:
    """(neuron id, weighted Jaccard, up to 10 shared tokens) of the k best, best first."""
    return [
        (nid, round(m / (2.0 - m), 6), sorted(set(toks.split("\x1f")))[:10])
        for nid, m, toks in store_search.token_overlap(conn, neuron_id, k)
    ]


# -- precomputed at build time (the neuron page reads them with one range read) --------------

#: Neighbours stored per neuron and kind: the page shows 10; the API may ask for up to this.
PRECOMPUTED_K = 20

Progress = Callable[[str, int, int], None]


def precompute_similar(
    conn: sqlite3.Connection,
    kinds: Sequence[str] = browse.SIMILAR_KINDS,
    k: int = PRECOMPUTED_K,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Compute every neuron's k nearest neighbours of each kind once and store them
    (`store.browse.write_similar`), so neuron pages stop paying a vector search and a
    token-overlap join per request. Same neighbours as `by_embedding` / `by_tokens` (exact
    cosine over all vectors, itself excluded, one row per neuron). Returns rows written."""
    written: dict[str, int] = {}
    for kind in kinds:
        rows = _all_by_embedding(conn, k) if kind == "embedding" else _all_by_tokens(conn, k)
        written[kind] = browse.write_similar(conn, kind, k, _counted(rows, kind, conn, progress))
    return written


def _counted(rows: Iterator[Row], kind: str, conn: sqlite3.Connection, progress: Progress | None):
    total = reader.neuron_count(conn)
    done, last = 0, None
    for row in rows:
        if row[0] != last:
            last, done = row[0], done + 1
            if progress is not None and done % 512 == 0:
                progress(kind, done, total)
        yield row
    if progress is not None:
        progress(kind, total, total)


Row = tuple[str, int, str, float, list[str] | None]


def _all_by_embedding(conn: sqlite3.Connection, k: int) -> Iterator[Row]:
    """Every embedded neuron's k nearest by its first embedded explanation, a block of
    neurons at a time.

    The queries are rows of the loaded matrix (no second copy of the vectors), and each block
    is sized so that its scores stay near `index.BLOCK_FLOATS` whatever the atlas's size:
    memory is bounded and rows stream to the writer. Up to `EXACT_MAX` vectors the block is
    one exact matrix product (n² work: 36,864 neurons in seconds); above it, the HNSW graph
    the atlas's search already uses answers each block in one batched call, rescored with the
    exact vectors (n log n: 307,200 neurons in minutes rather than hours). Recall against
    exact: bench/similar_bench.py.
    """
    vectors = load_vectors(conn)
    index = vectors.index
    n = index.matrix.shape[0]
    if n == 0:
        return
    owners = np.asarray(vectors.neuron_ids, dtype=object)
    ids, explanation_ids = store_embed.first_embedded_explanations(conn)
    row_of = {int(e): i for i, e in enumerate(vectors.explanation_ids.tolist())}
    rows = np.asarray([row_of[e] for e in explanation_ids], dtype=np.int64)
    want = min(n, 3 * k + 1)
    block = index.block_size(want)
    for start in range(0, len(ids), block):
        queries = index.matrix[rows[start : start + block]]
        found, sims = index.search_block(queries, want)
        for row, nid in enumerate(ids[start : start + block]):
            ok = found[row] >= 0
            picked = _distinct(owners[found[row][ok]], sims[row][ok], nid, k)
            if len(picked) < k and want < n:  # many explanations of few neurons: search on
                hits = search_vector(conn, queries[row], k, vectors, exclude=nid)
                picked = [(r["id"], r["similarity"]) for r in hits]
            for rank, (other, sim) in enumerate(picked):
                yield nid, rank, other, sim, None


def _distinct(
    owners: np.ndarray, sims: np.ndarray, self_id: str, k: int
) -> list[tuple[str, float]]:
    """The first k (neuron, similarity) with each neuron once and `self_id` left out."""
    seen: set[str] = set()
    out: list[tuple[str, float]] = []
    for owner, sim in zip(owners.tolist(), sims.tolist(), strict=True):
        if owner != self_id and owner not in seen:
            seen.add(owner)
            out.append((owner, float(sim)))
            if len(out) == k:
                break
    return out


def _all_by_tokens(conn: sqlite3.Connection, k: int) -> Iterator[Row]:
    """Every neuron's k best by tokens: the token index read once and joined in numpy blocks
    (`token_neighbours`), the same rows as `by_tokens` per neuron without one self-join each."""
    from neuronatlas.relations.token_neighbours import all_token_neighbours

    for nid, found in all_token_neighbours(store_search.token_shares(conn), k):
        for rank, (other, sim, shared) in enumerate(found):
            yield nid, rank, other, sim, shared


def _weights_of(model) -> W.NeuronWeights:
    """Neuron weight vectors of a HF model, computed once per model object."""
    with _WEIGHTS_LOCK:
        hit = _WEIGHTS.get(id(model))
        if hit is not None and hit[0] is model:
            return hit[1]
        computed = W.neuron_weights(model)
        _WEIGHTS.clear()
        _WEIGHTS[id(model)] = (model, computed)
        return computed


def _loaded(model):
    """A LoadedModel from a spec string, or the LoadedModel / HF model given."""
    if isinstance(model, str):
        from neuronatlas.models import load_model

        return load_model(model)
    return model


def by_weights(conn: sqlite3.Connection, neuron_id: str, model, k: int = 10) -> dict:
    """{"downstream": [...], "upstream": [...]}: rows with the usual keys, similarity = the
    connection weight (signed; ranked by absolute value)."""
    layer, neuron = parse_id(neuron_id)
    hf = getattr(model, "model", model)
    found = W.connections(_weights_of(hf), layer, neuron, k)
    out = {}
    for side, rows in found.items():
        ids = [format_id(a, b) for a, b, _ in rows]
        info = store_embed.describe_neurons(conn, ids)
        out[side] = [
            msgspec.structs.asdict(info.get(nid) or NeuronBrief(nid, a, b, None, None))
            | {"similarity": w}
            for nid, (a, b, w) in zip(ids, rows, strict=False)
        ]
    return out


def logit_effects(neuron_id: str, model, k: int = 10) -> dict:
    """{"promoted": [{token, token_id, effect}], "suppressed": [...]}: w_out · W_U extremes."""
    layer, neuron = parse_id(neuron_id)
    hf = getattr(model, "model", model)
    tokenizer = getattr(model, "tokenizer", None)
    promoted, suppressed = W.logit_effect(_weights_of(hf), layer, neuron, k)

    def strings(ids: list[int]) -> list[str | None]:
        if hasattr(model, "token_strings"):
            return list(model.token_strings(ids))
        if tokenizer is not None:
            return [tokenizer.decode([i]) for i in ids]
        return [None] * len(ids)

    def rows(pairs):
        names = strings([i for i, _ in pairs])
        return [
            {"token": t, "token_id": i, "effect": v}
            for t, (i, v) in zip(names, pairs, strict=False)
        ]

    return {"promoted": rows(promoted), "suppressed": rows(suppressed)}


def similar_neurons(conn: sqlite3.Connection, neuron_id: str, k: int = 10, model=None) -> dict:
    """Similar neurons of every kind available.

    Always: by_embedding, by_tokens (lists of result rows). With `model` (a
    `neuronatlas.models.LoadedModel`, a spec for `load_model`, or a HF model): by_weights
    ({downstream, upstream}) and logit_effects ({promoted, suppressed}).
    """
    nid = canonical(neuron_id)
    if not store_embed.describe_neurons(conn, [nid]):
        raise NeuronNotFound(f"{nid} is not in this atlas, which holds {reader.stored_range(conn)}")
    out: dict[str, Any] = {
        "id": nid,
        "by_embedding": by_embedding(conn, nid, k),
        "by_tokens": by_tokens(conn, nid, k),
    }
    if model is not None:
        loaded = _loaded(model)
        out["by_weights"] = by_weights(conn, nid, loaded, k)
        out["logit_effects"] = logit_effects(nid, loaded, k)
    return out
