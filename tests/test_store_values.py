"""Activation values: JSON text with shortest float32 spellings when every value is a float32
(the library rounds them back to the identical doubles), exact doubles otherwise; the
`activations` view shows the stored text as it is."""

from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuronatlas.store import (
    AtlasWriter,
    NeuronData,
    Record,
    embed,
    open_reader,
    prepare,
    reader,
    values,
)
from neuronatlas.store.migrations import available, migrate
from synthetic import older_schema

F32 = np.float32


def _wide(x: float) -> float:
    """A float32 value widened to a double, as OpenAI's files hold them."""
    return float(F32(x))


def test_float32_values_are_stored_with_their_shortest_float32_spelling():
    vals = [_wide(-0.16994381), _wide(2.5), 0.0, _wide(1e-40), _wide(3e38), -0.0]
    (stored,) = values.encode([vals])
    assert stored.f32 and stored.json == "[-0.16994381,2.5,0.0,1e-40,3e+38,-0.0]"
    assert repr(_wide(-0.16994381)) == "-0.16994380950927734"  # what the seed would store
    got = values.decode(stored.json, stored.f32)
    assert got == vals and math.copysign(1, got[-1]) == -1
    assert (stored.max_activation, stored.peak_index) == (_wide(3e38), 4)


def test_a_value_float32_cannot_hold_keeps_the_record_as_exact_doubles():
    a, b = values.encode([[0.1, 0.5], [_wide(0.1), 0.5]])
    assert not a.f32 and a.json == "[0.1,0.5]"
    assert values.decode(a.json, a.f32) == [0.1, 0.5]
    assert b.f32 and b.json == "[0.1,0.5]"
    assert values.decode(b.json, b.f32) == [_wide(0.1), 0.5]
    (big,) = values.encode([[1e300]])  # beyond float32's range: exact double, not inf
    assert (big.json, big.f32) == ("[1e300]", False)


def test_missing_values_read_back_as_none_and_do_not_count_for_the_peak():
    (x,) = values.encode([[None, math.nan, 1.5, math.inf, -math.inf]])
    assert x.json == "[null,null,1.5,null,null]"
    assert values.decode(x.json, x.f32) == [None, None, 1.5, None, None]
    assert (x.max_activation, x.peak_index) == (1.5, 2)
    (empty,) = values.encode([[None, None]])
    assert (empty.max_activation, empty.peak_index) == (None, None)
    assert values.decode(empty.json, empty.f32) == [None, None]
    (mixed,) = values.encode([[None, 0.1]])
    assert values.decode(mixed.json, mixed.f32) == [None, 0.1]


def test_records_of_different_lengths_and_empty_ones():
    out = values.encode([[1.0, 2.0], [], [3.0], [4.0, 0.25]])
    assert [values.decode(v.json, v.f32) for v in out] == [[1.0, 2.0], [], [3.0], [4.0, 0.25]]
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


def _as_f32(rows: list[list]) -> list[list]:
    """Values read as SQL text, rounded to float32 (what the shortest spellings promise)."""
    return [[None if v is None else float(F32(v)) for v in r] for r in rows]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=70), min_size=1, max_size=5)
)
def test_any_float32_bit_pattern_reads_back_as_the_same_float32(tmp_path_factory, patterns):
    """Every exponent, subnormals, ±0, NaN and ±inf (null): the view's text parses to the
    same float32, and the library reads the identical doubles."""
    db = tmp_path_factory.mktemp("v") / "a.db"
    recs = []
    for bits in patterns:
        f = np.array(bits, dtype=np.uint32).view(F32).astype(np.float64)
        recs.append([None if not math.isfinite(v) else v for v in f.tolist()])
    _write(db, recs)
    assert _as_f32(_view_values(db)) == recs
    conn = open_reader(db)
    got = reader.records(conn, "L00N0000")["top"]
    conn.close()
    assert [r.activations for r in got] == recs


def test_scraped_float32_activations_are_short_and_exact(tmp_path):
    rng = np.random.default_rng(0)
    recs = [rng.normal(0, 2, 64).astype(F32).astype(np.float64).tolist() for _ in range(20)]
    _write(tmp_path / "a.db", recs)
    seen = _view_values(tmp_path / "a.db")
    assert _as_f32(seen) == recs
    conn = sqlite3.connect(tmp_path / "a.db")
    stored = conn.execute("SELECT total(length(activation_values)) FROM activations").fetchone()
    conn.close()
    assert stored[0] < 0.6 * sum(len(json.dumps(r, separators=(",", ":"))) for r in recs)


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


def test_an_atlas_with_float32_blobs_migrates_in_place(tmp_path):
    """Migration 006 turns schema 5's float32 BLOBs (values and embeddings) into JSON text:
    the view shows short spellings, the library reads the identical doubles and vector."""
    db = tmp_path / "v5.db"
    conn = sqlite3.connect(db, isolation_level=None)
    older_schema(conn, 6)
    vals = np.array([-0.16994381, 2.5, np.nan, 1e-40], dtype=F32)
    vector = np.array([0.6, -0.8], dtype=F32)
    conn.execute(
        "INSERT INTO neuron_info(id, layer, neuron, source) VALUES ('L00N0000', 0, 0, 'scrape')"
    )
    conn.execute('INSERT INTO excerpts(digest, tokens) VALUES (7, \'[" a"," b"," c"," d"]\')')
    conn.executemany(
        "INSERT INTO records VALUES ('L00N0000', ?, 0, 7, ?, ?, 2.5, 1)",
        [("top", vals.tobytes(), None), ("random", None, "[0.1,null,1,2]")],
    )
    conn.execute(
        "INSERT INTO explanations(neuron_id, source, position, text, created_at)"
        " VALUES ('L00N0000', 'top-tokens', 0, 'b', 'then')"
    )
    conn.execute("INSERT INTO embeddings VALUES (1, 'mini', 'd', ?)", (vector.tobytes(),))
    assert migrate(conn) == [v for v, _, _ in available() if v >= 6]
    conn.close()

    plain = sqlite3.connect(db)  # no custom functions: any client
    assert plain.execute("SELECT category, activation_values FROM activations").fetchall() == [
        ("random", "[0.1,null,1,2]"),
        ("top", "[-0.16994381,2.5,null,1e-40]"),
    ]
    emb, blob = plain.execute(
        "SELECT explanation_embedding, explanation_embedding_f32 FROM neurons"
    ).fetchone()
    assert (emb, blob) == ("[0.6,-0.8]", vector.tobytes())
    gone = "SELECT count(*) FROM sqlite_master WHERE name = 'float32_scales'"
    assert plain.execute(gone).fetchone() == (0,)
    plain.close()
    r = open_reader(db)
    recs = reader.records(r, "L00N0000")
    assert embed.load_vectors(r)[2].tolist() == [vector.tolist()]
    r.close()
    want = [None if math.isnan(v) else v for v in vals.astype(np.float64).tolist()]
    assert recs["top"][0].activations == want
    assert recs["random"][0].activations == [0.1, None, 1.0, 2.0]


def _bits(pattern: int) -> np.float32:
    return np.array([pattern], dtype=np.uint32).view(F32)[0]


#: ±7.038531e-26: orjson's shortest spelling reads back (as a double, then float32) one ulp up
DOUBLE_ROUNDED = [_bits(0x15AE43FD), _bits(0x95AE43FD)]


def test_the_double_rounding_patterns_are_the_ones_the_installed_libraries_get_wrong():
    """`values.DOUBLE_ROUNDING` (from the exhaustive scan) still describes the installed orjson
    and msgspec: its values do not read back from their shortest spellings, their neighbours
    do, and the block encoder stores them as exact doubles, as the checked one-row path does."""
    for x in DOUBLE_ROUNDED:
        one = np.array([x], dtype=F32)
        assert values.spell_f32(one) == ("[-7.038531e-26]" if x < 0 else "[7.038531e-26]")
        assert F32(values.decode(values.spell_f32(one), False)[0]) != x
        near = np.array([np.nextafter(x, F32(1)), np.nextafter(x, F32(-1))], dtype=F32)
        assert values.decode(values.spell_f32(near), True) == near.astype(np.float64).tolist()
    block = np.array([[DOUBLE_ROUNDED[0], 2.5], [1.0, 2.0], [0.5, DOUBLE_ROUNDED[1]]], dtype=F32)
    texts = values.f32_json_rows(block)
    assert texts == [values.f32_json(row) for row in block]
    assert texts[0] == "[7.038530691851209e-26,2.5]" and texts[1] == "[1.0,2.0]"
    assert values.decode(texts[2], True) == block[2].astype(np.float64).tolist()
    assert (values.DOUBLE_ROUNDING == [0x15AE43FD]).all()


def test_a_spelling_that_does_not_read_back_falls_back_to_exact_doubles(monkeypatch):
    """Should an orjson spell a value that does not round back to its float32 (not one of the
    known double-rounding patterns), the one-row path spells the record with its exact
    doubles, and the block path finds it through its sample and checks the whole block."""
    vals = [_wide(0.3), _wide(-1.7)]
    wrong = "[0.3000001,-1.7]"  # 0.3 three ulps up
    real = values.spell_f32_rows
    monkeypatch.setattr(values, "spell_f32", lambda v: wrong)
    monkeypatch.setattr(values, "spell_f32_rows", lambda b: [wrong, *real(b)[1:]])
    stored, fine = values.encode([vals, [2.5, 1.0]])
    assert stored.f32 and stored.json == "[0.30000001192092896,-1.7000000476837158]"
    assert values.decode(stored.json, stored.f32) == vals
    assert fine.json == "[2.5,1.0]"  # the block's other rows keep their spellings
    one = np.array(vals, dtype=F32)
    assert values.f32_json(one) == stored.json  # the one-row path falls back the same way
    # a wrong spelling outside the sample (row 1) is caught once a sampled row (0) fails
    monkeypatch.setattr(values, "spell_f32_rows", lambda b: [wrong, wrong, *real(b)[2:]])
    block = np.array([vals, vals, [2.5, 1.0]], dtype=F32)
    assert values.f32_json_rows(block) == [stored.json, stored.json, "[2.5,1.0]"]
    monkeypatch.undo()
    assert values.encode([vals])[0].json == "[0.3,-1.7]"


# float32 values of every kind: normal, subnormal, ±0, the extremes, NaN and ±inf (null)
f32_values = st.one_of(
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.floats(width=32, min_value=float(F32(-1.2e-38)), max_value=float(F32(1.2e-38))),
    st.sampled_from(
        [0.0, -0.0, 1e-45, -1e-45, 3.4028235e38, -3.4028235e38, 1.1754944e-38, -1.1754942e-38]
        + [float(x) for x in DOUBLE_ROUNDED]
    ),
    # any bit pattern: every exponent, NaN with any payload and sign
    st.integers(0, 2**32 - 1).map(lambda b: float(_bits(b))),
)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 9).flatmap(
        lambda width: st.lists(st.lists(f32_values, min_size=width, max_size=width), max_size=8)
    )
)
def test_the_block_encoder_spells_every_row_as_the_one_row_encoder(rows):
    """f32_json_rows (one orjson and one msgspec call per block) gives, row by row, exactly
    the text of f32_json (two calls per row), NaN and ±inf as null included."""
    width = len(rows[0]) if rows else 3
    block = np.array(rows, dtype=F32).reshape(len(rows), width)
    assert values.f32_json_rows(block) == [values.f32_json(row) for row in block]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(f32_values, min_size=1, max_size=6), min_size=1, max_size=12))
def test_encoding_records_in_blocks_matches_one_record_at_a_time(records):
    """`encode` of many records (batched per length) stores what each record alone would."""
    wide = [[float(F32(v)) for v in rec] for rec in records]
    assert values.encode(wide) == [values.encode([rec])[0] for rec in wide]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 9).flatmap(
        lambda width: st.lists(st.lists(f32_values, min_size=width, max_size=width), max_size=8)
    )
)
def test_the_array_encoder_stores_what_the_list_encoder_stores(rows):
    """`encode_f32` of a float32 block (the scrape's path) gives, row by row, the text, maximum
    and peak that `encode` gives for the same rows as lists of doubles (the old path), NaN and
    ±inf included; every row is a float32 row."""
    width = len(rows[0]) if rows else 3
    block = np.array(rows, dtype=F32).reshape(len(rows), width)
    texts, tops, peaks = values.encode_f32(block)
    old = values.encode(block.astype(np.float64).tolist())
    assert all(s.f32 for s in old)
    assert texts == [s.json for s in old]
    assert tops == [s.max_activation for s in old]
    assert peaks == [s.peak_index for s in old]
    assert all(t is None or type(t) is float for t in tops)


def test_readers_refuse_an_older_atlas_and_migrate_brings_it_up_to_date(tmp_path):
    """A read-only open cannot migrate, so it names the command that does; after
    `neuronatlas migrate` the same atlas reads, and a second run has nothing to do."""
    from typer.testing import CliRunner

    from neuronatlas.cli import app
    from neuronatlas.errors import SchemaTooOld

    db = tmp_path / "v5.db"
    conn = sqlite3.connect(db, isolation_level=None)
    older_schema(conn, 6)
    conn.execute(
        "INSERT INTO neuron_info(id, layer, neuron, source) VALUES ('L00N0000', 0, 0, 'scrape')"
    )
    conn.close()
    with pytest.raises(SchemaTooOld, match=rf"schema 5.*neuronatlas migrate --db {db}"):
        open_reader(db)
    runner = CliRunner()
    first = runner.invoke(app, ["migrate", "--db", str(db)])
    newest = max(v for v, _, _ in available())
    assert first.exit_code == 0, first.output
    assert f"schema 5 → {newest}" in first.output
    assert reader.neuron_ids(open_reader(db)) == ["L00N0000"]
    again = runner.invoke(app, ["migrate", "--db", str(db)])
    assert f"schema {newest}, already up to date" in again.output


def test_the_neuron_page_reads_values_as_the_library_does():
    """The page parses a neuron's value texts in one call; every shown record must equal
    `values.decode` of its own text (float32 rounding, nulls, empty records, old doubles)
    and the histogram must count every stored value."""
    from neuronatlas.read.neuron import _records

    f32 = [np.array(v, dtype=F32) for v in ([0.1, -2.5, 3.25], [np.nan, 7.0], [1e-40, 0.3])]
    rows = [("top", '[" b"]', values.f32_json(v), 1, 1.0, 0) for v in f32]
    rows += [("random", "[]", "[]", 1, None, None), ("random", '[" c"]', "[0.1,null,2]", 0, 2, 2)]
    shown, counts, hist = _records(rows, limit=2)
    assert counts == {"top": 3, "random": 2}
    assert [r.activations for r in shown["top"]] == [values.decode(r[2], 1) for r in rows[:2]]
    assert [r.activations for r in shown["random"]] == [[], [0.1, None, 2.0]]
    assert sum(hist.counts) == 3 + 1 + 2 + 2  # every finite stored value, shown or not
