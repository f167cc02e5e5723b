"""The N2G surface: a neuron's graph, its summary on the neuron page, and its prediction.

The graphs come from the n2g stage through `read.stages`; an atlas without them gets
StageNotBuilt (the graph route) or a reason under the page's `unavailable` (the summary).
"""

from __future__ import annotations

import sqlite3

import msgspec

from neuronatlas.errors import StageNotBuilt
from neuronatlas.ids import canonical
from neuronatlas.read import stages
from neuronatlas.read.views import N2GSummary, NeuronGraph
from neuronatlas.store import browse


def n2g_summary(
    conn: sqlite3.Connection, nid: str, unavailable: dict[str, str]
) -> N2GSummary | None:
    """The page's N2G section, or None with the reason under `unavailable`."""
    try:
        graph = stages.call("graph_summary", conn, nid)  # the drawing has its own route
    except StageNotBuilt as exc:
        unavailable["n2g"] = str(exc)
        return None
    if graph is None:
        unavailable["n2g"] = stages.for_atlas(
            conn, f"no N2G graph stored for {nid}: run `neuronatlas n2g --db ATLAS --neurons {nid}`"
        )
        return None
    # every stored graph is drawable: the graph route renders its DOT to SVG on demand
    return N2GSummary(metrics=graph["metrics"], explanation=graph["explanation"], has_svg=True)


def neuron_graph(conn: sqlite3.Connection, neuron_id: str) -> NeuronGraph:
    """The N2G graph of a neuron (nodes, edges, metrics, svg); StageNotBuilt when absent."""
    nid = browse.require_neuron(conn, neuron_id)
    graph = stages.call("graph", conn, nid)
    if graph is None:
        raise StageNotBuilt(
            stages.for_atlas(
                conn,
                f"no N2G graph stored for {nid}: run `neuronatlas n2g --db ATLAS --neurons {nid}`",
            )
        )
    return msgspec.convert(graph, NeuronGraph)


def predict(conn: sqlite3.Connection, neuron_id: str, tokens: list[str]) -> list[float] | None:
    """The N2G graph's predicted activation per token, or None when there is no graph."""
    nid = canonical(neuron_id)
    if stages.call_or_none("graph", conn, nid, svg=False) is None:
        return None
    found: list[float] | None = stages.call_or_none("predict", conn, nid, tokens)
    return found
