"""The single writer of an atlas: batched, transactional, idempotent.

Every write of a neuron replaces what was stored for it, inside one transaction per batch, so
re-running a stage gives the same database and a killed run loses only its last batch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any, Self

import msgspec

from neuronatlas.store.connection import open_writer, transaction
from neuronatlas.store.rows import PreparedBlock, PreparedNeuron, encode_json
from neuronatlas.version import __version__


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class AtlasWriter:
    """Writes one atlas file. Use as a context manager; one per database at a time."""

    def __init__(self, path: str | Path, *, create: bool = True):
        self.path = Path(path)
        self.conn: sqlite3.Connection = open_writer(self.path, create=create)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    # -- metadata and provenance ------------------------------------------------------------

    def set_meta(self, items: Mapping[str, object]) -> None:
        """Store atlas-wide facts; non-string values are JSON-encoded."""
        rows = [(k, v if isinstance(v, str) else encode_json(v)) for k, v in items.items()]
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                rows,
            )

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    def begin_run(self, stage: str, config: object) -> int:
        """Record that a stage started with these settings; returns the run id."""
        cfg = msgspec.json.encode(config).decode() if not isinstance(config, str) else config
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO runs(stage, config, code_version, started_at) VALUES (?, ?, ?, ?)",
                (stage, cfg, __version__, now()),
            )
        run_id = cur.lastrowid
        if run_id is None:  # an INSERT sets it; None would mean SQLite changed its contract
            raise RuntimeError("SQLite returned no id for the new run")
        return run_id

    def end_run(self, run_id: int, status: str = "done") -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE runs SET finished_at = ?, status = ? WHERE id = ?",
                (now(), status, run_id),
            )

    # -- neurons ----------------------------------------------------------------------------

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One transaction around several writes (joins an open one)."""
        return transaction(self.conn)

    def done_neurons(self, source: str | None = None) -> set[str]:
        """Ids of neurons whose records are stored (optionally from one source)."""
        if source is None:
            rows = self.conn.execute("SELECT id FROM neuron_info")
        else:
            rows = self.conn.execute("SELECT id FROM neuron_info WHERE source = ?", (source,))
        return {r[0] for r in rows}

    def write_neurons(self, batch: Iterable[PreparedNeuron]) -> int:
        """Replace the stored data of every neuron in `batch`, in one transaction.

        One statement per table for the whole batch (not per neuron): the SQL work is the
        same, the Python overhead per neuron is not.
        """
        latest = {p.neuron_id: p for p in batch}  # a neuron given twice: the last one wins
        todo = list(latest.values())
        with self.transaction():
            self._replace_neurons(
                list(latest),
                chain.from_iterable(p.excerpts for p in todo),
                chain.from_iterable(p.records for p in todo),
                [p.info for p in todo],
            )
            by_source: dict[str, list[PreparedNeuron]] = {}
            for p in todo:
                if p.explanations is not None:
                    by_source.setdefault(p.explanation_source, []).append(p)
            for source, group in by_source.items():
                self._replace_explanations(
                    source, {p.neuron_id: p.explanations or [] for p in group}
                )
        return len(todo)

    def write_block(self, block: PreparedBlock, excerpts: Iterable[tuple[int, str]]) -> int:
        """Replace the stored records of every neuron of a prepared block, in one transaction;
        `excerpts`: (digest, tokens JSON) of the block's excerpts not written before, in the
        order the records first name them (the order `write_neurons` inserts them in).

        A scrape's path: the same statements as `write_neurons`, without per-neuron objects.
        """
        if len(set(block.neuron_ids)) != len(block.neuron_ids):
            raise ValueError("a prepared block names a neuron twice")
        with self.transaction():
            self._replace_neurons(block.neuron_ids, excerpts, block.records, block.info)
        return len(block.neuron_ids)

    def _replace_neurons(
        self,
        neuron_ids: list[str],
        excerpts: Iterable[tuple[int, str]],
        records: Iterable[tuple[Any, ...]],
        info: list[tuple[Any, ...]],
    ) -> None:
        """Delete the neurons' records, then insert excerpts (kept when present), records and
        `neuron_info` rows: one statement per table for the whole batch."""
        c = self.conn
        c.executemany("DELETE FROM records WHERE neuron_id = ?", [(n,) for n in neuron_ids])
        c.executemany("INSERT OR IGNORE INTO excerpts(digest, tokens) VALUES (?, ?)", excerpts)
        c.executemany(
            "INSERT INTO records(neuron_id, category, rank, excerpt_digest,"
            " activation_values, values_f32, max_activation, peak_index)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            records,
        )
        c.executemany(
            "INSERT OR REPLACE INTO neuron_info(id, layer, neuron, mean, variance, skewness,"
            " kurtosis, max_activation, quantile_boundaries, source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            info,
        )

    def write_explanations(self, neuron_id: str, source: str, rows: list[tuple[Any, ...]]) -> None:
        """Replace one neuron's explanations from `source`.

        rows: (text, ev_correlation_score, rsquared_score, absolute_dev_explained_score).
        """
        full = [(neuron_id, source, pos, *r) for pos, r in enumerate(rows)]
        with self.transaction():
            self._replace_explanations(source, {neuron_id: full})

    def replace_all_explanations(
        self, neuron_id: str, by_source: Mapping[str, list[tuple[Any, ...]]]
    ) -> None:
        """Make `by_source` the neuron's only explanations (an import that knows every
        source, e.g. of a neuronatlas export). rows per source, in position order:
        (text, ev_correlation_score, rsquared_score, absolute_dev_explained_score)."""
        with self.transaction():
            keep = sorted(by_source)
            marks = ",".join("?" * len(keep))
            self.conn.execute(
                f"DELETE FROM explanations WHERE neuron_id = ? AND source NOT IN ({marks})",
                (neuron_id, *keep),
            )
            for source in keep:
                full = [(neuron_id, source, pos, *r) for pos, r in enumerate(by_source[source])]
                self._replace_explanations(source, {neuron_id: full})

    def _replace_explanations(self, source: str, rows: Mapping[str, list[tuple[Any, ...]]]) -> None:
        """rows: neuron id → its full explanation rows from `source`, in position order."""
        # Upsert keeps each explanation's id (and so its embedding) when the text is unchanged.
        created = now()
        self.conn.executemany(
            "INSERT INTO explanations(neuron_id, source, position, text, ev_correlation_score,"
            " rsquared_score, absolute_dev_explained_score, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(neuron_id, source, position) DO UPDATE SET"
            " text = excluded.text, ev_correlation_score = excluded.ev_correlation_score,"
            " rsquared_score = excluded.rsquared_score,"
            " absolute_dev_explained_score = excluded.absolute_dev_explained_score",
            [(*r, created) for group in rows.values() for r in group],
        )
        self.conn.executemany(
            "DELETE FROM explanations WHERE neuron_id = ? AND source = ? AND position >= ?",
            [(nid, source, len(group)) for nid, group in rows.items()],
        )

    def vacuum_excerpts(self) -> int:
        """Delete excerpts no record points to (left over when neurons were re-written)."""
        with self.transaction():
            cur = self.conn.execute(
                "DELETE FROM excerpts WHERE digest NOT IN (SELECT excerpt_digest FROM records)"
            )
        return cur.rowcount
