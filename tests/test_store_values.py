"""Activation values: float32 BLOBs when exact, JSON otherwise; the `activations` view
decodes the BLOBs in plain SQL to the identical doubles."""

from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from neuronatlas.store import (
    AtlasWriter,
    NeuronData,
    Record,
    open_reader,
    prepare,
    reader,
    values,
)
from neuronatlas.store.migrations import available, migrate

F32 = np.float32


def _wide(x: float) -> float:
    """A float32 value widened to a double, as OpenAI's files hold them."""
    return float(F32(x))


def test_float32_values_are_stored_as_four_bytes_each():
    vals = [_wide(-0.16994381), _wide(2.5), 0.0, _wide(1e-40)]
    (stored,) = values.encode([vals])
    assert stored.json is None and len(stored.f32) == 16
    assert values.decode(stored.f32, stored.json) == vals
    assert (stored.max_activation, stored.peak_index) == (2.5, 1)


def test_a_value_float32_cannot_hold_keeps_the_record_as_json():
    a, b = values.encode([[0.1, 0.5], [_wide(0.1), 0.5]])
    assert a.f32 is None and a.json == "[0.1,0.5]"
    assert values.decode(a.f32, a.json) == [0.1, 0.5]
    assert b.json is None and values.decode(b.f32, None) == [_wide(0.1), 0.5]
    (big,) = values.encode([[1e300]])  # beyond float32's range: JSON, not inf
    assert big.json == "[1e300]"


def test_missing_values_read_back_as_none_and_do_not_count_for_the_peak():
    (x,) = values.encode([[None, math.nan, 1.5, math.inf, -math.inf]])
    assert values.decode(x.f32, x.json) == [None, None, 1.5, None, None]
    assert (x.max_activation, x.peak_index) == (1.5, 2)
    (empty,) = values.encode([[None, None]])
    assert (empty.max_activation, empty.peak_index) == (None, None)
    assert values.decode(empty.f32, empty.json) == [None, None]


def test_records_of_different_lengths_and_empty_ones():
    out = values.encode([[1.0, 2.0], [], [3.0], [4.0, 0.25]])
    assert [values.decode(v.f32, v.json) for v in out] == [[1.0, 2.0], [], [3.0], [4.0, 0.25]]
    assert [v.peak_index for v in out] == [1, None, 0, 0]


def _view_values(db, neuron_id="L00N0000") -> list[list]:
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT activation_values FROM activations WHERE neuron_id = ?", (neuron_id,)
    ).fetchall()
    conn.close()
    return [json.loads(r[0]) for r in rows]


def _write(db, recs: list[list[float | None]]) -> None:
    data = NeuronData(
        layer=0,
        neuron=0,
        source="scrape",
        records={"top": [Record([f"t{i}" for i in range(len(v))], v) for v in recs]},
    )
    with AtlasWriter(db) as w:
        w.write_neurons([prepare(data)])


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=70), min_size=1, max_size=5)
)
def test_the_view_decodes_any_float32_bit_pattern_exactly(tmp_path_factory, patterns):
    """Every exponent, subnormals, ±0, NaN and ±inf (null), through plain SQL."""
    db = tmp_path_factory.mktemp("v") / "a.db"
    recs = []
    for bits in patterns:
        f = np.array(bits, dtype=np.uint32).view(F32).astype(np.float64)
        recs.append([None if not math.isfinite(v) else v for v in f.tolist()])
    _write(db, recs)
    assert _view_values(db) == recs
    conn = open_reader(db)
    got = reader.records(conn, "L00N0000")["top"]
    conn.close()
    assert [r["activations"] for r in got] == recs


def test_scraped_float32_activations_are_exact_in_the_view(tmp_path):
    rng = np.random.default_rng(0)
    recs = [rng.normal(0, 2, 64).astype(F32).astype(np.float64).tolist() for _ in range(20)]
    _write(tmp_path / "a.db", recs)
    assert _view_values(tmp_path / "a.db") == recs


def test_an_atlas_from_before_float32_storage_keeps_its_json_values(tmp_path):
    """Migration 005 rebuilds `records`; rows written as JSON text by schema 4 read back."""
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at TEXT NOT NULL)"
    )
    for version, name, sql in [m for m in available() if m[0] < 5]:
        conn.executescript(
            f"BEGIN; {sql}; INSERT INTO schema_version VALUES"
            f" ({version}, '{name}', 'then'); COMMIT;"
        )
    conn.execute(
        "INSERT INTO neuron_info(id, layer, neuron, source) VALUES ('L00N0000', 0, 0, 'openai')"
    )
    conn.execute('INSERT INTO excerpts VALUES (7, \'[" a"," b"]\')')
    conn.execute("INSERT INTO records VALUES ('L00N0000', 'top', 0, 7, '[0.1,null]', 0.1, 0)")
    assert migrate(conn) == [v for v, _, _ in available() if v >= 5]
    assert conn.execute("SELECT tokens, activation_values FROM activations").fetchall() == [
        ('[" a"," b"]', "[0.1,null]")
    ]
    conn.close()
