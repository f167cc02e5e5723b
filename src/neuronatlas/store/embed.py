"""SQL of the embed stage: explanation vectors, the map (points, clusters, parameters).

Vectors are little-endian float32 unit vectors in `embeddings.vector`, tagged with the
embedder's name. Writers take a connection from `open_writer` (autocommit; each function opens
its own transaction); readers take any connection, including `open_reader`'s.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence

import msgspec
import numpy as np

from neuronatlas.errors import MixedEmbedders
from neuronatlas.store.connection import transaction
from neuronatlas.store.reader import primary_order
from neuronatlas.store.writer import now


def text_digest(text: str) -> str:
    """What decides whether an explanation must be re-embedded: its exact text."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


# -- embeddings ------------------------------------------------------------------------------


def stored_embedders(conn: sqlite3.Connection) -> list[str]:
    """Names of the embedders whose vectors are stored (at most one in a consistent atlas)."""
    return [r[0] for r in conn.execute("SELECT DISTINCT embedder FROM embeddings ORDER BY 1")]


def check_embedder(conn: sqlite3.Connection, name: str) -> None:
    """Raise MixedEmbedders if vectors of another embedder are stored."""
    others = [e for e in stored_embedders(conn) if e != name]
    if others:
        raise MixedEmbedders(
            f"this atlas holds embeddings from {', '.join(others)}; vectors from {name} would "
            f"not be comparable. Run `neuronatlas embed --embedder {name} --reembed` to replace "
            f"them all, or keep `--embedder {others[0]}`"
        )


def explanations_to_embed(
    conn: sqlite3.Connection, embedder: str, primary_only: bool = True
) -> tuple[list[tuple[int, str, str]], int]:
    """((explanation id, text, digest) of explanations with no vector from `embedder` for
    their current text, number of explanations considered). `primary_only`: just each
    neuron's primary explanation."""
    table = "primary_explanations" if primary_only else "explanations"
    rows = conn.execute(
        f"SELECT e.id, e.text, b.embedder, b.text_digest FROM {table} e"
        " LEFT JOIN embeddings b ON b.explanation_id = e.id ORDER BY e.id"
    )
    out = []
    seen = 0
    for eid, text, have_embedder, have_digest in rows:
        seen += 1
        digest = text_digest(text)
        if have_embedder != embedder or have_digest != digest:
            out.append((eid, text, digest))
    return out, seen


def write_embeddings(
    conn: sqlite3.Connection, embedder: str, rows: Iterable[tuple[int, str, np.ndarray]]
) -> int:
    """Store (explanation id, text digest, unit vector) rows from `embedder`, one transaction."""
    data = [(eid, embedder, digest, to_blob(vec)) for eid, digest, vec in rows]
    with transaction(conn):
        check_embedder(conn, embedder)
        conn.executemany(
            "INSERT OR REPLACE INTO embeddings(explanation_id, embedder, text_digest, vector)"
            " VALUES (?, ?, ?, ?)",
            data,
        )
    return len(data)


def delete_embeddings(conn: sqlite3.Connection) -> int:
    """Remove every vector and the map made from them (before re-embedding with another model)."""
    with transaction(conn):
        n = conn.execute("DELETE FROM embeddings").rowcount
        _clear_map(conn)
    return n


def load_vectors(
    conn: sqlite3.Connection, primary_only: bool = False
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(explanation ids int64, neuron ids, float32 matrix n×d) of every stored vector."""
    table = "primary_explanations" if primary_only else "explanations"
    rows = conn.execute(
        f"SELECT e.id, e.neuron_id, b.vector FROM {table} e"
        " JOIN embeddings b ON b.explanation_id = e.id ORDER BY e.id"
    ).fetchall()
    if not rows:
        return np.zeros(0, dtype=np.int64), [], np.zeros((0, 0), dtype=np.float32)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    dim = len(rows[0][2]) // 4
    matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), dim)
    return ids, [r[1] for r in rows], matrix.astype(np.float32, copy=False)


def neuron_vectors(conn: sqlite3.Connection) -> tuple[list[str], list[int], np.ndarray]:
    """(neuron ids, explanation ids, matrix): per neuron, its first embedded explanation in
    primary order (so a neuron whose primary explanation is not embedded yet still counts)."""
    rows = conn.execute(
        "SELECT neuron_id, id, vector FROM ("
        " SELECT e.neuron_id, e.id, b.vector, row_number() OVER ("
        f"  PARTITION BY e.neuron_id ORDER BY {primary_order(conn, 'e')}) AS rn"
        " FROM explanations e JOIN embeddings b ON b.explanation_id = e.id"
        ") WHERE rn = 1 ORDER BY neuron_id"
    ).fetchall()
    if not rows:
        return [], [], np.zeros((0, 0), dtype=np.float32)
    dim = len(rows[0][2]) // 4
    matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), dim)
    return [r[0] for r in rows], [r[1] for r in rows], matrix.astype(np.float32)


def embedded_count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM embeddings").fetchone()[0]


def explanation_vector(conn: sqlite3.Connection, neuron_id: str) -> tuple[int, np.ndarray] | None:
    """(explanation id, vector) of the neuron's first embedded explanation in primary order."""
    row = conn.execute(
        "SELECT e.id, b.vector FROM explanations e JOIN embeddings b ON b.explanation_id = e.id"
        f" WHERE e.neuron_id = ? ORDER BY {primary_order(conn, 'e')} LIMIT 1",
        (neuron_id,),
    ).fetchone()
    return None if row is None else (row[0], from_blob(row[1]))


def _rows_in(conn: sqlite3.Connection, sql: str, ids: Sequence) -> Iterator[tuple]:
    """Rows of `sql` (whose `{marks}` is an IN list) for all `ids`, 500 at a time: SQLite
    caps the number of bound parameters."""
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        yield from conn.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)


def explanation_texts(conn: sqlite3.Connection, ids: Sequence[int]) -> list[str]:
    """The texts of these explanations, in the order given."""
    ids = [int(i) for i in ids]
    found = dict(_rows_in(conn, "SELECT id, text FROM explanations WHERE id IN ({marks})", ids))
    return [found[i] for i in ids]


def describe_explanations(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, dict]:
    """Search-result fields for explanation ids: id, layer, neuron, explanation, score."""
    rows = _rows_in(
        conn,
        "SELECT e.id, n.id, n.layer, n.neuron, e.text, e.ev_correlation_score"
        " FROM explanations e JOIN neuron_info n ON n.id = e.neuron_id WHERE e.id IN ({marks})",
        [int(i) for i in ids],
    )
    return {
        eid: {
            "id": nid,
            "layer": layer,
            "neuron": neuron,
            "explanation": text.strip(),
            "score": score,
        }
        for eid, nid, layer, neuron, text, score in rows
    }


def describe_neurons(conn: sqlite3.Connection, neuron_ids: Sequence[str]) -> dict[str, dict]:
    """Search-result fields for neurons, with their primary explanation (or null)."""
    rows = _rows_in(
        conn,
        "SELECT n.id, n.layer, n.neuron, e.text, e.ev_correlation_score FROM neuron_info n"
        " LEFT JOIN primary_explanations e ON e.neuron_id = n.id WHERE n.id IN ({marks})",
        list(neuron_ids),
    )
    return {
        nid: {
            "id": nid,
            "layer": layer,
            "neuron": neuron,
            "explanation": None if text is None else text.strip(),
            "score": score,
        }
        for nid, layer, neuron, text, score in rows
    }


def database_path(conn: sqlite3.Connection) -> str:
    """The file behind a connection ('' for an in-memory database)."""
    for row in conn.execute("PRAGMA database_list"):
        if row[1] == "main":
            return row[2] or ""
    return ""


def data_version(conn: sqlite3.Connection) -> tuple:
    """A cheap fingerprint of the stored vectors (for databases without a file to stat)."""
    return conn.execute(
        "SELECT count(*), max(explanation_id), min(embedder), max(embedder),"
        " total(length(vector)) FROM embeddings"
    ).fetchone()


# -- the map ---------------------------------------------------------------------------------


def _clear_map(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM map_points")
    conn.execute("DELETE FROM map_clusters")
    conn.execute("DELETE FROM map_config")


def write_map(
    conn: sqlite3.Connection,
    points: Sequence[tuple[str, int, float, float, int]],
    clusters: Sequence[tuple[int, str, list[tuple[str, float]], int, float, float]],
    embedder: str,
    config: object,
    run_id: int | None = None,
) -> None:
    """Replace the map: points (neuron id, explanation id, x, y, cluster), clusters
    (cluster, label, words, size, x, y) and the parameters, in one transaction."""
    with transaction(conn):
        _clear_map(conn)
        conn.executemany("INSERT INTO map_points VALUES (?, ?, ?, ?, ?)", points)
        conn.executemany(
            "INSERT INTO map_clusters VALUES (?, ?, ?, ?, ?, ?)",
            [
                (c, label, msgspec.json.encode(words).decode(), size, x, y)
                for c, label, words, size, x, y in clusters
            ],
        )
        conn.execute(
            "INSERT INTO map_config(id, embedder, config, n_points, n_clusters, run_id,"
            " created_at) VALUES (1, ?, ?, ?, ?, ?, ?)",
            (
                embedder,
                msgspec.json.encode(config).decode(),
                len(points),
                sum(1 for c in clusters if c[0] >= 0),
                run_id,
                now(),
            ),
        )


def map_points(conn: sqlite3.Connection) -> list[dict]:
    """Every map point: id, layer, neuron, x, y, cluster, explanation, score."""
    rows = conn.execute(
        "SELECT p.neuron_id, n.layer, n.neuron, p.x, p.y, p.cluster, e.text,"
        " e.ev_correlation_score FROM map_points p"
        " JOIN neuron_info n ON n.id = p.neuron_id"
        " LEFT JOIN explanations e ON e.id = p.explanation_id"
        " ORDER BY n.layer, n.neuron"
    )
    return [
        {
            "id": r[0],
            "layer": r[1],
            "neuron": r[2],
            "x": r[3],
            "y": r[4],
            "cluster": r[5],
            "explanation": None if r[6] is None else r[6].strip(),
            "score": r[7],
        }
        for r in rows
    ]


def cluster_labels(conn: sqlite3.Connection) -> list[dict]:
    """Every cluster: cluster, label, size, x, y (its centre), words; noise (-1) last."""
    rows = conn.execute(
        "SELECT cluster, label, size, x, y, words FROM map_clusters"
        " ORDER BY cluster < 0, size DESC, cluster"
    )
    return [
        {
            "cluster": r[0],
            "label": r[1],
            "size": r[2],
            "x": r[3],
            "y": r[4],
            "words": [w for w, _ in msgspec.json.decode(r[5])],
        }
        for r in rows
    ]


def map_info(conn: sqlite3.Connection) -> dict | None:
    """The stored map's parameters (None when there is no map)."""
    row = conn.execute(
        "SELECT embedder, config, n_points, n_clusters, run_id, created_at FROM map_config"
    ).fetchone()
    if row is None:
        return None
    return {
        "embedder": row[0],
        "config": msgspec.json.decode(row[1]),
        "n_points": row[2],
        "n_clusters": row[3],
        "run_id": row[4],
        "created_at": row[5],
    }
