"""The relations surface: a neuron's similar neurons (stored or computed now) and its logit
effects, for the neuron page, `/api/neurons/{id}/similar`, `/logit_effects` and
`neuronatlas similar`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from neuronatlas.errors import QueryTimeout, StageNotBuilt
from neuronatlas.read import stages
from neuronatlas.read.hits import hits, measured
from neuronatlas.read.live import LiveModel
from neuronatlas.read.views import LogitEffects, Similar, SimilarNeurons
from neuronatlas.store import browse

DEFAULT_SIMILAR = 10


def neuron_similar(conn: sqlite3.Connection, neuron_id: str, k: int = DEFAULT_SIMILAR) -> Similar:
    """The page's similar neurons (precomputed kinds read, the others computed now);
    StageNotBuilt or QueryTimeout when they cannot be had."""
    return _similar(conn, browse.require_neuron(conn, neuron_id), k)


def similar_or_reason(
    conn: sqlite3.Connection, nid: str, k: int, unavailable: dict[str, str]
) -> Similar | None:
    """The page's similar neurons, or None with the reason under `unavailable`: a missing
    section, not a failed page."""
    try:
        return _similar(conn, nid, k)
    except StageNotBuilt as exc:
        unavailable["similar"] = str(exc)
    except QueryTimeout:
        # the section, not the page: the vector index may still be loading after start-up
        unavailable["similar"] = (
            "similar neurons took too long (the vector index may still "
            "be loading): reload the page in a moment"
        )
    return None


def _similar(conn: sqlite3.Connection, nid: str, k: int) -> Similar:
    """Similar neurons: the kinds precomputed at build time come from one index range read;
    the others are computed now (a vector search, a token-overlap join)."""
    built = browse.similar_built(conn)
    ready = [kind for kind in browse.SIMILAR_KINDS if built.get(kind, 0) >= k]
    stored = browse.stored_similar(conn, nid, k, ready)
    return Similar(
        by_embedding=hits(
            stored["embedding"]
            if "embedding" in stored
            else stages.call("similar_embedding", conn, nid, k),
            "embedding",
        ),
        by_tokens=hits(
            stored["tokens"] if "tokens" in stored else stages.call("similar_tokens", conn, nid, k),
            "shared_tokens",
        ),
    )


def similar_neurons(
    conn: sqlite3.Connection, neuron_id: str, k: int = 10, model: Any = None
) -> SimilarNeurons:
    """Every kind of similar neuron (with `model`, by weights and the logit effect too),
    computed now rather than read from the precomputed rows, so any k and model work."""
    from neuronatlas.relations.similar import similar_neurons as compute

    found = compute(conn, neuron_id, k, model)
    if "logit_effects" in found:
        found["logit_effects"] = {"id": found["id"], **found["logit_effects"]}
    data = msgspec.convert(found, SimilarNeurons)
    measured(data.by_embedding, "embedding")
    measured(data.by_tokens, "shared_tokens")
    if data.by_weights is not None:
        measured(data.by_weights.downstream, "weights")
        measured(data.by_weights.upstream, "weights")
    return data


def logit_effects(
    conn: sqlite3.Connection, live: LiveModel, neuron_id: str, k: int
) -> LogitEffects:
    """The tokens the neuron's output most promotes / suppresses (w_out · W_U), live model."""
    nid = browse.require_neuron(conn, neuron_id)
    model = live.get()
    try:
        from neuronatlas.relations.similar import logit_effects as effects
    except ImportError as exc:
        raise StageNotBuilt(
            f"logit effects need the embed stage, which is missing ({exc})"
        ) from exc
    with live.run_lock:
        return msgspec.convert({"id": nid, **effects(nid, model, k)}, LogitEffects)
