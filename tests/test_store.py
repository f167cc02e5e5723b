"""The store: schema, migrations, seed-compatible relations, idempotent writes."""

from __future__ import annotations

import sqlite3

import pytest

from neuronatlas.errors import NeuronNotFound, SchemaTooNew
from neuronatlas.store import (
    AtlasWriter,
    Explanation,
    NeuronData,
    Record,
    open_reader,
    prepare,
    reader,
)
from neuronatlas.store.migrations import available, current_version


def _neuron(layer=0, neuron=1, scale=1.0, explanation=" dogs"):
    return NeuronData(
        layer=layer,
        neuron=neuron,
        source="openai",
        records={
            "top": [
                Record([" a", " dog"], [0.1 * scale, 2.5 * scale]),
                Record([" the", " cat"], [1.5 * scale, -0.01]),
            ],
            "random": [Record([" a", " dog"], [0.2, None])],
        },
        mean=0.01,
        variance=0.2,
        skewness=None,
        kurtosis=3.0,
        explanations=[Explanation(explanation, 0.5, 0.25, 0.125)],
    )


def test_seed_relations_have_the_seed_columns(db_path):
    with AtlasWriter(db_path) as w:
        w.write_neurons([prepare(_neuron())])
    conn = sqlite3.connect(db_path)
    cols = [d[0] for d in conn.execute("SELECT * FROM neurons").description]
    assert cols == [
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
        "explanation_embedding",
        "explanation_embedding_f32",  # the library's float32 BLOB of the same vector
    ]
    row = conn.execute("SELECT * FROM neurons WHERE id = 'L00N0001'").fetchone()
    assert row[:11] == ("L00N0001", 0, 1, " dogs", 0.5, 0.25, 0.125, 0.01, 0.2, None, 3.0)
    acts = conn.execute(
        "SELECT category, tokens, activation_values FROM activations WHERE neuron_id = ?",
        ("L00N0001",),
    ).fetchall()
    assert acts == [
        ("random", '[" a"," dog"]', "[0.2,null]"),
        ("top", '[" a"," dog"]', "[0.1,2.5]"),
        ("top", '[" the"," cat"]', "[1.5,-0.01]"),
    ]


def test_an_excerpt_shared_by_records_is_stored_once(db_path):
    with AtlasWriter(db_path) as w:
        w.write_neurons([prepare(_neuron(0, 1)), prepare(_neuron(0, 2))])
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM excerpts").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM activations").fetchone()[0] == 6


def test_rewriting_a_neuron_replaces_it(db_path):
    with AtlasWriter(db_path) as w:
        w.write_neurons([prepare(_neuron(scale=1.0))])
        first = w.conn.execute("SELECT id FROM explanations").fetchall()
        w.write_neurons([prepare(_neuron(scale=2.0))])
        w.write_neurons([prepare(_neuron(scale=2.0))])
        assert w.conn.execute("SELECT id FROM explanations").fetchall() == first
    conn = open_reader(db_path)
    data = reader.neuron(conn, "L0N1")
    assert data.stats.max_activation == 5.0
    assert [r.activations for r in data.records["top"]] == [[0.2, 5.0], [3.0, -0.01]]
    assert len(data.records["random"]) == 1


def test_reader_is_read_only_and_reports_missing_neurons(db_path):
    with AtlasWriter(db_path) as w:
        w.write_neurons([prepare(_neuron())])
    conn = open_reader(db_path)
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("DELETE FROM records")
    with pytest.raises(NeuronNotFound):
        reader.neuron(conn, "L03N0003")


def test_migrations_are_recorded_and_newer_databases_refused(db_path):
    with AtlasWriter(db_path) as w:
        assert current_version(w.conn) == max(v for v, _, _ in available())
        w.conn.execute("INSERT INTO schema_version VALUES (999, 'future', 'x')")
    with pytest.raises(SchemaTooNew):
        AtlasWriter(db_path)


def test_wal_mode(db_path):
    with AtlasWriter(db_path) as w:
        assert w.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_activations_come_in_key_order_with_no_sort_and_no_decoding(db_path):
    """Rows in (neuron_id, category, rank) order, from a plain scan: GROUP BY neuron_id,
    ORDER BY neuron_id, category and count(*) need no temporary b-tree or subquery."""
    with AtlasWriter(db_path) as w:
        w.write_neurons([prepare(_neuron(0, n)) for n in (5, 2, 9)])
        w.write_neurons([prepare(_neuron(0, 1))])
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT neuron_id, category, tokens FROM activations").fetchall()
    want = [
        (nid, cat, tokens)
        for nid in ("L00N0001", "L00N0002", "L00N0005", "L00N0009")
        for cat, tokens in [
            ("random", '[" a"," dog"]'),
            ("top", '[" a"," dog"]'),
            ("top", '[" the"," cat"]'),
        ]
    ]
    assert rows == want
    for query in (
        "SELECT count(*) FROM activations",
        "SELECT * FROM activations ORDER BY neuron_id, category",
        "SELECT neuron_id, count(*), max(length(activation_values)) FROM activations"
        " GROUP BY neuron_id",
        "SELECT * FROM activations WHERE category = 'top'",
    ):
        plan = " / ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
        assert "TEMP B-TREE" not in plan and "CO-ROUTINE" not in plan, (query, plan)
        assert plan.startswith(("SCAN r", "SEARCH r USING INDEX records_category")), plan
    count = conn.execute("EXPLAIN QUERY PLAN SELECT count(*) FROM activations").fetchall()
    assert [r[3] for r in count] == ["SCAN records USING COVERING INDEX records_category"]
    top = conn.execute("SELECT neuron_id, tokens FROM activations WHERE category = 'top'")
    assert top.fetchall() == [(n, t) for n, c, t in want if c == "top"]
    plan = [
        r[3]
        for r in conn.execute("EXPLAIN QUERY PLAN SELECT * FROM activations WHERE neuron_id = 'x'")
    ]
    assert plan[0].startswith("SEARCH r USING PRIMARY KEY (neuron_id=?)")


def test_primary_explanation_seeks_scores_by_key(tmp_path):
    """The view that picks each neuron's primary explanation finds a candidate's score by its
    primary key: through the (scorer, score) index it scanned every score of the scorer per
    candidate (minutes for a `neurons` scan of a scored demo-size atlas, bench/primary_bench.py)."""
    from neuronatlas.store import open_writer

    conn = open_writer(tmp_path / "a.db")
    plan = " ".join(
        row[3]
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT text FROM primary_explanations WHERE neuron_id = 'L00N0000'"
        )
    )
    assert "explanation_scores_scorer" not in plan
    assert "SEARCH s USING PRIMARY KEY (explanation_id=?" in plan
    conn.close()


def test_explanations_of_an_atlas_without_the_scores_table(db_path):
    """Atlases from before migration 007 have no explanation_scores table; readers never
    migrate, so explanations are read without scores instead of failing."""
    with AtlasWriter(db_path) as w:
        w.write_neurons([prepare(_neuron(explanation=" dogs"))])
        w.conn.execute("DROP TABLE explanation_scores")
    got = reader.explanations(open_reader(db_path), "L00N0001")
    assert [(e.text, e.scores) for e in got] == [("dogs", [])]
