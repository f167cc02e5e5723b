"""What derived data (vectors, map points) was made from, and which of it is stale.

A vector records the digest of the text it embeds (`embeddings.text_digest`) and a map point
the explanation it was placed from (`map_points.explanation_id`). When a neuron's primary
explanation changes (a new LLM explanation, a new score) or its text is edited, these no longer
match: the neuron's vector and its map point describe the old text. This module compares them,
per atlas and per neuron, so `embed` and `map` redo exactly the stale ones and the pages and
`show` can say which parts are out of date and the command that refreshes them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from neuronatlas.store.connection import transaction
from neuronatlas.store.embed import database_path, from_blob, text_digest


class PrimaryState(NamedTuple):
    """One neuron's primary explanation and what is derived from it."""

    neuron_id: str
    explanation_id: int
    embedded: bool
    """The primary explanation has a vector of its current text."""
    mapped_from: int | None
    """The explanation id the neuron's map point was placed from (None: no point)."""


class Staleness(NamedTuple):
    """Counts of neurons whose derived data no longer follows their primary explanation."""

    neurons: int
    """Neurons with a primary explanation."""
    unembedded: int
    """Primary explanation without a vector of its current text (0 when nothing is embedded:
    an atlas that was never embedded is not stale, it lacks a stage)."""
    map_stale: int
    """Map points placed from another explanation than the neuron's embedded primary one, or
    embedded neurons with no point (0 when there is no map)."""

    @property
    def fresh(self) -> bool:
        return self.unembedded == 0 and self.map_stale == 0


def _has_embeddings(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM embeddings LIMIT 1").fetchone() is not None


def _has_map(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM map_config").fetchone() is not None


def primary_states(
    conn: sqlite3.Connection, neuron_ids: Iterable[str] | None = None
) -> list[PrimaryState]:
    """Each neuron's primary explanation, whether its current text is embedded, and where
    its map point came from; every neuron, or just `neuron_ids`."""
    sql = (
        "SELECT p.neuron_id, p.id, p.text, b.text_digest, m.explanation_id"
        " FROM primary_explanations p"
        " LEFT JOIN embeddings b ON b.explanation_id = p.id"
        " LEFT JOIN map_points m ON m.neuron_id = p.neuron_id"
    )
    if neuron_ids is None:
        rows = conn.execute(sql + " ORDER BY p.neuron_id").fetchall()
    else:
        rows = [
            row
            for nid in dict.fromkeys(neuron_ids)
            for row in conn.execute(sql + " WHERE p.neuron_id = ?", (nid,))
        ]
    return [
        PrimaryState(nid, int(eid), digest is not None and digest == text_digest(text), mapped)
        for nid, eid, text, digest, mapped in rows
    ]


def staleness(conn: sqlite3.Connection) -> Staleness:
    """How many neurons' vectors and map points lag behind their primary explanation."""
    states = primary_states(conn)
    embedded_atlas, mapped_atlas = _has_embeddings(conn), _has_map(conn)
    unembedded = sum(not s.embedded for s in states) if embedded_atlas else 0
    map_stale = (
        sum(s.embedded and s.mapped_from != s.explanation_id for s in states) if mapped_atlas else 0
    )
    return Staleness(len(states), unembedded, map_stale)


def stale_parts(conn: sqlite3.Connection, neuron_id: str, db: str | None = None) -> dict[str, str]:
    """For one neuron: each derived part that does not follow its primary explanation, with
    the command that refreshes it (empty when all is current or the stage never ran); `db`
    is the path those commands name (default: the connection's file).

    The atlas-wide checks come first, in one statement: where neither stage ran (an atlas
    served before `embed`), the neuron's primary explanation is not read at all (the neuron
    page asks this on every view)."""
    embedded_atlas, mapped_atlas = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM embeddings), EXISTS (SELECT 1 FROM map_config)"
    ).fetchone()
    if not (embedded_atlas or mapped_atlas):
        return {}
    states = primary_states(conn, [neuron_id])
    if not states:
        return {}
    if db is None:
        db = database_path(conn) or ":memory:"
    state = states[0]
    out: dict[str, str] = {}
    if not state.embedded and embedded_atlas:
        out["embedding"] = (
            "the primary explanation has no vector yet (search and similar neurons use "
            f"older data): run `neuronatlas embed --db {db}`"
        )
    if mapped_atlas and state.mapped_from != state.explanation_id:
        then = "" if state.embedded else f"`neuronatlas embed --db {db}`, then "
        out["map"] = (
            "the map point was placed from another explanation"
            if state.mapped_from is not None
            else "the neuron has no map point"
        ) + f": run {then}`neuronatlas map --db {db}`"
    return out


class MapNeighbourhood(NamedTuple):
    """What placing points on an existing map needs: the current points with their vectors,
    and the neurons to place with theirs."""

    placed_ids: list[str]
    placed_xy: np.ndarray
    """float64, n × 2."""
    placed_cluster: np.ndarray
    """int64, the fine cluster of each current point."""
    placed_vectors: np.ndarray
    """float32, n × d unit rows (the vector of the explanation each point was placed from)."""
    todo_ids: list[str]
    todo_explanations: list[int]
    todo_vectors: np.ndarray


def map_neighbourhood(conn: sqlite3.Connection) -> MapNeighbourhood:
    """Current map points whose explanation is still the neuron's embedded primary one, and
    the embedded neurons whose point is missing or was placed from another explanation."""
    states = {s.neuron_id: s for s in primary_states(conn)}
    fresh = conn.execute(
        "SELECT m.neuron_id, m.x, m.y, m.cluster, b.vector FROM map_points m"
        " JOIN embeddings b ON b.explanation_id = m.explanation_id ORDER BY m.neuron_id"
    ).fetchall()
    fresh = [r for r in fresh if (s := states.get(r[0])) and s.mapped_from == s.explanation_id]
    todo = [s for s in states.values() if s.embedded and s.mapped_from != s.explanation_id]
    vectors = {
        eid: from_blob(blob)
        for eid, blob in _vectors_of(conn, [s.explanation_id for s in todo])
        if blob is not None
    }
    todo = [s for s in todo if s.explanation_id in vectors]
    dim = len(fresh[0][4]) // 4 if fresh else len(next(iter(vectors.values()), ()))
    return MapNeighbourhood(
        [r[0] for r in fresh],
        np.array([(r[1], r[2]) for r in fresh], dtype=np.float64).reshape(-1, 2),
        np.array([r[3] for r in fresh], dtype=np.int64),
        np.frombuffer(b"".join(r[4] for r in fresh), dtype="<f4").reshape(len(fresh), dim),
        [s.neuron_id for s in todo],
        [s.explanation_id for s in todo],
        np.array([vectors[s.explanation_id] for s in todo], dtype=np.float32).reshape(
            len(todo), dim
        ),
    )


def _vectors_of(conn: sqlite3.Connection, ids: list[int]) -> list[tuple[int, bytes | None]]:
    out: list[tuple[int, bytes | None]] = []
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        marks = ",".join("?" * len(part))
        out += conn.execute(
            f"SELECT explanation_id, vector FROM embeddings WHERE explanation_id IN ({marks})",
            part,
        ).fetchall()
    return out


def place_points(
    conn: sqlite3.Connection, points: Iterable[tuple[str, int, float, float, int]]
) -> int:
    """Add or move map points (neuron id, explanation id, x, y, fine cluster) on the stored
    map and refresh the cluster sizes and the point count, in one transaction."""
    rows = list(points)
    with transaction(conn):
        conn.executemany(
            "INSERT OR REPLACE INTO map_points(neuron_id, explanation_id, x, y, cluster)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute(
            "UPDATE map_clusters SET size ="
            " (SELECT count(*) FROM map_points p WHERE p.cluster = map_clusters.cluster)"
        )
        conn.execute(
            "UPDATE map_coarse_clusters SET size = (SELECT count(*) FROM map_points p"
            " JOIN map_cluster_parents c ON c.cluster = p.cluster"
            " WHERE c.parent = map_coarse_clusters.cluster)"
        )
        conn.execute("UPDATE map_config SET n_points = (SELECT count(*) FROM map_points)")
    return len(rows)
