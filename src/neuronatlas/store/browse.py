"""Bounded reads for the explorer (`neuronatlas.read`): time limits, row caps, navigation,
summaries, and the similar neurons precomputed at build time (migration 009).

Every read the web layer makes runs under `time_limit` (an SQLite progress handler that
interrupts a statement past its deadline) and returns at most a capped number of rows, saying
when it truncated. That keeps one slow or huge request from stalling a shared server.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import msgspec

from neuronatlas.errors import NeuronNotFound, QueryTimeout
from neuronatlas.ids import canonical, parse_id
from neuronatlas.store.connection import transaction
from neuronatlas.store.reader import SOURCE_RANK, stored_range
from neuronatlas.store.writer import now


class NeuronBrief(msgspec.Struct, frozen=True):
    """A neuron as a list shows it: its place and one explanation (the primary one, or the
    one a search matched; None when it has none) with that explanation's score."""

    id: str
    layer: int
    neuron: int
    explanation: str | None
    score: float | None


class SimilarRow(msgspec.Struct, frozen=True):
    """A neuron found by substring search (similarity None) or precomputed as similar to
    another: `NeuronBrief`'s fields, the similarity, and the shared tokens (by tokens only)."""

    id: str
    layer: int
    neuron: int
    explanation: str | None
    score: float | None
    similarity: float | None
    shared_tokens: list[str] | None = None


# SQLite calls the progress handler every this many virtual-machine instructions: often enough
# to stop within a millisecond or so, rarely enough to cost nothing measurable.
_PROGRESS_STEPS = 2_000

# The order in which a neuron's explanations are shown (same as the `primary_explanations` view).
_SOURCE_RANK = SOURCE_RANK.format(t="")


@contextmanager
def time_limit(conn: sqlite3.Connection, seconds: float) -> Iterator[sqlite3.Connection]:
    """Interrupt any statement on `conn` still running `seconds` from now.

    Raises QueryTimeout (instead of SQLite's bare "interrupted") so callers can answer with a
    clear message rather than a server error.
    """
    deadline = time.monotonic() + seconds
    conn.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)
    try:
        yield conn
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise QueryTimeout(f"the query took longer than {seconds:g} s and was stopped") from exc
        raise
    finally:
        conn.set_progress_handler(None, 0)


def tune_reader(conn: sqlite3.Connection, cache_mib: int = 16) -> None:
    """Give a long-lived server connection a bigger page cache than SQLite's 2 MiB default."""
    conn.execute(f"PRAGMA cache_size=-{int(cache_mib) * 1024}")


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many neurons, layers, explanations and embeddings the atlas holds."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM neuron_info),"
        " (SELECT count(DISTINCT layer) FROM neuron_info),"
        " (SELECT count(*) FROM explanations),"
        " (SELECT count(*) FROM embeddings)"
    ).fetchone()
    return {"neurons": row[0], "layers": row[1], "explanations": row[2], "embeddings": row[3]}


def has_embeddings(conn: sqlite3.Connection) -> bool:
    """Whether any explanation has an embedding (semantic search and the map need them)."""
    return conn.execute("SELECT 1 FROM embeddings LIMIT 1").fetchone() is not None


def has_map(conn: sqlite3.Connection) -> bool:
    """Whether `neuronatlas map` stored points (an atlas from before the map has no table)."""
    try:
        return conn.execute("SELECT 1 FROM map_points LIMIT 1").fetchone() is not None
    except sqlite3.OperationalError:
        return False


def finished_stages(conn: sqlite3.Connection) -> list[str]:
    """Stages with at least one finished run ('done' or 'partial'), e.g. ['embed', 'map']."""
    rows = conn.execute(
        "SELECT DISTINCT stage FROM runs WHERE status IN ('done', 'partial') ORDER BY stage"
    )
    return [r[0] for r in rows]


def require_neuron(conn: sqlite3.Connection, neuron_id: str) -> str:
    """The canonical id if the neuron is stored; BadNeuronId / NeuronNotFound otherwise."""
    nid = canonical(neuron_id)
    if conn.execute("SELECT 1 FROM neuron_info WHERE id = ?", (nid,)).fetchone() is None:
        raise NeuronNotFound(f"{nid} is not in this atlas, which holds {stored_range(conn)}")
    return nid


def record_counts(conn: sqlite3.Connection, neuron_id: str) -> dict[str, int]:
    """Number of stored records per category, to tell a capped read that it truncated."""
    rows = conn.execute(
        "SELECT category, count(*) FROM records WHERE neuron_id = ? GROUP BY category",
        (neuron_id,),
    )
    return {r[0]: r[1] for r in rows}


def neighbour(conn: sqlite3.Connection, neuron_id: str, step: int) -> str:
    """The stored neuron after (step=+1) or before (step=-1) this one, wrapping around.

    Uses the (layer, neuron) unique index, so it is one index seek at any atlas size.
    """
    layer, neuron = parse_id(neuron_id)
    if step >= 0:
        sql_next = (
            "SELECT id FROM neuron_info WHERE (layer, neuron) > (?, ?)"
            " ORDER BY layer, neuron LIMIT 1"
        )
        sql_wrap = "SELECT id FROM neuron_info ORDER BY layer, neuron LIMIT 1"
    else:
        sql_next = (
            "SELECT id FROM neuron_info WHERE (layer, neuron) < (?, ?)"
            " ORDER BY layer DESC, neuron DESC LIMIT 1"
        )
        sql_wrap = "SELECT id FROM neuron_info ORDER BY layer DESC, neuron DESC LIMIT 1"
    row = conn.execute(sql_next, (layer, neuron)).fetchone()
    if row is None:
        row = conn.execute(sql_wrap).fetchone()
    if row is None:
        raise NeuronNotFound("this atlas holds no neurons")
    return str(row[0])


def random_neuron(conn: sqlite3.Connection, rng: random.Random | None = None) -> str:
    """A uniformly random stored neuron: a random layer weighted by size, then an index seek."""
    rng = rng or random.Random()
    sizes = conn.execute("SELECT layer, count(*) FROM neuron_info GROUP BY layer").fetchall()
    total = sum(s for _, s in sizes)
    if total == 0:
        raise NeuronNotFound("this atlas holds no neurons")
    pick = rng.randrange(total)
    for layer, size in sizes:
        if pick < size:
            row = conn.execute(
                "SELECT id FROM neuron_info WHERE layer = ? ORDER BY neuron LIMIT 1 OFFSET ?",
                (layer, pick),
            ).fetchone()
            return str(row[0])
        pick -= size
    raise AssertionError("unreachable: pick is below the total")


def summaries(conn: sqlite3.Connection, neuron_ids: list[str]) -> dict[str, NeuronBrief]:
    """id → the stored ones with their primary explanation.

    One index seek per id; callers keep the list short (a page of results, a live run).
    """
    out: dict[str, NeuronBrief] = {}
    for nid in dict.fromkeys(neuron_ids):
        row = conn.execute(
            "SELECT n.id, n.layer, n.neuron, e.text, e.ev_correlation_score FROM neuron_info n"
            " LEFT JOIN primary_explanations e ON e.neuron_id = n.id WHERE n.id = ?",
            (nid,),
        ).fetchone()
        if row is not None:
            out[nid] = NeuronBrief(
                row[0], row[1], row[2], None if row[3] is None else row[3].strip(), row[4]
            )
    return out


class GridPoint(NamedTuple):
    """A neuron on the stand-in map: its place and primary explanation."""

    layer: int
    neuron: int
    explanation: str


def grid_points(conn: sqlite3.Connection, limit: int) -> tuple[list[GridPoint], bool]:
    """(layer, neuron, primary explanation) of up to `limit` neurons, and whether it truncated.

    The map's stand-in before `neuronatlas map` ran: neurons laid out by (layer, neuron).
    One grouped pass over explanations picks each neuron's primary one (SQLite returns the
    row holding the min() for bare columns).
    """
    texts = {
        r[0]: r[1]
        for r in conn.execute(
            f"SELECT neuron_id, text, min(({_SOURCE_RANK}) * 1000000 + position)"
            " FROM explanations GROUP BY neuron_id"
        )
    }
    rows = conn.execute(
        "SELECT id, layer, neuron FROM neuron_info ORDER BY layer, neuron LIMIT ?", (limit + 1,)
    ).fetchall()
    truncated = len(rows) > limit
    points = [GridPoint(r[1], r[2], (texts.get(r[0]) or "").strip()) for r in rows[:limit]]
    return points, truncated


def explanation_substring(conn: sqlite3.Connection, query: str, k: int) -> list[SimilarRow]:
    """Neurons whose explanation contains `query` (case-insensitive), best scored first.

    Works on every atlas with explanations, with no index to build; a plain scan bounded by
    the caller's time limit. Results have the search shape (similarity is None).
    """
    pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = conn.execute(
        "SELECT neuron_id, text, ev_correlation_score FROM explanations"
        " WHERE text LIKE ? ESCAPE '\\' ORDER BY ev_correlation_score IS NULL,"
        " ev_correlation_score DESC LIMIT ?",
        (pattern, k * 4),
    )
    out: list[SimilarRow] = []
    seen: set[str] = set()
    for nid, text, score in rows:
        if nid in seen:
            continue
        seen.add(nid)
        layer, neuron = parse_id(nid)
        out.append(SimilarRow(nid, layer, neuron, text.strip(), score, None))
        if len(out) >= k:
            break
    return out


# -- similar neurons, precomputed (migration 009) --------------------------------------------

SIMILAR_KINDS = ("embedding", "tokens")


def similar_built(conn: sqlite3.Connection) -> dict[str, int]:
    """kind → k of the precomputed similar neurons this atlas holds ({} when none)."""
    try:
        rows = conn.execute("SELECT kind, k FROM similar_state").fetchall()
    except sqlite3.OperationalError:  # an atlas from before migration 009
        return {}
    return {r[0]: r[1] for r in rows}


def stored_similar(
    conn: sqlite3.Connection, neuron_id: str, k: int, kinds: Iterable[str]
) -> dict[str, list[SimilarRow]]:
    """kind → up to k rows (shared_tokens by tokens only) precomputed for this neuron, for
    each of `kinds` (ones `similar_built` lists with at least k). One primary-key range
    read and one join."""
    wanted = list(kinds)
    out: dict[str, list[SimilarRow]] = {kind: [] for kind in wanted}
    if not wanted:
        return out
    marks = ",".join("?" * len(wanted))
    rows = conn.execute(
        "SELECT s.kind, s.other_id, n.layer, n.neuron, e.text, e.ev_correlation_score,"
        " s.similarity, s.shared_tokens FROM similar_neurons s"
        " JOIN neuron_info n ON n.id = s.other_id"
        " LEFT JOIN primary_explanations e ON e.neuron_id = s.other_id"
        f" WHERE s.neuron_id = ? AND s.kind IN ({marks}) AND s.rank < ? ORDER BY s.kind, s.rank",
        (neuron_id, *wanted, k),
    )
    for kind, nid, layer, neuron, text, score, sim, shared in rows:
        out[kind].append(
            SimilarRow(
                nid,
                layer,
                neuron,
                None if text is None else text.strip(),
                score,
                sim,
                None if shared is None else msgspec.json.decode(shared),
            )
        )
    return out


def write_similar(
    conn: sqlite3.Connection,
    kind: str,
    k: int,
    rows: Iterable[tuple[str, int, str, float, list[str] | None]],
) -> int:
    """Replace the precomputed neighbours of one kind: (neuron id, rank, other id, similarity,
    shared tokens or None), in one transaction; returns the number of rows written."""
    if kind not in SIMILAR_KINDS:
        raise ValueError(f"{kind!r}: expected one of {SIMILAR_KINDS}")
    n = 0
    with transaction(conn):
        conn.execute("DELETE FROM similar_neurons WHERE kind = ?", (kind,))
        conn.execute("DELETE FROM similar_state WHERE kind = ?", (kind,))
        batch: list[tuple[object, ...]] = []
        for nid, rank, other, sim, shared in rows:
            enc = None if shared is None else msgspec.json.encode(shared).decode()
            batch.append((nid, kind, rank, other, sim, enc))
            if len(batch) >= 10_000:
                conn.executemany("INSERT INTO similar_neurons VALUES (?, ?, ?, ?, ?, ?)", batch)
                n += len(batch)
                batch = []
        conn.executemany("INSERT INTO similar_neurons VALUES (?, ?, ?, ?, ?, ?)", batch)
        n += len(batch)
        conn.execute(
            "INSERT INTO similar_state(kind, k, created_at) VALUES (?, ?, ?)", (kind, k, now())
        )
    return n


def forget_similar(conn: sqlite3.Connection, kind: str) -> None:
    """Drop the precomputed neighbours of one kind (their inputs changed): pages compute them
    per request until they are precomputed again. `write_similar` writes the rows and their
    `similar_state` row in one transaction, so without that row there is nothing to delete:
    callers that forget once per chunk (`embed`) then pay a primary-key read, not a scan of
    every other kind's rows."""
    if kind not in similar_built(conn):
        return
    try:
        with transaction(conn):
            conn.execute("DELETE FROM similar_neurons WHERE kind = ?", (kind,))
            conn.execute("DELETE FROM similar_state WHERE kind = ?", (kind,))
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
