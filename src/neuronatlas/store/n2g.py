"""SQL of the N2G stage: graphs (tries) and their metrics (tables of migration 003)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import msgspec

from neuronatlas.store.rows import encode_json
from neuronatlas.store.writer import AtlasWriter, now

_decode = msgspec.json.decode


class N2GMetrics(NamedTuple):
    """How well a neuron's graph predicts its held-out records (table `n2g_metrics`; the
    fields are METRIC_COLUMNS, in order): the graph's precision, recall and F1 at firing
    tokens, the token and n-gram baselines', the correlation score and the test sizes."""

    precision: float | None
    recall: float | None
    f1: float | None
    baseline_token_precision: float | None
    baseline_token_recall: float | None
    baseline_token_f1: float | None
    baseline_ngram_precision: float | None
    baseline_ngram_recall: float | None
    baseline_ngram_f1: float | None
    ev_correlation_score: float | None
    n_test_records: int | None
    n_test_tokens: int | None
    n_firing_tokens: int | None


class NeuronMetrics(NamedTuple):
    """A neuron's place and its graph's metrics."""

    neuron_id: str
    layer: int
    neuron: int
    metrics: N2GMetrics


class StoredGraph(msgspec.Struct, frozen=True):
    """A neuron's stored graph: the trie, settings, mask token and stats decoded from JSON."""

    neuron_id: str
    run_id: int | None
    a_max: float
    trie: Any
    settings: Any
    mask_token: Any
    model: str | None
    stats: Any
    created_at: str


class GraphSummary(NamedTuple):
    """A neuron's graph without its trie: its metrics (None when it has none) and its N2G
    explanation."""

    metrics: N2GMetrics | None
    explanation: str | None


#: The columns of `n2g_metrics` after the neuron id, in `N2GMetrics`'s order.
METRIC_COLUMNS: tuple[str, ...] = N2GMetrics._fields


def has_tables(conn: sqlite3.Connection) -> bool:
    """Readers never migrate: an atlas written before migration 003 has no N2G tables."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='n2g_graphs'"
    ).fetchone()
    return row is not None


def write_graph(
    writer: AtlasWriter,
    neuron_id: str,
    *,
    run_id: int | None,
    a_max: float,
    trie: Mapping[str, Any],
    settings: Mapping[str, Any],
    mask_token: Mapping[str, Any],
    model: str | None,
    stats: Mapping[str, Any],
    metrics: Mapping[str, Any],
    explanation: tuple[str, float | None] | None,
) -> None:
    """Replace one neuron's graph, metrics and N2G explanation in one transaction."""
    with writer.transaction() as c:
        c.execute(
            "INSERT OR REPLACE INTO n2g_graphs(neuron_id, run_id, a_max, trie, settings,"
            " mask_token, model, stats, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                neuron_id,
                run_id,
                float(a_max),
                encode_json(trie),
                encode_json(settings),
                encode_json(mask_token),
                model,
                encode_json(stats),
                now(),
            ),
        )
        marks = ", ".join("?" * (len(METRIC_COLUMNS) + 1))
        c.execute(
            f"INSERT OR REPLACE INTO n2g_metrics(neuron_id, {', '.join(METRIC_COLUMNS)})"
            f" VALUES ({marks})",
            (neuron_id, *(metrics.get(k) for k in METRIC_COLUMNS)),
        )
        if explanation is not None:
            text, score = explanation
            writer.write_explanations(neuron_id, "n2g", [(text, score, None, None)])


def graph_ids(conn: sqlite3.Connection) -> set[str]:
    """Neurons that already have a graph (a resumed run skips them)."""
    if not has_tables(conn):
        return set()
    return {r[0] for r in conn.execute("SELECT neuron_id FROM n2g_graphs")}


def read_graph(conn: sqlite3.Connection, neuron_id: str) -> StoredGraph | None:
    """The stored graph of a neuron (trie/settings/mask/stats decoded), or None."""
    if not has_tables(conn):
        return None
    row = conn.execute(
        "SELECT neuron_id, run_id, a_max, trie, settings, mask_token, model, stats, created_at"
        " FROM n2g_graphs WHERE neuron_id = ?",
        (neuron_id,),
    ).fetchone()
    if row is None:
        return None
    return StoredGraph(
        neuron_id=row[0],
        run_id=row[1],
        a_max=row[2],
        trie=_decode(row[3]),
        settings=_decode(row[4]),
        mask_token=_decode(row[5]),
        model=row[6],
        stats=_decode(row[7]),
        created_at=row[8],
    )


def read_summary(conn: sqlite3.Connection, neuron_id: str) -> GraphSummary | None:
    """The metrics and explanation of a neuron's stored graph in one statement, without its
    trie; None when it has no graph. An atlas without the N2G tables raises sqlite3's "no
    such table" (the stage reader turns that into StageNotBuilt)."""
    row = conn.execute(
        f"SELECT m.neuron_id IS NOT NULL, {', '.join('m.' + c for c in METRIC_COLUMNS)},"
        " (SELECT e.text FROM"
        " explanations e WHERE e.neuron_id = g.neuron_id AND e.source = 'n2g'"
        " ORDER BY e.position LIMIT 1) FROM n2g_graphs g"
        " LEFT JOIN n2g_metrics m ON m.neuron_id = g.neuron_id WHERE g.neuron_id = ?",
        (neuron_id,),
    ).fetchone()
    if row is None:
        return None
    return GraphSummary(N2GMetrics._make(row[1:-1]) if row[0] else None, row[-1])


def read_metrics(conn: sqlite3.Connection, neuron_id: str) -> N2GMetrics | None:
    """A neuron's graph metrics (None: no graph, or an atlas without the N2G tables)."""
    if not has_tables(conn):
        return None
    row = conn.execute(
        f"SELECT {', '.join(METRIC_COLUMNS)} FROM n2g_metrics WHERE neuron_id = ?",
        (neuron_id,),
    ).fetchone()
    return None if row is None else N2GMetrics._make(row)


def n2g_explanation(conn: sqlite3.Connection, neuron_id: str) -> str | None:
    row = conn.execute(
        "SELECT text FROM explanations WHERE neuron_id = ? AND source = 'n2g'"
        " ORDER BY position LIMIT 1",
        (neuron_id,),
    ).fetchone()
    return None if row is None else row[0]


def excerpt_tokens(conn: sqlite3.Connection) -> Iterator[str]:
    """Every token string of every stored excerpt (for corpus-counted word casings)."""
    for (tokens,) in conn.execute("SELECT tokens FROM excerpts"):
        yield from _decode(tokens)


def all_metrics(conn: sqlite3.Connection) -> list[NeuronMetrics]:
    """Every neuron's metrics with its layer, in (layer, neuron) order."""
    if not has_tables(conn):
        return []
    rows = conn.execute(
        f"SELECT n.id, n.layer, n.neuron, {', '.join('m.' + c for c in METRIC_COLUMNS)}"
        " FROM n2g_metrics m JOIN neuron_info n ON n.id = m.neuron_id ORDER BY n.layer, n.neuron"
    )
    return [NeuronMetrics(r[0], r[1], r[2], N2GMetrics._make(r[3:])) for r in rows]
