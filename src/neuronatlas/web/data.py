"""What the explorer shows, assembled from the stages' reads: one function per page / endpoint.

The HTML pages, the JSON API and `neuronatlas.Atlas` all call these, so a page and its JSON
twin can never disagree. Optional sections (N2G, similar neurons, map, semantic search) come
from `stages`; when a stage is not built the result says so under `unavailable` rather than
failing the whole page.
"""

from __future__ import annotations

import sqlite3
from typing import Literal

from neuronatlas.errors import BadInput, QueryTimeout, StageNotBuilt
from neuronatlas.ids import canonical
from neuronatlas.store import reader
from neuronatlas.store import web as store_web
from neuronatlas.web import stages
from neuronatlas.web.live import LiveModel
from neuronatlas.web.render import all_values, histogram

MAX_K = 100
MAX_RECORDS = 50
MAP_CAP = 2_000_000
SearchMode = Literal["auto", "semantic", "tokens", "fulltext", "substring"]


def neuron_detail(
    conn: sqlite3.Connection, neuron_id: str, records: int = 20, similar_k: int = 10
) -> dict:
    """Everything the neuron page shows: explanations, stats, records, N2G, similar, nav."""
    nid = canonical(neuron_id)
    data = reader.neuron(conn, nid, records_per_category=records)
    counts = store_web.record_counts(conn, nid)
    data["record_counts"] = counts
    data["truncated"] = any(n > len(data["records"].get(c, [])) for c, n in counts.items())
    data["histogram"] = histogram(all_values(data["records"]))
    data["nav"] = {
        "prev": store_web.neighbour(conn, nid, -1),
        "next": store_web.neighbour(conn, nid, +1),
    }
    unavailable: dict[str, str] = {}
    data["n2g"] = None
    try:
        graph = stages.call("graph", conn, nid, svg=False)  # the drawing has its own route
    except StageNotBuilt as exc:
        unavailable["n2g"] = str(exc)
    else:
        if graph is None:
            unavailable["n2g"] = (
                f"no N2G graph stored for {nid}: run `neuronatlas n2g --db ATLAS --neurons {nid}`"
            )
        else:
            data["n2g"] = {
                "metrics": graph.get("metrics") or {},
                "explanation": graph.get("explanation"),
                # drawable: the graph route renders its DOT to SVG on demand
                "has_svg": bool(graph.get("dot") or graph.get("svg")),
            }
    data["similar"] = None
    try:
        data["similar"] = stages.call("similar", conn, nid, similar_k)
    except StageNotBuilt as exc:
        unavailable["similar"] = str(exc)
    except QueryTimeout:
        # the section, not the page: the vector index may still be loading after start-up
        unavailable["similar"] = (
            "similar neurons took too long (the vector index may still "
            "be loading): reload the page in a moment"
        )
    data["unavailable"] = unavailable
    return data


def neuron_graph(conn: sqlite3.Connection, neuron_id: str) -> dict:
    """The N2G graph of a neuron (nodes, edges, metrics, svg); StageNotBuilt when absent."""
    nid = store_web.require_neuron(conn, neuron_id)
    graph = stages.call("graph", conn, nid)
    if graph is None:
        raise StageNotBuilt(
            f"no N2G graph stored for {nid}: run `neuronatlas n2g --db ATLAS --neurons {nid}`"
        )
    return graph


def search(conn: sqlite3.Connection, query: str, k: int = 10, mode: SearchMode = "auto") -> dict:
    """Neurons for a query: semantic (embeddings), tokens (stored records), fulltext or
    substring (explanation text). `auto` picks the best the atlas has."""
    query = query.strip()
    if not query:
        raise BadInput("the query is empty")
    if not 1 <= k <= MAX_K:
        raise BadInput(f"k={k}: choose 1 to {MAX_K}")
    if mode == "auto":
        mode = _best_mode(conn)
    if mode == "substring":
        results = store_web.explanation_substring(conn, query, k)
    elif mode == "tokens" and not stages.call("token_index", conn):
        raise StageNotBuilt(
            "token search needs the token index of the stored records: run "
            f"`{stages.how_to_build('token_index')}`"
        )
    else:
        if mode == "semantic" and not store_web.has_embeddings(conn):
            raise StageNotBuilt(
                "semantic search needs explanation embeddings: run `neuronatlas embed --db ATLAS`"
            )
        feature = {"semantic": "semantic", "tokens": "tokens", "fulltext": "fulltext"}[mode]
        results = stages.call(feature, conn, query, k)
    return {"query": query, "mode": mode, "k": k, "results": list(results)[:k]}


def _best_mode(conn: sqlite3.Connection) -> SearchMode:
    """semantic when embeddings exist and the code is there, else fulltext, else substring."""
    if store_web.has_embeddings(conn) and stages.lookup("semantic") is not None:
        return "semantic"
    if stages.lookup("fulltext") is not None:
        try:
            stages.call("fulltext", conn, "probe", 1)
            return "fulltext"
        except StageNotBuilt:
            pass
    return "substring"


def _cluster_levels(conn: sqlite3.Connection) -> tuple[list[dict], list[dict], dict]:
    """(fine clusters, each with its `parent` and `coherence`; coarse clusters; fine cluster
    -> coarse cluster). A map made before the hierarchy has fine clusters only."""
    parents = stages.call_or_none("cluster_parents", conn) or {}
    fine = [
        {**c, **parents.get(c["cluster"], {"parent": None, "coherence": None})}
        for c in stages.call_or_none("clusters", conn) or []
    ]
    coarse = stages.call_or_none("coarse_clusters", conn) or []
    return fine, coarse, {c: p["parent"] for c, p in parents.items()}


def map_data(conn: sqlite3.Connection, with_text: bool, limit: int = MAP_CAP) -> dict:
    """Every neuron as a point, in compact columns (one array per field, not one object per
    point) so 307,200 points stay a few MB. Falls back to a (layer, neuron) grid before
    `neuronatlas map` ran, and says so with `built: false`."""
    points = stages.call_or_none("map", conn)
    if points:
        truncated = len(points) > limit
        points = points[:limit]
        clusters, coarse, parent = _cluster_levels(conn)
        cols = {
            "layer": [p["layer"] for p in points],
            "neuron": [p["neuron"] for p in points],
            "x": [round(float(p["x"]), 4) for p in points],
            "y": [round(float(p["y"]), 4) for p in points],
            "cluster": [p.get("cluster") for p in points],
            "coarse": [parent.get(p.get("cluster")) for p in points],
        }
        if with_text:
            cols["explanation"] = [(p.get("explanation") or "")[:160] for p in points]
        return {
            "built": True,
            "count": len(points),
            "truncated": truncated,
            "columns": cols,
            "clusters": clusters,
            "coarse": coarse,
            "coherence": stages.call_or_none("map_coherence", conn) or [],
            "message": None,
        }
    rows, truncated = store_web.grid_points(conn, limit)
    cols = {
        "layer": [r[0] for r in rows],
        "neuron": [r[1] for r in rows],
        "x": [r[1] for r in rows],
        "y": [r[0] for r in rows],
        "cluster": [None] * len(rows),
        "coarse": [None] * len(rows),
    }
    if with_text:
        cols["explanation"] = [r[2][:160] for r in rows]
    return {
        "built": False,
        "count": len(rows),
        "truncated": truncated,
        "columns": cols,
        "clusters": [],
        "coarse": [],
        "coherence": [],
        "message": "The semantic map is not built for this atlas yet: neurons are laid "
        "out by layer (y) and index (x). Build it with "
        "`neuronatlas embed --db ATLAS` then `neuronatlas map --db ATLAS`.",
    }


def predict(conn: sqlite3.Connection, neuron_id: str, tokens: list[str]) -> list[float] | None:
    """The N2G graph's predicted activation per token, or None when there is no graph."""
    nid = canonical(neuron_id)
    if stages.call_or_none("graph", conn, nid, svg=False) is None:
        return None
    return stages.call_or_none("predict", conn, nid, tokens)


def live_strongest(conn: sqlite3.Connection, live: LiveModel, text: str, k: int) -> dict:
    """The model's strongest neurons per token of `text`, with the atlas's explanations."""
    out = live.strongest(text, k)
    known = store_web.summaries(conn, [n["id"] for top in out["top"] for n in top])
    for top in out["top"]:
        for n in top:
            s = known.get(n["id"])
            n["explanation"] = None if s is None else s["explanation"]
    return {"text": text, **out}


def live_neuron(conn: sqlite3.Connection, live: LiveModel, text: str, neuron_id: str) -> dict:
    """One stored neuron's live activation per token, and its N2G prediction when it has one."""
    nid = store_web.require_neuron(conn, neuron_id)
    out = live.neuron(text, nid)
    return {"text": text, "neuron": nid, **out, "n2g_prediction": predict(conn, nid, out["tokens"])}


def logit_effects(conn: sqlite3.Connection, live: LiveModel, neuron_id: str, k: int) -> dict:
    """The tokens the neuron's output most promotes / suppresses (w_out · W_U), live model."""
    nid = store_web.require_neuron(conn, neuron_id)
    model = live.get()
    fn = stages.lookup("logit_effects")
    if fn is None:
        raise StageNotBuilt("logit effects need neuronatlas.embed.similar, which is missing")
    with live.run_lock:
        return {"id": nid, **fn(nid, model, k)}
