"""Reads of an atlas, read-only. Every function takes an open reader connection.

Returned values are typed rows: frozen msgspec Structs (JSON-ready, their fields in the order
they are encoded; `msgspec.convert(..., from_attributes=True)` turns them into the read model)
and NamedTuples for flat bulk scans. The CLI, the web layer and the Python API all show the
same thing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import msgspec

from neuronatlas.errors import BadInput, NeuronNotFound
from neuronatlas.ids import canonical, parse_id
from neuronatlas.store import values

_decode = msgspec.json.decode

#: The order of explanation sources, primary first: OpenAI's, an LLM's ('llm:<model>'), N2G's,
#: then top tokens (the same order as the `primary_explanations` view).
SOURCE_RANK = (
    "CASE WHEN {t}source = 'openai' THEN 0 WHEN {t}source LIKE 'llm%' THEN 1"
    " WHEN {t}source = 'n2g' THEN 2 ELSE 3 END"
)


class ScoreRow(msgspec.Struct, frozen=True):
    """One scorer's stored score of an explanation (`details` as the scorer wrote it)."""

    scorer: str
    judge: str
    score: float
    details: Any


class StoredExplanation(msgspec.Struct, frozen=True):
    """One explanation of a neuron: `text` stripped, `raw_text` as stored, OpenAI's three
    simulation scores and every stored scorer's score."""

    id: int
    source: str
    position: int
    text: str
    raw_text: str
    ev_correlation_score: float | None
    rsquared_score: float | None
    absolute_dev_explained_score: float | None
    scores: list[ScoreRow]


class StoredRecord(msgspec.Struct, frozen=True):
    """One stored excerpt with the neuron's activation on each token (None = NaN)."""

    tokens: list[str]
    activations: list[float | None]
    max_activation: float | None
    peak_index: int | None


class NeuronStats(msgspec.Struct, frozen=True):
    """A neuron's activation statistics over the scraped corpus (None where unknown)."""

    mean: float | None
    variance: float | None
    skewness: float | None
    kurtosis: float | None
    max_activation: float | None
    quantile_boundaries: list[float | None] | None


class NeuronHead(msgspec.Struct, frozen=True):
    """One neuron's id, place, statistics, source and explanations (no records)."""

    id: str
    layer: int
    neuron: int
    stats: NeuronStats
    source: str
    explanations: list[StoredExplanation]


class StoredNeuron(msgspec.Struct, frozen=True):
    """Everything about one neuron: `NeuronHead`'s fields and its records by category."""

    id: str
    layer: int
    neuron: int
    stats: NeuronStats
    source: str
    explanations: list[StoredExplanation]
    records: dict[str, list[StoredRecord]]


class NeuronInfoRow(NamedTuple):
    """One neuron's stored statistics, as an exporter reads them."""

    id: str
    layer: int
    neuron: int
    mean: float | None
    variance: float | None
    skewness: float | None
    kurtosis: float | None
    quantile_boundaries: list[float | None] | None
    source: str


class RunRow(msgspec.Struct, frozen=True):
    """One run of a stage (table `runs`): its id, decoded config, status and times."""

    id: int
    config: Any
    status: str
    started_at: str
    finished_at: str | None


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """Whether the atlas has this table (older atlases, opened read-only, may lack one)."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def primary_order(
    conn: sqlite3.Connection, table: str = "explanations", scored: bool | None = None
) -> str:
    """ORDER BY terms that put a neuron's primary explanation first: the best score of the
    ranking scorer (meta 'primary_scorer', default 'embedding') when the atlas has scores,
    then the source order and position (see sql/007_llm_scores.sql). scored: whether the
    atlas has the scores table (None: look)."""
    t = f"{table}."
    base = f"{SOURCE_RANK.format(t=t)}, {t}position"
    if scored is None:
        scored = has_table(conn, "explanation_scores")
    if not scored:
        return base
    best = (
        f"(SELECT max(s.score) FROM explanation_scores s WHERE s.explanation_id = {t}id"
        " AND s.scorer = coalesce((SELECT value FROM meta WHERE key = 'primary_scorer'),"
        " 'embedding'))"
    )
    return f"{best} IS NULL, {best} DESC, {base}"


def meta(conn: sqlite3.Connection) -> dict[str, str]:
    return {r[0]: r[1] for r in conn.execute("SELECT key, value FROM meta")}


def neuron_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM neuron_info").fetchone()[0])


def neuron_ids(conn: sqlite3.Connection, layer: int | None = None) -> list[str]:
    """Ids of the stored neurons, in (layer, neuron) order."""
    if layer is None:
        rows = conn.execute("SELECT id FROM neuron_info ORDER BY layer, neuron")
    else:
        rows = conn.execute("SELECT id FROM neuron_info WHERE layer = ? ORDER BY neuron", (layer,))
    return [r[0] for r in rows]


def select_neurons(
    conn: sqlite3.Connection, neurons: Sequence[str] | None, layer: int | None, all_: bool
) -> list[str]:
    """The neurons asked for, canonical, in (layer, neuron) order."""
    if neurons:
        ids = [canonical(n) for n in neurons]
        if layer is not None:
            ids = [i for i in ids if parse_id(i)[0] == layer]
    elif layer is not None:
        ids = neuron_ids(conn, layer)
        if not ids:
            raise BadInput(
                f"--layer {layer}: no stored neurons in that layer; this atlas holds "
                f"{stored_range(conn)}"
            )
    elif all_:
        ids = neuron_ids(conn)
    else:
        raise BadInput("say which neurons: --neurons ID,ID,..., --layer L or --all")
    return sorted(set(ids), key=parse_id)


def stored_range(conn: sqlite3.Connection) -> str:
    """What the atlas holds, for an error about an id or layer outside it: "layers 0–11,
    neurons 0–3071 (36,864 stored)" (one GROUP BY over neuron_info: the error path only)."""
    rows = conn.execute(
        "SELECT layer, min(neuron), max(neuron), count(*) FROM neuron_info GROUP BY layer"
    ).fetchall()
    if not rows:
        return "no neurons"
    layer_ids = [r[0] for r in rows]
    lo, hi = min(r[1] for r in rows), max(r[2] for r in rows)
    return f"layers {_span(layer_ids)}, neurons {lo}–{hi} ({sum(r[3] for r in rows):,} stored)"


def _span(values: list[int]) -> str:
    """0–11, or 0, 3, 5 when the layers stored are not contiguous."""
    values = sorted(values)
    if values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}–{values[-1]}" if len(values) > 1 else str(values[0])
    return ", ".join(map(str, values))


def layers(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    """(layer, number of stored neurons) for every layer."""
    return [
        (r[0], r[1])
        for r in conn.execute("SELECT layer, count(*) FROM neuron_info GROUP BY layer ORDER BY 1")
    ]


def explanations(conn: sqlite3.Connection, neuron_id: str) -> list[StoredExplanation]:
    """All explanations of a neuron, the primary one first.

    Asked as if the atlas had scores; an older one without the scores table answers "no such
    table" and is asked again without them (no table probe on every page view)."""
    try:
        rows = _explanation_rows(conn, neuron_id, scored=True)
        scores = _scores_of(conn, [r[0] for r in rows])
    except sqlite3.OperationalError as exc:
        if "no such table: explanation_scores" not in str(exc):
            raise
        rows, scores = _explanation_rows(conn, neuron_id, scored=False), {}
    return [
        StoredExplanation(
            id=r[0],
            source=r[1],
            position=r[2],
            text=r[3].strip(),
            raw_text=r[3],
            ev_correlation_score=r[4],
            rsquared_score=r[5],
            absolute_dev_explained_score=r[6],
            scores=scores.get(r[0], []),
        )
        for r in rows
    ]


def _explanation_rows(
    conn: sqlite3.Connection, neuron_id: str, scored: bool
) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT id, source, position, text, ev_correlation_score, rsquared_score,"
        f" absolute_dev_explained_score FROM explanations WHERE neuron_id = ?"
        f" ORDER BY {primary_order(conn, scored=scored)}",
        (neuron_id,),
    ).fetchall()


def _scores_of(conn: sqlite3.Connection, explanation_ids: list[int]) -> dict[int, list[ScoreRow]]:
    """explanation id → its scores, by scorer name. An atlas without the scores table
    raises "no such table" (`explanations` falls back)."""
    if not explanation_ids:
        return {}
    marks = ",".join("?" * len(explanation_ids))
    out: dict[int, list[ScoreRow]] = {}
    for eid, scorer, judge, score, details in conn.execute(
        "SELECT explanation_id, scorer, judge, score, details FROM explanation_scores"
        f" WHERE explanation_id IN ({marks}) ORDER BY scorer, judge",
        explanation_ids,
    ):
        out.setdefault(eid, []).append(ScoreRow(scorer, judge, score, _decode(details)))
    return out


def records(
    conn: sqlite3.Connection,
    neuron_id: str,
    categories: Iterable[str] | None = None,
    limit_per_category: int | None = None,
) -> dict[str, list[StoredRecord]]:
    """A neuron's records by category, in rank order."""
    out: dict[str, list[StoredRecord]] = {}
    rows = conn.execute(
        "SELECT r.category, r.rank, x.tokens, r.activation_values, r.values_f32,"
        " r.max_activation, r.peak_index FROM records r"
        " JOIN excerpts x ON x.digest = r.excerpt_digest"
        " WHERE r.neuron_id = ? ORDER BY r.category, r.rank",
        (neuron_id,),
    )
    wanted = None if categories is None else set(categories)
    for cat, _rank, tokens, text, f32, top, where in rows:
        if wanted is not None and cat not in wanted:
            continue
        bucket = out.setdefault(cat, [])
        if limit_per_category is not None and len(bucket) >= limit_per_category:
            continue
        bucket.append(StoredRecord(_decode(tokens), values.decode(text, f32), top, where))
    return out


def iter_records(
    conn: sqlite3.Connection, neuron_ids: Iterable[str], categories: Iterable[str]
) -> Iterator[tuple[str, str, int, list[str], list[float | None]]]:
    """(neuron_id, category, rank, tokens, activations) for many neurons, streamed."""
    cats = list(categories)
    marks = ",".join("?" * len(cats))
    for nid in neuron_ids:
        rows = conn.execute(
            "SELECT r.category, r.rank, x.tokens, r.activation_values, r.values_f32"
            " FROM records r"
            " JOIN excerpts x ON x.digest = r.excerpt_digest"
            f" WHERE r.neuron_id = ? AND r.category IN ({marks}) ORDER BY r.category, r.rank",
            (nid, *cats),
        )
        for cat, rank, tokens, text, f32 in rows:
            yield nid, cat, rank, _decode(tokens), values.decode(text, f32)


def neuron(
    conn: sqlite3.Connection, neuron_id: str, records_per_category: int | None = None
) -> StoredNeuron:
    """Everything about one neuron: stats, explanations, records. Raises NeuronNotFound."""
    head = neuron_head(conn, neuron_id)
    return StoredNeuron(
        id=head.id,
        layer=head.layer,
        neuron=head.neuron,
        stats=head.stats,
        source=head.source,
        explanations=head.explanations,
        records=records(conn, head.id, limit_per_category=records_per_category),
    )


def _head(conn: sqlite3.Connection, nid: str, row: Sequence[Any]) -> NeuronHead:
    """A NeuronHead from a row whose first ten columns are neuron_info's id, layer, neuron,
    moments, max, quantile boundaries and source (`neuron_head` and `first_head` read both)."""
    return NeuronHead(
        id=row[0],
        layer=row[1],
        neuron=row[2],
        stats=NeuronStats(
            mean=row[3],
            variance=row[4],
            skewness=row[5],
            kurtosis=row[6],
            max_activation=row[7],
            quantile_boundaries=None if row[8] is None else _decode(row[8]),
        ),
        source=row[9],
        explanations=explanations(conn, nid),
    )


def neuron_head(conn: sqlite3.Connection, neuron_id: str) -> NeuronHead:
    """One neuron's id, layer, index, stats, source and explanations (no records)."""
    nid = canonical(neuron_id)
    row = conn.execute(
        "SELECT id, layer, neuron, mean, variance, skewness, kurtosis, max_activation,"
        " quantile_boundaries, source FROM neuron_info WHERE id = ?",
        (nid,),
    ).fetchone()
    if row is None:
        raise NeuronNotFound(f"{nid} is not in this atlas, which holds {stored_range(conn)}")
    return _head(conn, nid, row)


class FirstHead(NamedTuple):
    """What a neuron's first view reads before its records (`first_head`)."""

    head: NeuronHead
    """As `neuron_head` gives it."""
    counts: dict[str, int]
    """As `record_counts` gives it."""
    prev: str
    next: str
    """The stored neurons before and after it, wrapping around (`browse.neighbour`)."""


#: neuron_info's row, the count of each record category (a range of the records' primary
#: key) and both neighbours (index seeks on (layer, neuron), wrapping around), in one step.
_FIRST_HEAD = (
    "SELECT id, layer, neuron, mean, variance, skewness, kurtosis, max_activation,"
    " quantile_boundaries, source,"
    " (SELECT json_group_array(json_array(category, n)) FROM (SELECT category, count(*) AS n"
    "   FROM records WHERE neuron_id = ?1 GROUP BY category ORDER BY category)),"
    " coalesce((SELECT id FROM neuron_info WHERE (layer, neuron) < (?2, ?3)"
    "   ORDER BY layer DESC, neuron DESC LIMIT 1),"
    "  (SELECT id FROM neuron_info ORDER BY layer DESC, neuron DESC LIMIT 1)),"
    " coalesce((SELECT id FROM neuron_info WHERE (layer, neuron) > (?2, ?3)"
    "   ORDER BY layer, neuron LIMIT 1),"
    "  (SELECT id FROM neuron_info ORDER BY layer, neuron LIMIT 1))"
    " FROM neuron_info WHERE id = ?1"
)
_count_pairs = msgspec.json.Decoder(list[tuple[str, int]]).decode


def first_head(conn: sqlite3.Connection, neuron_id: str) -> FirstHead:
    """`neuron_head`, `record_counts` and both `browse.neighbour`s of one neuron in one
    statement instead of four: the neuron page's first view runs on the server's event
    loop for every page opened, and each statement is a round trip through Python."""
    nid = canonical(neuron_id)
    layer, neuron = parse_id(nid)
    row = conn.execute(_FIRST_HEAD, (nid, layer, neuron)).fetchone()
    if row is None:
        raise NeuronNotFound(f"{nid} is not in this atlas, which holds {stored_range(conn)}")
    head = _head(conn, nid, row)
    return FirstHead(head, dict(_count_pairs(row[10])), str(row[11]), str(row[12]))


#: A stored record as the explorer decodes it: (category, tokens JSON, values JSON, float32
#: flag, max_activation, peak_index).
_RECORD_ROWS = (
    "SELECT r.category, x.tokens, r.activation_values, r.values_f32, r.max_activation,"
    " r.peak_index FROM records r JOIN excerpts x ON x.digest = r.excerpt_digest"
)


def record_rows(conn: sqlite3.Connection, neuron_id: str) -> list[tuple[Any, ...]]:
    """Every stored record of a neuron as stored, by category then rank: (category, tokens
    JSON, values JSON, float32 flag, max_activation, peak_index). For readers that decode
    only what they show (`store.values.decode`) and histogram the rest in bulk."""
    return conn.execute(
        f"{_RECORD_ROWS} WHERE r.neuron_id = ? ORDER BY r.category, r.rank", (neuron_id,)
    ).fetchall()


def record_counts(conn: sqlite3.Connection, neuron_id: str) -> dict[str, int]:
    """How many records of each category a neuron has (a range of the primary key)."""
    rows = conn.execute(
        "SELECT category, count(*) FROM records WHERE neuron_id = ? GROUP BY category",
        (neuron_id,),
    )
    return {str(r[0]): int(r[1]) for r in rows}


def category_rows(
    conn: sqlite3.Connection, neuron_id: str, category: str, offset: int, limit: int
) -> list[tuple[Any, ...]]:
    """`limit` records of one category from rank `offset` on, as `record_rows` gives them:
    a bounded range of the primary key, so a first answer never reads the whole neuron."""
    return conn.execute(
        f"{_RECORD_ROWS} WHERE r.neuron_id = ? AND r.category = ? ORDER BY r.rank LIMIT ? OFFSET ?",
        (neuron_id, category, limit, offset),
    ).fetchall()


def value_texts(conn: sqlite3.Connection, neuron_id: str) -> list[str]:
    """The value texts (JSON arrays) of every stored record of a neuron, without their
    tokens: all a histogram of its activations needs."""
    rows = conn.execute("SELECT activation_values FROM records WHERE neuron_id = ?", (neuron_id,))
    return [r[0] for r in rows]


def neurons_with_explanation(conn: sqlite3.Connection, source: str) -> set[str]:
    """Ids of neurons that have at least one explanation from `source`."""
    rows = conn.execute("SELECT DISTINCT neuron_id FROM explanations WHERE source = ?", (source,))
    return {r[0] for r in rows}


# -- bulk reads for exporters (ordered scans, streamed) --------------------------------------


def iter_neuron_info(conn: sqlite3.Connection) -> Iterator[NeuronInfoRow]:
    """Every neuron's stored statistics, in id order (= layer, neuron order)."""
    rows = conn.execute(
        "SELECT id, layer, neuron, mean, variance, skewness, kurtosis, quantile_boundaries,"
        " source FROM neuron_info ORDER BY id"
    )
    for r in rows:
        qb = None if r[7] is None else _decode(r[7])
        yield NeuronInfoRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], qb, r[8])


def iter_record_rows(
    conn: sqlite3.Connection,
) -> Iterator[tuple[str, str, int, str, list[float | None]]]:
    """(neuron_id, category, rank, tokens JSON, activation values) of every record, ordered
    by neuron id, category, rank (the primary key's order: no sort needed)."""
    rows = conn.execute(
        "SELECT r.neuron_id, r.category, r.rank, x.tokens, r.activation_values, r.values_f32"
        " FROM records r JOIN excerpts x ON x.digest = r.excerpt_digest"
        " ORDER BY r.neuron_id, r.category, r.rank"
    )
    for nid, cat, rank, tokens, text, f32 in rows:
        yield nid, cat, rank, tokens, values.decode(text, f32)


class ExplanationRow(NamedTuple):
    """One stored explanation with its three OpenAI scores."""

    neuron_id: str
    source: str
    position: int
    text: str
    ev_correlation_score: float | None
    rsquared_score: float | None
    absolute_dev_explained_score: float | None


def iter_explanation_rows(conn: sqlite3.Connection) -> Iterator[ExplanationRow]:
    """Every explanation, by neuron id with each neuron's primary explanation first."""
    rows = conn.execute(
        "SELECT neuron_id, source, position, text, ev_correlation_score, rsquared_score,"
        " absolute_dev_explained_score FROM explanations"
        f" ORDER BY neuron_id, {primary_order(conn)}"
    )
    return map(ExplanationRow._make, rows)


EXPORTABLE_RELATIONS = ("neurons", "activations", "explanations")


def iter_relation(
    conn: sqlite3.Connection, relation: str, batch_size: int = 4096
) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
    """(column names, rows) batches of one of EXPORTABLE_RELATIONS, in a stable order."""
    if relation not in EXPORTABLE_RELATIONS:
        raise ValueError(f"{relation!r}: expected one of {EXPORTABLE_RELATIONS}")
    # activations: the view's own order (neuron_id, category, rank), which needs no sort
    order = {
        "neurons": " ORDER BY id",
        "activations": "",
        "explanations": " ORDER BY neuron_id, source, position",
    }[relation]
    cur = conn.execute(f"SELECT * FROM {relation}{order}")
    names = [d[0] for d in cur.description]
    while True:
        rows = cur.fetchmany(batch_size)
        if not rows:
            return
        yield names, [tuple(r) for r in rows]


def last_run(conn: sqlite3.Connection, stage: str) -> RunRow | None:
    """The most recent run of a stage (None when it never ran)."""
    row = conn.execute(
        "SELECT id, config, status, started_at, finished_at FROM runs WHERE stage = ?"
        " ORDER BY id DESC LIMIT 1",
        (stage,),
    ).fetchone()
    if row is None:
        return None
    return RunRow(row[0], _decode(row[1]), row[2], row[3], row[4])


def strongest_neurons(conn: sqlite3.Connection, per_layer: int) -> list[str]:
    """The `per_layer` neurons of each layer with the highest max activation, strongest first."""
    rows = conn.execute(
        "SELECT id FROM (SELECT id, layer, max_activation, ROW_NUMBER() OVER"
        " (PARTITION BY layer ORDER BY max_activation DESC, neuron) AS rn FROM neuron_info"
        " WHERE max_activation IS NOT NULL) WHERE rn <= ? ORDER BY rn, layer",
        (per_layer,),
    )
    return [r[0] for r in rows]
