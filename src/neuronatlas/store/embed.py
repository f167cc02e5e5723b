"""SQL of the embed stage: explanation vectors, the map (points, clusters, parameters).

Vectors are little-endian float32 unit vectors in `embeddings.vector`, tagged with the
embedder's name, with their JSON text (shortest float32 spellings) in `vector_json` for the
seed's `neurons.explanation_embedding`. A vector written through that SQL column (embedder
'external') has only the JSON text; readers here decode it. Writers take a connection from
`open_writer` (autocommit; each function opens its own transaction); readers take any
connection, including `open_reader`'s.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import msgspec
import numpy as np

from neuronatlas.errors import MixedEmbedders
from neuronatlas.store import values
from neuronatlas.store.browse import NeuronBrief, forget_similar
from neuronatlas.store.connection import transaction
from neuronatlas.store.reader import primary_order
from neuronatlas.store.writer import now

#: meta key: "all" once every explanation was embedded (`embed --all-explanations`), so search
#: matches any of a neuron's explanations; otherwise each neuron's primary one only.
EMBED_SCOPE_KEY = "embed_scope"


class MapPoint(msgspec.Struct, frozen=True):
    """A neuron on the stored map: its place, fine cluster (-1: noise) and the explanation
    it was placed by, with that explanation's score."""

    id: str
    layer: int
    neuron: int
    x: float
    y: float
    cluster: int
    explanation: str | None
    score: float | None


class ClusterLabel(msgspec.Struct, frozen=True):
    """A fine cluster of the map: its label, size, centre and top words."""

    cluster: int
    label: str
    size: int
    x: float
    y: float
    words: list[str]


class CoarseClusterRow(msgspec.Struct, frozen=True):
    """A coarse cluster: `ClusterLabel`'s fields, its coherence and its fine clusters
    (`children`, largest first)."""

    cluster: int
    label: str
    size: int
    x: float
    y: float
    words: list[str]
    coherence: float | None
    children: list[int]


class ClusterParent(msgspec.Struct, frozen=True):
    """The coarse cluster a fine cluster sits in, and the fine cluster's coherence."""

    parent: int
    coherence: float | None


class CoherenceRow(msgspec.Struct, frozen=True):
    """The stored coherence of one level under one similarity measure (NULL: undefined)."""

    level: str
    measure: str
    clusters: int
    within: float | None
    within_low: float | None
    within_high: float | None
    random: float | None


class MapInfo(msgspec.Struct, frozen=True):
    """The stored map's parameters: embedder, settings (decoded), sizes and its run."""

    embedder: str
    config: Any
    n_points: int
    n_clusters: int
    run_id: int | None
    created_at: str


def text_digest(text: str) -> str:
    """What decides whether an explanation must be re-embedded: its exact text."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


def _vector(blob: bytes | None, text: str) -> np.ndarray:
    """A stored vector: its BLOB, or its JSON text when written through SQL (no BLOB)."""
    return from_blob(blob) if blob is not None else values.decode_f32(text)


def _matrix(vectors: Sequence[np.ndarray]) -> np.ndarray:
    dims = sorted({len(v) for v in vectors})
    if len(dims) > 1:
        raise MixedEmbedders(
            f"stored vectors have different lengths ({', '.join(map(str, dims))}): some were "
            "written by another program; run `neuronatlas embed --reembed` to replace them all"
        )
    return np.stack(vectors).astype(np.float32, copy=False)


# -- embeddings ------------------------------------------------------------------------------


def stored_embedders(conn: sqlite3.Connection) -> list[str]:
    """Names of the embedders whose vectors are stored (at most one in a consistent atlas)."""
    return [r[0] for r in conn.execute("SELECT DISTINCT embedder FROM embeddings ORDER BY 1")]


def check_embedder(conn: sqlite3.Connection, name: str) -> None:
    """Raise MixedEmbedders if vectors of another embedder are stored. Called for every
    chunk `embed` writes, so it seeks the embedder index (migration 013) on both sides of
    `name` rather than reading every stored row."""
    other = conn.execute(
        "SELECT embedder FROM embeddings WHERE embedder < ?1 OR embedder > ?1 LIMIT 1", (name,)
    ).fetchone()
    if other is not None:
        others = [e for e in stored_embedders(conn) if e != name]
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
    data = []
    for eid, digest, vec in rows:
        blob = to_blob(vec)
        data.append((eid, embedder, digest, blob, values.blob_to_json(blob)))
    with transaction(conn):
        check_embedder(conn, embedder)
        forget_similar(conn, "embedding")  # new vectors: the stored neighbours are stale
        conn.executemany(
            "INSERT OR REPLACE INTO embeddings(explanation_id, embedder, text_digest, vector,"
            " vector_json) VALUES (?, ?, ?, ?, ?)",
            data,
        )
    return len(data)


def delete_embeddings(conn: sqlite3.Connection) -> int:
    """Remove every vector and the map made from them (before re-embedding with another model)."""
    with transaction(conn):
        n = conn.execute("DELETE FROM embeddings").rowcount
        conn.execute("DELETE FROM meta WHERE key = ?", (EMBED_SCOPE_KEY,))
        _clear_map(conn)
        forget_similar(conn, "embedding")
    return n


class StoredVectors(NamedTuple):
    """Every stored vector, row i of `matrix` for explanation `explanation_ids[i]`."""

    explanation_ids: np.ndarray
    """int64, one per row."""
    neuron_ids: list[str]
    matrix: np.ndarray
    """float32, n × d, unit rows."""


def load_vectors(conn: sqlite3.Connection, primary_only: bool = False) -> StoredVectors:
    """The explanation ids, neuron ids and float32 matrix of every stored vector."""
    table = "primary_explanations" if primary_only else "explanations"
    rows = conn.execute(
        f"SELECT e.id, e.neuron_id, b.vector, b.vector_json FROM {table} e"
        " JOIN embeddings b ON b.explanation_id = e.id ORDER BY e.id"
    ).fetchall()
    if not rows:
        return StoredVectors(np.zeros(0, dtype=np.int64), [], np.zeros((0, 0), dtype=np.float32))
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    if all(r[2] is not None for r in rows):  # the usual case: one join of the BLOBs
        dim = len(rows[0][2]) // 4
        matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), dim)
    else:
        matrix = _matrix([_vector(r[2], r[3]) for r in rows])
    return StoredVectors(ids, [r[1] for r in rows], matrix.astype(np.float32, copy=False))


class NeuronVectors(NamedTuple):
    """One vector per neuron: row i of `matrix` is neuron `neuron_ids[i]`'s explanation
    `explanation_ids[i]`."""

    neuron_ids: list[str]
    explanation_ids: list[int]
    matrix: np.ndarray


def neuron_vectors(conn: sqlite3.Connection) -> NeuronVectors:
    """Per neuron, its first embedded explanation in primary order (so a neuron whose
    primary explanation is not embedded yet still counts)."""
    rows = conn.execute(
        "SELECT neuron_id, id, vector, vector_json FROM ("
        " SELECT e.neuron_id, e.id, b.vector, b.vector_json, row_number() OVER ("
        f"  PARTITION BY e.neuron_id ORDER BY {primary_order(conn, 'e')}) AS rn"
        " FROM explanations e JOIN embeddings b ON b.explanation_id = e.id"
        ") WHERE rn = 1 ORDER BY neuron_id"
    ).fetchall()
    if not rows:
        return NeuronVectors([], [], np.zeros((0, 0), dtype=np.float32))
    matrix = _matrix([_vector(r[2], r[3]) for r in rows])
    return NeuronVectors([r[0] for r in rows], [r[1] for r in rows], matrix)


class NeuronExplanations(NamedTuple):
    """Per neuron, the explanation whose vector stands for it: `neuron_ids[i]`'s
    `explanation_ids[i]`."""

    neuron_ids: list[str]
    explanation_ids: list[int]


def first_embedded_explanations(conn: sqlite3.Connection) -> NeuronExplanations:
    """`neuron_vectors` without the vectors: for callers that already hold the matrix, so a
    307,200-neuron atlas is not read (and held) twice."""
    rows = conn.execute(
        "SELECT neuron_id, id FROM ("
        " SELECT e.neuron_id, e.id, row_number() OVER ("
        f"  PARTITION BY e.neuron_id ORDER BY {primary_order(conn, 'e')}) AS rn"
        " FROM explanations e JOIN embeddings b ON b.explanation_id = e.id"
        ") WHERE rn = 1 ORDER BY neuron_id"
    ).fetchall()
    return NeuronExplanations([r[0] for r in rows], [int(r[1]) for r in rows])


def embedded_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM embeddings").fetchone()[0])


def explanation_vector(conn: sqlite3.Connection, neuron_id: str) -> tuple[int, np.ndarray] | None:
    """(explanation id, vector) of the neuron's first embedded explanation in primary order."""
    row = conn.execute(
        "SELECT e.id, b.vector, b.vector_json FROM explanations e"
        " JOIN embeddings b ON b.explanation_id = e.id"
        f" WHERE e.neuron_id = ? ORDER BY {primary_order(conn, 'e')} LIMIT 1",
        (neuron_id,),
    ).fetchone()
    return None if row is None else (row[0], _vector(row[1], row[2]))


def _rows_in(conn: sqlite3.Connection, sql: str, ids: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
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


def describe_explanations(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, NeuronBrief]:
    """Explanation id → its neuron with that explanation (a search hit's fields)."""
    rows = _rows_in(
        conn,
        "SELECT e.id, n.id, n.layer, n.neuron, e.text, e.ev_correlation_score"
        " FROM explanations e JOIN neuron_info n ON n.id = e.neuron_id WHERE e.id IN ({marks})",
        [int(i) for i in ids],
    )
    return {
        eid: NeuronBrief(nid, layer, neuron, text.strip(), score)
        for eid, nid, layer, neuron, text, score in rows
    }


def describe_neurons(conn: sqlite3.Connection, neuron_ids: Sequence[str]) -> dict[str, NeuronBrief]:
    """Neuron id → the neuron with its primary explanation (or None)."""
    rows = _rows_in(
        conn,
        "SELECT n.id, n.layer, n.neuron, e.text, e.ev_correlation_score FROM neuron_info n"
        " LEFT JOIN primary_explanations e ON e.neuron_id = n.id WHERE n.id IN ({marks})",
        list(neuron_ids),
    )
    return {
        nid: NeuronBrief(nid, layer, neuron, None if text is None else text.strip(), score)
        for nid, layer, neuron, text, score in rows
    }


def database_path(conn: sqlite3.Connection) -> str:
    """The file behind a connection ('' for an in-memory database)."""
    for row in conn.execute("PRAGMA database_list"):
        if row[1] == "main":
            return row[2] or ""
    return ""


def data_version(conn: sqlite3.Connection) -> tuple[Any, ...]:
    """A cheap fingerprint of the stored vectors (for databases without a file to stat)."""
    row: tuple[Any, ...] = conn.execute(
        "SELECT count(*), max(explanation_id), min(embedder), max(embedder),"
        " total(length(vector_json)) FROM embeddings"
    ).fetchone()
    return row


# -- the map ---------------------------------------------------------------------------------


def _clear_map(conn: sqlite3.Connection) -> None:
    for table in (
        "map_points",
        "map_clusters",
        "map_config",
        "map_coarse_clusters",
        "map_cluster_parents",
        "map_coherence",
    ):
        conn.execute(f"DELETE FROM {table}")


def write_map(
    conn: sqlite3.Connection,
    points: Sequence[tuple[str, int, float, float, int]],
    clusters: Sequence[tuple[int, str, list[tuple[str, float]], int, float, float]],
    embedder: str,
    config: object,
    run_id: int | None = None,
    *,
    coarse: Sequence[
        tuple[int, str, list[tuple[str, float]], int, float, float, float | None]
    ] = (),
    parents: Sequence[tuple[int, int, float | None]] = (),
    quality: Sequence[CoherenceRow] = (),
) -> None:
    """Replace the map in one transaction: points (neuron id, explanation id, x, y, fine
    cluster), fine clusters (cluster, label, words, size, x, y), the parameters, and the
    hierarchy: coarse clusters (… as fine, plus coherence), parents (fine cluster, coarse
    cluster, fine coherence) and the coherence of each level under each measure."""
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
        conn.executemany(
            "INSERT INTO map_coarse_clusters VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (c, label, msgspec.json.encode(words).decode(), size, x, y, sim)
                for c, label, words, size, x, y, sim in coarse
            ],
        )
        conn.executemany("INSERT INTO map_cluster_parents VALUES (?, ?, ?)", parents)
        conn.executemany(
            "INSERT INTO map_coherence(level, measure, clusters, within, within_low,"
            " within_high, random) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [tuple(_finite(v) for v in msgspec.structs.astuple(q)) for q in quality],
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


def map_points(conn: sqlite3.Connection) -> list[MapPoint]:
    """Every map point, in (layer, neuron) order."""
    rows = conn.execute(
        "SELECT p.neuron_id, n.layer, n.neuron, p.x, p.y, p.cluster, e.text,"
        " e.ev_correlation_score FROM map_points p"
        " JOIN neuron_info n ON n.id = p.neuron_id"
        " LEFT JOIN explanations e ON e.id = p.explanation_id"
        " ORDER BY n.layer, n.neuron"
    )
    return [
        MapPoint(r[0], r[1], r[2], r[3], r[4], r[5], None if r[6] is None else r[6].strip(), r[7])
        for r in rows
    ]


def cluster_labels(conn: sqlite3.Connection) -> list[ClusterLabel]:
    """Every fine cluster, largest first; noise (-1) last."""
    rows = conn.execute(
        "SELECT cluster, label, size, x, y, words FROM map_clusters"
        " ORDER BY cluster < 0, size DESC, cluster"
    )
    return [
        ClusterLabel(r[0], r[1], r[2], r[3], r[4], [w for w, _ in msgspec.json.decode(r[5])])
        for r in rows
    ]


def _finite(value: object) -> object:
    """NaN (an undefined mean) is stored as NULL."""
    return None if isinstance(value, float) and value != value else value


def coarse_clusters(conn: sqlite3.Connection) -> list[CoarseClusterRow]:
    """The coarse level, largest first; [] for a map made before the hierarchy existed."""
    children: dict[int, list[int]] = {}
    for fine, parent in conn.execute(
        "SELECT p.cluster, p.parent FROM map_cluster_parents p"
        " JOIN map_clusters c ON c.cluster = p.cluster ORDER BY c.size DESC, p.cluster"
    ):
        children.setdefault(parent, []).append(fine)
    rows = conn.execute(
        "SELECT cluster, label, size, x, y, words, coherence FROM map_coarse_clusters"
        " ORDER BY size DESC, cluster"
    )
    return [
        CoarseClusterRow(
            cluster=r[0],
            label=r[1],
            size=r[2],
            x=r[3],
            y=r[4],
            words=[w for w, _ in msgspec.json.decode(r[5])],
            coherence=r[6],
            children=children.get(r[0], []),
        )
        for r in rows
    ]


def cluster_parents(conn: sqlite3.Connection) -> dict[int, ClusterParent]:
    """Fine cluster -> its coarse cluster and coherence; {} for a flat (older) map."""
    return {
        r[0]: ClusterParent(r[1], r[2])
        for r in conn.execute("SELECT cluster, parent, coherence FROM map_cluster_parents")
    }


def map_coherence(conn: sqlite3.Connection) -> list[CoherenceRow]:
    """The stored coherence of each level under each similarity, coarse first."""
    rows = conn.execute(
        "SELECT level, measure, clusters, within, within_low, within_high, random"
        " FROM map_coherence ORDER BY level, measure"
    )
    return [CoherenceRow(*r) for r in rows]


def map_info(conn: sqlite3.Connection) -> MapInfo | None:
    """The stored map's parameters (None when there is no map)."""
    row = conn.execute(
        "SELECT embedder, config, n_points, n_clusters, run_id, created_at FROM map_config"
    ).fetchone()
    if row is None:
        return None
    return MapInfo(
        embedder=row[0],
        config=msgspec.json.decode(row[1]),
        n_points=row[2],
        n_clusters=row[3],
        run_id=row[4],
        created_at=row[5],
    )
