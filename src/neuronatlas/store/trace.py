"""SQL for attribution graphs: atlas notes on traced neurons, saved graphs (012)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import NamedTuple

from neuronatlas.store.connection import transaction
from neuronatlas.store.reader import has_table


class SavedGraphRow(NamedTuple):
    """One saved graph as listed (its JSON body is read with `saved_graph`)."""

    id: int
    created_at: str
    model: str
    prompt: str
    target: str
    n_nodes: int
    n_links: int


def neuron_notes(
    conn: sqlite3.Connection, neuron_ids: Sequence[str]
) -> dict[str, tuple[str | None, str | None]]:
    """id → (primary explanation, map cluster label) for the stored ones among `neuron_ids`;
    the cluster is None without a map (one index seek per id: callers pass a graph's nodes)."""
    mapped = has_table(conn, "map_points") and has_table(conn, "map_clusters")
    sql = (
        "SELECT n.id, e.text, c.label FROM neuron_info n"
        " LEFT JOIN primary_explanations e ON e.neuron_id = n.id"
        " LEFT JOIN map_points p ON p.neuron_id = n.id"
        " LEFT JOIN map_clusters c ON c.cluster = p.cluster WHERE n.id = ?"
        if mapped
        else "SELECT n.id, e.text, NULL FROM neuron_info n"
        " LEFT JOIN primary_explanations e ON e.neuron_id = n.id WHERE n.id = ?"
    )
    out: dict[str, tuple[str | None, str | None]] = {}
    for nid in dict.fromkeys(neuron_ids):
        row = conn.execute(sql, (nid,)).fetchone()
        if row is not None:
            out[nid] = (None if row[1] is None else row[1].strip(), row[2])
    return out


def save_graph(
    conn: sqlite3.Connection,
    created_at: str,
    model: str,
    prompt: str,
    target: str,
    n_nodes: int,
    n_links: int,
    body: bytes,
) -> int:
    """Store one graph (a writer connection); its new id."""
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO trace_graphs (created_at, model, prompt, target, n_nodes, n_links,"
            " graph) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (created_at, model, prompt, target, n_nodes, n_links, body),
        )
    assert cur.lastrowid is not None
    return int(cur.lastrowid)


def saved_graphs(conn: sqlite3.Connection) -> list[SavedGraphRow]:
    """Every saved graph, newest first (none when the table is absent)."""
    if not has_table(conn, "trace_graphs"):
        return []
    rows = conn.execute(
        "SELECT id, created_at, model, prompt, target, n_nodes, n_links FROM trace_graphs"
        " ORDER BY id DESC"
    )
    return [SavedGraphRow(*r) for r in rows]


def saved_graph(conn: sqlite3.Connection, graph_id: int) -> bytes | None:
    """The stored JSON body of one graph, None when there is no such id."""
    if not has_table(conn, "trace_graphs"):
        return None
    row = conn.execute("SELECT graph FROM trace_graphs WHERE id = ?", (graph_id,)).fetchone()
    return None if row is None else bytes(row[0])
