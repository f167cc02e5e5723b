"""SQL of `import-seed`: reads of the seed notebook's own database, and the atlas lookups the
import needs.

The seed notebook (OpenAI's GPT-2-small neuron-explainer data loaded into SQLite) keeps two
tables: `neurons` (one row per neuron: OpenAI's first explanation, its three scores, the four
activation moments, and `explanation_embedding`, a JSON array the notebook adds later) and
`activations` (one row per record: neuron id, category 'top' | 'random', tokens and values as
compact JSON text). An atlas shows the same two relations as views, so the seed's tables are
only ever read from their own file, opened read-only (`mode=ro`): the import can never change
it. Records are read back in insertion order (rowid), which is OpenAI's order within a
category (top records strongest first), and fetched by rowid ranges: the notebook writes a
neuron's records in one run, so a batch of neurons is usually one range scan, with no index on
`neuron_id` needed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from neuronatlas.errors import NotASeedDatabase

#: The columns the notebook's INSERT INTO neurons names, in its order.
NEURON_COLUMNS = (
    "id",
    "layer_index",
    "neuron_index",
    "explanation_text",
    "explanation_ev_correlation_score",
    "explanation_rsquared_score",
    "explanation_absolute_dev_explained_score",
    "activation_mean",
    "activation_variance",
    "activation_skewness",
    "activation_kurtosis",
)
#: The column the notebook's embedding step fills (UPDATE neurons SET explanation_embedding);
#: optional: without it the import has no vectors and `neuronatlas embed` makes them.
EMBEDDING_COLUMN = "explanation_embedding"
#: The columns the notebook's INSERT INTO activations names.
ACTIVATION_COLUMNS = ("neuron_id", "category", "tokens", "activation_values")

SQLITE_HEADER = b"SQLite format 3\x00"


class SeedLayout(NamedTuple):
    """What an opened seed database holds beyond the required columns."""

    has_embeddings: bool  # `neurons.explanation_embedding` exists


class SeedNeuron(NamedTuple):
    """One row of the seed's `neurons`, values as stored (SQLite's types, not coerced)."""

    rowid: int
    id: object
    layer_index: object
    neuron_index: object
    explanation_text: object
    ev_correlation_score: object
    rsquared_score: object
    absolute_dev_explained_score: object
    mean: object
    variance: object
    skewness: object
    kurtosis: object
    embedded: bool  # its explanation_embedding is not NULL


class SeedRecord(NamedTuple):
    """One row of the seed's `activations`, values as stored."""

    rowid: int
    neuron_id: object
    category: object
    tokens: object
    activation_values: object


def open_seed(path: str | Path) -> tuple[sqlite3.Connection, SeedLayout]:
    """Open a seed-notebook database read-only and check its tables and columns.

    Raises NotASeedDatabase (one line, naming the file and what is missing) for a missing file,
    a file that is not SQLite, an atlas (whose `neurons`/`activations` are views) or a
    database without the notebook's tables and columns."""
    path = Path(path)
    if not path.is_file():
        raise NotASeedDatabase(f"{path}: no such file (give the seed notebook's SQLite database)")
    with path.open("rb") as f:
        if f.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise NotASeedDatabase(f"{path}: not an SQLite database")
    # `mode=ro`: SQLite itself refuses every write, so the source stays byte-identical.
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        layout = _check_layout(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn, layout


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]).lower() for r in conn.execute(f"PRAGMA table_info({table})")}


def _check_layout(conn: sqlite3.Connection, path: Path) -> SeedLayout:
    try:
        kinds = {
            str(name).lower(): str(kind)
            for name, kind in conn.execute(
                "SELECT name, type FROM sqlite_master WHERE lower(name) IN"
                " ('neurons', 'activations', 'neuron_info')"
            )
        }
        if "neuron_info" in kinds and kinds.get("neurons") == "view":
            raise NotASeedDatabase(
                f"{path}: this is already a neuronatlas atlas (its neurons and activations are "
                f"views): open it with --db {path} instead of importing it"
            )
        missing = [f"table {t}" for t in ("neurons", "activations") if kinds.get(t) != "table"]
        have = {t: _columns(conn, t) for t in ("neurons", "activations") if t in kinds}
    except sqlite3.DatabaseError as exc:
        raise NotASeedDatabase(f"{path}: cannot be read as an SQLite database ({exc})") from None
    for table, wanted in (("neurons", NEURON_COLUMNS), ("activations", ACTIVATION_COLUMNS)):
        if table in have:
            missing += [f"{table}.{c}" for c in wanted if c not in have[table]]
    if missing:
        raise NotASeedDatabase(
            f"{path}: not a seed-notebook database: missing {', '.join(missing)} (expected the "
            "notebook's neurons and activations tables)"
        )
    for table in ("neurons", "activations"):
        try:
            conn.execute(f"SELECT rowid FROM {table} LIMIT 0")
        except sqlite3.OperationalError:
            raise NotASeedDatabase(
                f"{path}: {table} is a WITHOUT ROWID table, so the order the notebook inserted "
                "its rows in (OpenAI's record order) is lost; copy it into a plain table first"
            ) from None
    return SeedLayout(has_embeddings=EMBEDDING_COLUMN in have["neurons"])


class SeedCounts(NamedTuple):
    """How much a seed database holds."""

    neurons: int
    embedded: int  # neurons with an explanation_embedding
    records: int


def seed_counts(conn: sqlite3.Connection, layout: SeedLayout) -> SeedCounts:
    embedded = f"count({EMBEDDING_COLUMN})" if layout.has_embeddings else "0"
    n, e = conn.execute(f"SELECT count(*), {embedded} FROM neurons").fetchone()
    (r,) = conn.execute("SELECT count(*) FROM activations").fetchone()
    return SeedCounts(int(n), int(e), int(r))


def seed_neurons(conn: sqlite3.Connection, layout: SeedLayout) -> list[SeedNeuron]:
    """Every row of the seed's `neurons` in insertion order, without the embedding text (read
    later per batch: ~8 KB a neuron)."""
    embedded = f"{EMBEDDING_COLUMN} IS NOT NULL" if layout.has_embeddings else "0"
    rows = conn.execute(
        f"SELECT rowid, {', '.join(NEURON_COLUMNS)}, {embedded} FROM neurons ORDER BY rowid"
    )
    return [SeedNeuron._make((*r[:-1], bool(r[-1]))) for r in rows]


def seed_record_rowids(conn: sqlite3.Connection) -> dict[object, list[int]]:
    """neuron_id → the rowids of its `activations` rows, in insertion order (one scan)."""
    out: dict[object, list[int]] = {}
    for nid, rowid in conn.execute("SELECT neuron_id, rowid FROM activations ORDER BY rowid"):
        out.setdefault(nid, []).append(rowid)
    return out


def _ranges(rowids: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted rowids as inclusive (first, last) runs of consecutive values."""
    out: list[tuple[int, int]] = []
    for r in sorted(rowids):
        if out and r == out[-1][1] + 1:
            out[-1] = (out[-1][0], r)
        else:
            out.append((r, r))
    return out


def _by_rowid(
    conn: sqlite3.Connection, table: str, columns: str, rowids: Sequence[int]
) -> Iterator[tuple[object, ...]]:
    """(rowid, *columns) of these rows, by rowid range scans, in rowid order. Rows between two
    wanted rowids that are not wanted (another neuron's) are dropped."""
    wanted = set(rowids)
    for first, last in _ranges(rowids):
        for row in conn.execute(
            f"SELECT rowid, {columns} FROM {table} WHERE rowid BETWEEN ? AND ? ORDER BY rowid",
            (first, last),
        ):
            if row[0] in wanted:
                yield tuple(row)


def seed_records(conn: sqlite3.Connection, rowids: Sequence[int]) -> Iterator[SeedRecord]:
    """These `activations` rows, in rowid order."""
    for row in _by_rowid(conn, "activations", ", ".join(ACTIVATION_COLUMNS), rowids):
        yield SeedRecord._make(row)


def seed_embeddings(conn: sqlite3.Connection, rowids: Sequence[int]) -> dict[int, object]:
    """rowid → `explanation_embedding` (as stored) of these `neurons` rows."""
    return {
        int(r[0]): r[1]  # type: ignore[call-overload]
        for r in _by_rowid(conn, "neurons", EMBEDDING_COLUMN, rowids)
    }


# -- the atlas side --------------------------------------------------------------------------


def embedded_neurons(conn: sqlite3.Connection, source: str, embedder: str) -> set[str]:
    """Neurons whose first explanation from `source` has a vector from `embedder`."""
    rows = conn.execute(
        "SELECT e.neuron_id FROM explanations e JOIN embeddings b ON b.explanation_id = e.id"
        " WHERE e.source = ? AND e.position = 0 AND b.embedder = ?",
        (source, embedder),
    )
    return {r[0] for r in rows}


def first_explanation_ids(
    conn: sqlite3.Connection, neuron_ids: Sequence[str], source: str
) -> dict[str, int]:
    """neuron id → id of its first explanation from `source` (neurons without one left out)."""
    out: dict[str, int] = {}
    ids = list(neuron_ids)
    for start in range(0, len(ids), 500):  # SQLite caps the number of bound parameters
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for nid, eid in conn.execute(
            "SELECT neuron_id, id FROM explanations"
            f" WHERE source = ? AND position = 0 AND neuron_id IN ({marks})",
            (source, *chunk),
        ):
            out[nid] = eid
    return out
