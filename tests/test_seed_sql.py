"""The seed notebook's own SQL statements (kept in tests/seed_notebook_sql.py, copied from the
user's notebook that loads OpenAI's GPT-2-small explanations into SQLite) run unchanged through
plain `sqlite3` against an atlas: what they write lands in the atlas's tables, and what they
read is what they wrote."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import seed_notebook_sql as notebook
from neuronatlas.errors import MixedEmbedders
from neuronatlas.store import (
    AtlasWriter,
    Explanation,
    NeuronData,
    Record,
    embed,
    open_reader,
    prepare,
    reader,
)

F32 = np.float32
#: sha256 of the four statements as the notebook has them: a reformatted copy fails here
NOTEBOOK_SHA256 = "52555d5ba33fea357fe6ba7b5acd64eb05f8ceadcd139cbdd49dde5638906eec"


def seed_statements() -> dict[str, str]:
    """The notebook's SQL by what it does: insert_neuron, insert_activation, update_embedding,
    select_layer. Each statement exactly as the notebook passes it to `execute`."""
    return {
        "insert_neuron": notebook.INSERT_NEURON,
        "insert_activation": notebook.INSERT_ACTIVATION,
        "update_embedding": notebook.UPDATE_EMBEDDING,
        "select_layer": notebook.SELECT_LAYER,
    }


def compact_json_encode(obj):  # the notebook's own encoder
    return json.dumps(obj, separators=(",", ":"))


def _wide(xs):  # float32 values widened to doubles, as OpenAI's files hold them
    return np.asarray(xs, dtype=F32).astype(np.float64).tolist()


@pytest.fixture
def atlas(db_path):
    """An atlas the library wrote: one scraped neuron with an embedded explanation."""
    data = NeuronData(
        layer=0,
        neuron=0,
        source="scrape",
        records={"top": [Record([" a", " b"], _wide([0.25, 3.0625]))]},
        explanations=[Explanation("b", 0.5)],
        explanation_source="top-tokens",
    )
    with AtlasWriter(db_path) as w:
        w.write_neurons([prepare(data)])
        embed.write_embeddings(w.conn, "mini", [(1, "d", np.array([0.6, -0.8], dtype=F32))])
    return db_path


SEED_NEURONS = {
    # neuron id: (layer, neuron, explanation, (ev, rsq, absdev), (mean, var, skew, kurt))
    "L01N0000": (1, 0, " dog breeds", (0.61, 0.3, 0.2), (0.01, 0.2, 1.5, 9.0)),
    "L01N0001": (1, 1, " the letter Q", (0.05, None, -0.1), (0.02, 0.3, None, 3.0)),
}
SEED_RECORDS = {  # neuron id: [(category, tokens, activations)] in the notebook's order
    "L01N0000": [
        ("random", [" the", " cat", "日本"], _wide([0.0, -0.16994381, 0.5])),
        ("top", [" a", " dog"], _wide([0.1, 7.3125])),
        ("top", [" the", " puppy"], [None, 4.5]),
    ],
    "L01N0001": [("random", ["Q"], [0.1])],  # not a float32: must stay this exact double
}


def _run_seed_writes(db: Path, sql: dict[str, str]) -> dict[str, str]:
    """The notebook's import loop and embedding loop, with its statements; returns the
    embedding JSON written per neuron."""
    db_conn = sqlite3.connect(db)
    cursor = db_conn.cursor()
    for nid, (layer, neuron, text, scores, stats) in SEED_NEURONS.items():
        cursor.execute(sql["insert_neuron"], (nid, layer, neuron, text, *scores, *stats))
        for category, tokens, acts in SEED_RECORDS[nid]:
            cursor.execute(
                sql["insert_activation"],
                (nid, category, compact_json_encode(tokens), compact_json_encode(acts)),
            )
        db_conn.commit()
    written = {}
    neurons = cursor.execute(sql["select_layer"], (1,)).fetchall()
    assert neurons == [(nid, v[2]) for nid, v in SEED_NEURONS.items()]
    for i, (nid, _text) in enumerate(neurons):
        vec = [round(0.1 * (i + 1), 8), round(-0.123456789, 8)]
        written[nid] = compact_json_encode(vec)
        cursor.execute(sql["update_embedding"], (written[nid], nid))
    db_conn.commit()
    db_conn.close()
    return written


def test_the_seed_statements_are_kept_unchanged():
    sql = seed_statements()
    assert hashlib.sha256("".join(sql.values()).encode()).hexdigest() == NOTEBOOK_SHA256
    assert sql["update_embedding"].split() == [
        "UPDATE", "neurons", "SET", "explanation_embedding", "=", "?", "WHERE", "id", "=", "?;"
    ]  # fmt: skip
    assert sql["insert_neuron"].count("?") == 11 and sql["insert_activation"].count("?") == 4


def test_the_seed_notebook_writes_and_reads_an_atlas(atlas):
    sql = seed_statements()
    embeddings = _run_seed_writes(atlas, sql)

    plain = sqlite3.connect(atlas)
    for nid, rows in SEED_RECORDS.items():
        got = plain.execute(
            "SELECT category, tokens, activation_values FROM activations WHERE neuron_id = ?",
            (nid,),
        ).fetchall()
        want = [(c, compact_json_encode(t), compact_json_encode(a)) for c, t, a in rows]
        assert got == want  # the text as written, in (category, insertion) order
    row = plain.execute("SELECT * FROM neurons WHERE id = 'L01N0001'").fetchone()
    layer, neuron, text, scores, stats = SEED_NEURONS["L01N0001"]
    assert row == ("L01N0001", layer, neuron, text, *scores, *stats, embeddings["L01N0001"], None)
    # the library's own neuron: its vector as compact JSON text beside the BLOB
    emb, blob = plain.execute(
        "SELECT explanation_embedding, explanation_embedding_f32 FROM neurons WHERE id = ?",
        ("L00N0000",),
    ).fetchone()
    assert emb == "[0.6,-0.8]" and np.frombuffer(blob, "<f4").tolist() == _wide([0.6, -0.8])
    assert plain.execute("SELECT count(*) FROM activations").fetchone() == (5,)
    tags = plain.execute(
        "SELECT e.neuron_id, e.source, b.embedder FROM explanations e"
        " JOIN embeddings b ON b.explanation_id = e.id ORDER BY e.neuron_id"
    ).fetchall()
    assert tags == [
        ("L00N0000", "top-tokens", "mini"),
        ("L01N0000", "external", "external"),
        ("L01N0001", "external", "external"),
    ]
    plain.close()

    conn = open_reader(atlas)
    dog = reader.neuron(conn, "L01N0000")
    assert [r.activations for r in dog.records["top"]] == [_wide([0.1, 7.3125]), [None, 4.5]]
    assert [(r.max_activation, r.peak_index) for r in dog.records["top"]] == [
        (7.3125, 1),
        (4.5, 1),
    ]
    assert dog.records["random"][0].tokens == [" the", " cat", "日本"]
    assert dog.stats.max_activation == 7.3125 and dog.source == "external"
    assert dog.explanations[0].text == "dog breeds"
    q = reader.records(conn, "L01N0001")["random"][0]
    assert q.activations == [0.1] and (q.max_activation, q.peak_index) == (0.1, 0)
    _, neuron_ids, matrix = embed.load_vectors(conn)
    assert neuron_ids == ["L00N0000", "L01N0000", "L01N0001"]
    assert matrix[1].tolist() == _wide(json.loads(embeddings["L01N0000"]))
    conn.close()

    with AtlasWriter(atlas) as w, pytest.raises(MixedEmbedders, match="external"):
        embed.check_embedder(w.conn, "mini")


def test_an_embedding_set_to_null_is_removed_and_bad_writes_are_refused(atlas):
    sql = seed_statements()
    _run_seed_writes(atlas, sql)
    conn = sqlite3.connect(atlas)
    conn.execute(sql["update_embedding"], (None, "L01N0000"))
    assert conn.execute(
        "SELECT explanation_embedding FROM neurons WHERE id = 'L01N0000'"
    ).fetchone() == (None,)
    assert conn.execute("SELECT count(*) FROM embeddings").fetchone() == (2,)
    with pytest.raises(sqlite3.IntegrityError, match="insert the neuron into neurons first"):
        conn.execute(sql["insert_activation"], ("L07N0007", "top", '["x"]', "[1.0]"))
    with pytest.raises(sqlite3.IntegrityError, match="JSON array"):
        conn.execute(sql["update_embedding"], ("0.5", "L01N0000"))
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute(sql["insert_neuron"], ("L01N0000", 1, 0, "again", *[None] * 7))
    conn.rollback()
    conn.close()
