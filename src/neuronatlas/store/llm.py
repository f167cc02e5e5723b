"""SQL of the LLM explainer and the scorers: explanation scores, LLM provenance, the response
cache (tables of sql/007_llm_scores.sql)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from neuronatlas.store.connection import open_writer, transaction
from neuronatlas.store.reader import ScoreRow
from neuronatlas.store.rows import encode_json
from neuronatlas.store.writer import now


class ExplanationText(NamedTuple):
    """An explanation to score: its id, neuron, source and text as stored."""

    id: int
    neuron_id: str
    source: str
    text: str


class Provenance(msgspec.Struct, frozen=True):
    """Where an LLM explanation came from: model, endpoint, prompt digest, the settings and
    the usage the endpoint reported (both as stored, decoded)."""

    model: str
    endpoint: str
    prompt_digest: str
    settings: Any
    usage: Any


class StoredProvenance(msgspec.Struct, frozen=True):
    """`Provenance` with the time it was stored."""

    model: str
    endpoint: str
    prompt_digest: str
    settings: Any
    usage: Any
    created_at: str


def explanations_of(conn: sqlite3.Connection, neuron_ids: Sequence[str]) -> list[ExplanationText]:
    """Every explanation of these neurons, in id order."""
    out: list[ExplanationText] = []
    for start in range(0, len(neuron_ids), 500):
        chunk = list(neuron_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        out.extend(
            ExplanationText._make(r)
            for r in conn.execute(
                "SELECT id, neuron_id, source, text FROM explanations"
                f" WHERE neuron_id IN ({marks}) ORDER BY id",
                chunk,
            )
        )
    return out


def scored_pairs(conn: sqlite3.Connection, scorer: str, judge: str) -> set[int]:
    """Ids of explanations that already have a score from this scorer and judge."""
    rows = conn.execute(
        "SELECT explanation_id FROM explanation_scores WHERE scorer = ? AND judge = ?",
        (scorer, judge),
    )
    return {r[0] for r in rows}


def write_scores(conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> int:
    """Store (explanation id, scorer, judge, score, details dict, run id) rows, replacing
    earlier scores by the same scorer and judge."""
    created = now()
    batch = [(eid, s, j, float(v), encode_json(d), run, created) for eid, s, j, v, d, run in rows]
    with transaction(conn):
        conn.executemany(
            "INSERT OR REPLACE INTO explanation_scores(explanation_id, scorer, judge, score,"
            " details, run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            batch,
        )
    return len(batch)


def write_llm_explanation(
    conn: sqlite3.Connection,
    neuron_id: str,
    source: str,
    text: str,
    provenance: Provenance,
    run_id: int | None,
) -> int:
    """Replace the neuron's explanation from `source` with `text` and record where it came
    from (model, endpoint, prompt digest, settings, usage); returns the explanation id."""
    created = now()
    with transaction(conn):
        conn.execute(
            "INSERT INTO explanations(neuron_id, source, position, text, created_at)"
            " VALUES (?, ?, 0, ?, ?) ON CONFLICT(neuron_id, source, position) DO UPDATE SET"
            " text = excluded.text, ev_correlation_score = NULL, rsquared_score = NULL,"
            " absolute_dev_explained_score = NULL",
            (neuron_id, source, text, created),
        )
        conn.execute(
            "DELETE FROM explanations WHERE neuron_id = ? AND source = ? AND position > 0",
            (neuron_id, source),
        )
        eid = conn.execute(
            "SELECT id FROM explanations WHERE neuron_id = ? AND source = ? AND position = 0",
            (neuron_id, source),
        ).fetchone()[0]
        conn.execute(
            "INSERT OR REPLACE INTO llm_explanations(explanation_id, model, endpoint,"
            " prompt_digest, settings, usage, run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                eid,
                provenance.model,
                provenance.endpoint,
                provenance.prompt_digest,
                encode_json(provenance.settings),
                encode_json(provenance.usage),
                run_id,
                created,
            ),
        )
    return int(eid)


def llm_provenance(conn: sqlite3.Connection, explanation_id: int) -> StoredProvenance | None:
    """Where an LLM explanation came from, or None for other sources."""
    row = conn.execute(
        "SELECT model, endpoint, prompt_digest, settings, usage, created_at FROM llm_explanations"
        " WHERE explanation_id = ?",
        (explanation_id,),
    ).fetchone()
    if row is None:
        return None
    return StoredProvenance(
        model=row[0],
        endpoint=row[1],
        prompt_digest=row[2],
        settings=msgspec.json.decode(row[3]),
        usage=msgspec.json.decode(row[4]),
        created_at=row[5],
    )


def atlas_embedder(conn: sqlite3.Connection) -> str | None:
    """The embedder the atlas's explanations were embedded with (None before `embed`)."""
    row = conn.execute("SELECT embedder FROM embeddings LIMIT 1").fetchone()
    return None if row is None else row[0]


def score_table(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """(neuron_id, source, scorer, judge, score) of every stored score, for summaries."""
    return conn.execute(
        "SELECT e.neuron_id, e.source, s.scorer, s.judge, s.score FROM explanation_scores s"
        " JOIN explanations e ON e.id = s.explanation_id ORDER BY e.neuron_id, e.source"
    ).fetchall()


class ResponseCache:
    """LLM answers stored in the atlas by request digest, shared by the client's threads.

    Its own connection (one lock around it), so worker threads may read and write while the
    main thread writes results through another connection (WAL allows both).
    """

    def __init__(self, db: str | Path):
        self._conn = open_writer(db, create=False)  # an atlas to explain, not a new one
        self._conn.close()  # migrations applied; reopen shareable across threads
        self._conn = sqlite3.connect(
            Path(db), isolation_level=None, timeout=60.0, check_same_thread=False
        )
        self._conn.execute("PRAGMA busy_timeout=60000")
        self._lock = threading.Lock()

    def get(self, digest: str) -> bytes | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT response FROM llm_cache WHERE digest = ?", (digest,)
            ).fetchone()
        return None if row is None else row[0].encode("utf-8")

    def put(self, digest: str, model: str, response: bytes) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO llm_cache(digest, model, response, created_at)"
                " VALUES (?, ?, ?, ?)",
                (digest, model, response.decode("utf-8"), now()),
            )

    def delete(self, digest: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM llm_cache WHERE digest = ?", (digest,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# -- what an OpenAI export carries beside OpenAI's files (openai/extras.py) ------------------

ExplanationKey = tuple[str, str, int]  # (neuron_id, source, position)


def scores_by_explanation(conn: sqlite3.Connection) -> dict[ExplanationKey, list[ScoreRow]]:
    """Every stored score, keyed by its explanation's (neuron id, source, position): the
    key an export and a re-import share (ids are not)."""
    out: dict[ExplanationKey, list[ScoreRow]] = {}
    for nid, source, pos, scorer, judge, score, details in conn.execute(
        "SELECT e.neuron_id, e.source, e.position, s.scorer, s.judge, s.score, s.details"
        " FROM explanation_scores s JOIN explanations e ON e.id = s.explanation_id"
        " ORDER BY e.neuron_id, e.source, e.position, s.scorer, s.judge"
    ):
        out.setdefault((nid, source, pos), []).append(
            ScoreRow(scorer, judge, score, msgspec.json.decode(details))
        )
    return out


def provenance_by_explanation(conn: sqlite3.Connection) -> dict[ExplanationKey, Provenance]:
    """Where every LLM explanation came from, keyed by (neuron id, source, position)."""
    return {
        (r[0], r[1], r[2]): Provenance(
            model=r[3],
            endpoint=r[4],
            prompt_digest=r[5],
            settings=msgspec.json.decode(r[6]),
            usage=msgspec.json.decode(r[7]),
        )
        for r in conn.execute(
            "SELECT e.neuron_id, e.source, e.position, l.model, l.endpoint, l.prompt_digest,"
            " l.settings, l.usage FROM llm_explanations l JOIN explanations e"
            " ON e.id = l.explanation_id"
        )
    }


def explanation_ids(conn: sqlite3.Connection, neuron_id: str) -> dict[tuple[str, int], int]:
    """(source, position) → explanation id for one neuron."""
    return {
        (r[0], r[1]): r[2]
        for r in conn.execute(
            "SELECT source, position, id FROM explanations WHERE neuron_id = ?", (neuron_id,)
        )
    }


def write_provenance(
    conn: sqlite3.Connection, explanation_id: int, provenance: Provenance, run_id: int | None
) -> None:
    """Record (or replace) where an existing LLM explanation came from (an import of an
    export that carried it)."""
    with transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO llm_explanations(explanation_id, model, endpoint,"
            " prompt_digest, settings, usage, run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                explanation_id,
                provenance.model,
                provenance.endpoint,
                provenance.prompt_digest,
                encode_json(provenance.settings),
                encode_json(provenance.usage),
                run_id,
                now(),
            ),
        )
