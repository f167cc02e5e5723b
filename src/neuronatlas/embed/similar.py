"""Neurons similar to a given one: by explanation meaning, by shared activating tokens, and (when
the model is at hand) by weights, plus the neuron's logit effect.

by_tokens uses the weighted Jaccard index of the two neurons' peak-token distributions
(each token's share of the neuron's top-record peak mass): Σ min(a, b) / Σ max(a, b). It is
symmetric — sim(A, B) = sim(B, A) — unlike DeepDecipher's overlap, which divides by one side.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from neuronatlas.embed import weights as W
from neuronatlas.embed.search import load_vectors, search_vector
from neuronatlas.errors import NeuronNotFound
from neuronatlas.ids import canonical, format_id, parse_id
from neuronatlas.store import embed as store_embed
from neuronatlas.store import search as store_search

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
    rows = store_search.token_overlap(conn, neuron_id, k)
    info = store_embed.describe_neurons(conn, [r[0] for r in rows])
    return [
        {
            **info[nid],
            "similarity": round(m / (2.0 - m), 6),
            "shared_tokens": sorted(set(toks.split("\x1f")))[:10],
        }
        for nid, m, toks in rows
        if nid in info
    ]


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
            {
                **info.get(
                    nid, {"id": nid, "layer": a, "neuron": b, "explanation": None, "score": None}
                ),
                "similarity": w,
            }
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
        raise NeuronNotFound(f"{nid} is not in this atlas")
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
