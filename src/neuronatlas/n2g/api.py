"""The N2G read API for the web layer and Python users: stored graphs, no model needed.

`neuron_graph(conn, neuron_id)` returns everything a page needs about one neuron's graph;
`predict_text(conn, neuron_id, tokens)` runs the stored trie over any tokens. Both take an
open reader connection (store.open_reader).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from neuronatlas.errors import NeuronNotFound
from neuronatlas.ids import canonical
from neuronatlas.n2g.draw import graph_json, to_dot, to_svg
from neuronatlas.n2g.predict import predict
from neuronatlas.n2g.trie import Trie
from neuronatlas.store import n2g as store


def load_trie(conn: sqlite3.Connection, neuron_id: str) -> tuple[Trie, float] | None:
    """(trie, a_max) of a stored graph, or None."""
    row = store.read_graph(conn, canonical(neuron_id))
    if row is None:
        return None
    return Trie.from_json(row.trie), float(row.a_max)


def neuron_graph(
    conn: sqlite3.Connection, neuron_id: str, svg: bool = True, max_nodes: int = 150
) -> dict | None:
    """{"neuron_id", "metrics", "explanation", "graph": {"nodes", "edges", "truncated"},
    "svg", "dot", "settings", "mask_token", "stats", "a_max"}; None when there is no graph."""
    nid = canonical(neuron_id)
    row = store.read_graph(conn, nid)
    if row is None:
        return None
    trie = Trie.from_json(row.trie)
    graph = graph_json(trie, row.a_max, max_nodes=max_nodes)
    dot = to_dot(graph, title=nid)
    metrics = store.read_metrics(conn, nid)
    return {
        "neuron_id": nid,
        "metrics": {} if metrics is None else metrics._asdict(),
        "explanation": store.n2g_explanation(conn, nid),
        "graph": graph,
        "dot": dot,
        "svg": to_svg(dot) if svg else None,
        "settings": row.settings,
        "mask_token": row.mask_token,
        "stats": row.stats,
        "a_max": row.a_max,
        "model": row.model,
    }


def graph_summary(conn: sqlite3.Connection, neuron_id: str) -> dict | None:
    """{"metrics", "explanation"} of a neuron's stored graph, without parsing or drawing its
    trie (what a neuron page shows of it; the drawing has its own route); None when the
    neuron has no graph."""
    found = store.read_summary(conn, canonical(neuron_id))
    if found is None:
        return None
    metrics = {} if found.metrics is None else found.metrics._asdict()
    return {"metrics": metrics, "explanation": found.explanation}


def predict_text(conn: sqlite3.Connection, neuron_id: str, tokens: Sequence[str]) -> list[float]:
    """The stored graph's predicted activation (neuron units) for each token string.

    Raises NeuronNotFound when the neuron has no graph."""
    found = load_trie(conn, neuron_id)
    if found is None:
        raise NeuronNotFound(f"{canonical(neuron_id)} has no N2G graph: run `neuronatlas n2g`")
    trie, a_max = found
    return predict(trie, list(tokens), a_max)
