"""The scrape's array write path (`scrape.output.write_atlas` → `store.rows.prepare_block` →
`AtlasWriter.write_block`) stores exactly the rows that the list path (`neuron_data` →
`prepare` → `write_neurons`) stores: value texts, maxima, peaks, excerpts and their digests,
neuron_info, excerpt insertion order, token index."""

from __future__ import annotations

import math
import sqlite3
from contextlib import closing

import numpy as np
import pytest

from neuronatlas.corpus import batch_windows, iter_windows, open_source, resolve_bos
from neuronatlas.models import load_model
from neuronatlas.scrape import StatsConfig, scrape_shard
from neuronatlas.scrape.output import neuron_data, write_atlas
from neuronatlas.store import AtlasWriter, prepare
from neuronatlas.store.search import rebuild_token_index, token_index_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TABLES = {
    "records": "SELECT * FROM records ORDER BY neuron_id, category, rank",
    "excerpts": "SELECT rowid, digest, tokens FROM excerpts ORDER BY rowid",
    "neuron_info": "SELECT * FROM neuron_info ORDER BY id",
    "token_index": "SELECT * FROM token_index ORDER BY token, neuron_id",
}


@pytest.fixture(scope="module")
def scraped(tiny_gpt2_dir, tmp_path_factory):
    text = tmp_path_factory.mktemp("corpus") / "c.txt"
    words = [
        "the",
        "cat",
        "sat",
        "on",
        "a",
        "mat",
        "while",
        "dogs",
        "ran",
        "far",
        "away",
        "from",
        "rain",
        "and",
        "old",
        "maps",
    ]
    text.write_text("\n".join(" ".join(words[i % 7 :] + words[: i % 7]) for i in range(40)))
    model = load_model(str(tiny_gpt2_dir), device="cpu")
    policy = resolve_bos(model.tokenizer)
    config = StatsConfig(top_k=5, random_k=3, quantile_k=2, context=12)
    windows = iter_windows(open_source(str(text)).documents(), model.tokenizer, 12, policy)
    state = scrape_shard(model, batch_windows(windows, 4), config, policy)
    return model, state


def _list_path(state, model, db) -> None:
    with AtlasWriter(db) as writer:
        for layer in sorted(state.layers):
            batch = [prepare(d) for d in neuron_data(state, layer, model.record_strings)]
            for i in range(0, len(batch), 7):
                writer.write_neurons(batch[i : i + 7])
        rebuild_token_index(writer.conn)


def _rows(db) -> dict[str, list[tuple]]:
    with closing(sqlite3.connect(db)) as conn:
        return {name: conn.execute(sql).fetchall() for name, sql in TABLES.items()}


def _same(a, b) -> None:
    ra, rb = _rows(a), _rows(b)
    for name in TABLES:
        assert len(ra[name]) == len(rb[name]), name
        for x, y in zip(ra[name], rb[name], strict=True):
            # NaN-free rows compare exactly; text, digests and doubles alike
            assert x == y, (name, x, y)


def test_array_path_stores_the_rows_of_the_list_path(scraped, tmp_path):
    model, state = scraped
    written = write_atlas(state, model, tmp_path / "a.db", {}, {}, chunk=5)
    _list_path(state, model, tmp_path / "b.db")
    assert written == sum(ls.d_mlp for ls in state.layers.values())
    rows = _rows(tmp_path / "a.db")
    assert len(rows["records"]) > written  # several records per neuron
    assert len(rows["excerpts"]) < len(rows["records"])  # records share excerpts
    _same(tmp_path / "a.db", tmp_path / "b.db")


def test_non_finite_values_are_stored_as_the_list_path_stores_them(scraped, tmp_path):
    model, state = scraped
    layer = state.layers[0]
    saved = layer.top_vec.clone()
    try:
        # NaN, ±inf in some records; a whole record of NaN (no maximum, no peak)
        layer.top_vec[0, 0, 3] = math.nan
        layer.top_vec[1, 0, :] = math.nan
        layer.top_vec[2, 1, 0] = math.inf
        layer.top_vec[3, 0, 5] = -math.inf
        layer.top_vec[4, :, :] = -math.inf
        write_atlas(state, model, tmp_path / "a.db", {}, {}, chunk=3)
        _list_path(state, model, tmp_path / "b.db")
    finally:
        layer.top_vec.copy_(saved)
    _same(tmp_path / "a.db", tmp_path / "b.db")
    with closing(sqlite3.connect(tmp_path / "a.db")) as conn:
        empty = conn.execute(
            "SELECT activation_values, peak_index FROM records"
            " WHERE neuron_id IN ('L00N0001', 'L00N0004') AND max_activation IS NULL"
        ).fetchall()
    assert empty  # the records with no finite value: no maximum, no peak, all null
    assert all(peak is None and set(t.strip("[]").split(",")) == {"null"} for t, peak in empty)


def test_rewriting_a_scrape_replaces_it(scraped, tmp_path):
    model, state = scraped
    db = tmp_path / "a.db"
    write_atlas(state, model, db, {}, {}, chunk=4)
    first = _rows(db)
    write_atlas(state, model, db, {}, {}, chunk=6)
    assert _rows(db) == first
    assert np.isfinite([r[6] for r in first["records"] if r[6] is not None]).all()


SPLIT = [
    "It was 300\u00a0°F in the oven 😀 and 28\u202fkm to the sea 🌊.",
    "東京 and 大阪 are cities; the cat slept 🐈 by the door 🐕.",
    "Naïve café owners serve crème brûlée 🍮 at 7\u00a0pm.",
]


def test_the_token_index_from_memory_is_the_one_sql_rebuilds(tiny_gpt2_dir, tmp_path):
    """`write_atlas` makes the token index from the arrays it holds; `rebuild_token_index`
    reads the same rows out of the stored JSON, peaks on later pieces of split characters
    ("") counted for the character before them included."""
    text = tmp_path / "chars.txt"
    text.write_text("\n".join(SPLIT[i % len(SPLIT)] for i in range(30)), encoding="utf-8")
    model = load_model(str(tiny_gpt2_dir), device="cpu")
    policy = resolve_bos(model.tokenizer)
    config = StatsConfig(top_k=6, random_k=1, quantile_k=1, context=12)
    windows = iter_windows(open_source(str(text)).documents(), model.tokenizer, 12, policy)
    state = scrape_shard(model, batch_windows(windows, 4), config, policy)
    db = tmp_path / "a.db"
    write_atlas(state, model, db, {}, {}, chunk=5)
    sql = TABLES["token_index"]
    with closing(sqlite3.connect(db)) as conn:
        written = conn.execute(sql).fetchall()
        on_pieces = conn.execute(
            "SELECT count(*) FROM records r JOIN excerpts x ON x.digest = r.excerpt_digest"
            " WHERE r.category = 'top' AND r.max_activation > 0"
            " AND json_extract(x.tokens, '$[' || r.peak_index || ']') = ''"
        ).fetchone()[0]
        assert on_pieces > 0  # the index had pieces of split characters to attribute
        state_before = conn.execute("SELECT fingerprint FROM search_index_state").fetchall()
        rebuild_token_index(conn)
        conn.commit()
        assert conn.execute(sql).fetchall() == written
        assert conn.execute("SELECT fingerprint FROM search_index_state").fetchall() == (
            state_before
        )
    assert len(written) > 0


def test_token_index_rows_count_peaks_without_a_token_in_the_mass():
    """A record whose peak has no token (a split character's piece at the excerpt's start)
    is left out but still counts in its neuron's mass, as the SQL leaves it out."""
    rows = token_index_rows(
        ["L00N0001", "L00N0001", "L00N0001", "L00N0000"],
        [" cat", None, " cat", " dog"],
        [2.0, 1.0, 1.0, 0.5],
    )
    assert rows == [(" cat", "L00N0001", 2.0, 2, 0.75), (" dog", "L00N0000", 0.5, 1, 1.0)]
    assert token_index_rows([], [], []) == []
