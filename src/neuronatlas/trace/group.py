"""Atlas annotations on a graph: each neuron node's explanation and map cluster, and
supernodes (the viewers' node groups) by cluster."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Literal

import msgspec

from neuronatlas.trace.records import TraceGraph

Group = Literal["cluster"]


class NeuronNote(msgspec.Struct, frozen=True):
    """What the atlas says about one neuron: primary explanation and map cluster label."""

    explanation: str | None
    cluster: str | None


def annotate(
    graph: TraceGraph, notes: Mapping[str, NeuronNote], group: Group | None = None
) -> TraceGraph:
    """The graph with explanations and clusters on its neuron nodes; with group="cluster",
    one supernode [label, node_id, ...] per cluster holding at least two nodes."""
    nodes = []
    for node in graph.nodes:
        note = notes.get(node.neuron_id or "")
        if note is not None:
            node = msgspec.structs.replace(node, explanation=note.explanation, cluster=note.cluster)
        nodes.append(node)
    supernodes: list[list[str]] = []
    if group == "cluster":
        members: dict[str, list[str]] = {}
        for node in nodes:
            if node.kind == "neuron" and node.cluster:
                members.setdefault(node.cluster, []).append(node.node_id)
        supernodes = [[label, *ids] for label, ids in members.items() if len(ids) >= 2]
    return msgspec.structs.replace(graph, nodes=nodes, supernodes=supernodes)


def annotate_from_atlas(
    conn: sqlite3.Connection, graph: TraceGraph, group: Group | None = None
) -> TraceGraph:
    """`annotate` with the notes of the atlas behind `conn` (its primary explanations and
    map clusters): what `Atlas.trace` and the explorer's trace route both give."""
    from neuronatlas.store import trace as trace_store

    ids = [n.neuron_id for n in graph.nodes if n.neuron_id]
    notes = trace_store.neuron_notes(conn, ids)
    return annotate(
        graph, {nid: NeuronNote(explanation=e, cluster=c) for nid, (e, c) in notes.items()}, group
    )
