"""`import-seed`: the seed notebook's own database (built with its own statements) becomes an
atlas with the same neurons, explanations, scores, moments, records and vectors; the source is
never changed; reruns are idempotent, an interrupted import resumes, bad files exit with 2."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neuronatlas import Atlas
from neuronatlas.embed.embed import embed_atlas
from neuronatlas.errors import BadInput, NotASeedDatabase
from neuronatlas.openai.seed_import import SeedImportConfig, import_seed
from neuronatlas.search.semantic import search_vector
from neuronatlas.store import AtlasWriter, open_reader
from neuronatlas.store.embed import explanation_vector, text_digest
from seed_notebook_db import (
    CREATE_TABLES,
    NEURONS,
    RECORDS,
    build_seed_db,
    planned_encode,
    planned_vectors,
    run_embedding_step,
)

CLI = [sys.executable, "-c", "from neuronatlas.cli import main; main()"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], check=False, capture_output=True, text=True, timeout=120, env=os.environ
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def f32(x: float | None) -> float | None:
    return None if x is None else struct.unpack("f", struct.pack("f", x))[0]


def relations(db: Path) -> tuple[list, list]:
    """The seed relations of a database as plain SQL sees them (atlas views or seed tables)."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    neurons = conn.execute("SELECT * FROM neurons ORDER BY id").fetchall()
    acts = conn.execute(
        "SELECT neuron_id, category, tokens, activation_values FROM activations"
        " ORDER BY neuron_id, category"
    ).fetchall()  # a stable sort: rows of one category keep the seed's / the rank order
    conn.close()
    return neurons, acts


def seed_relations(seed: Path) -> tuple[list, list]:
    conn = sqlite3.connect(f"{seed.resolve().as_uri()}?mode=ro", uri=True)
    neurons = conn.execute(
        "SELECT id, layer_index, neuron_index, explanation_text,"
        " explanation_ev_correlation_score, explanation_rsquared_score,"
        " explanation_absolute_dev_explained_score, activation_mean, activation_variance,"
        " activation_skewness, activation_kurtosis, explanation_embedding"
        " FROM neurons ORDER BY id"
    ).fetchall()
    acts = conn.execute(
        "SELECT neuron_id, category, tokens, activation_values FROM activations"
        " ORDER BY neuron_id, category, id"
    ).fetchall()
    conn.close()
    return neurons, acts


def _values(text: str) -> list[float | None]:
    """Values as float32 (NaN: no value), as the seed text and the atlas text both mean them."""
    return [None if v is None or math.isnan(v) else f32(v) for v in json.loads(text)]


@pytest.fixture(scope="module")
def seed(tmp_path_factory) -> Path:
    return build_seed_db(tmp_path_factory.mktemp("seed") / "ChinaGraph2024.db", planned_encode())


@pytest.fixture(scope="module")
def imported(seed, tmp_path_factory) -> Path:
    """The seed imported once through the CLI; the source checked byte-identical."""
    before = sha256(seed)
    atlas = tmp_path_factory.mktemp("atlas") / "atlas.db"
    proc = run_cli("import-seed", str(seed), "--db", str(atlas), "--silent")
    assert proc.returncode == 0, proc.stderr
    assert sha256(seed) == before
    return atlas


def test_neurons_and_records_round_trip_through_the_seed_relations(seed, imported):
    want_n, want_a = seed_relations(seed)
    got_n, got_a = relations(imported)
    assert [r[:11] for r in got_n] == [r[:11] for r in want_n]  # ids, texts, scores, moments
    for got, want in zip(got_n, want_n, strict=True):
        assert np.allclose(json.loads(got[11]), json.loads(want[11]), atol=1e-6)
    assert len(got_a) == len(want_a) == sum(len(v) for c in RECORDS.values() for v in c.values())
    for (gn, gc, gt, gv), (wn, wc, wt, wv) in zip(got_a, want_a, strict=True):
        assert (gn, gc, json.loads(gt)) == (wn, wc, json.loads(wt))  # tokens as the notebook's
        assert _values(gv) == _values(wv)
    # values that are not float32 keep their exact double; NaN became "no value"
    assert ("L00N0001", "random", '["Q","uick"]', "[0.1,null]") in got_a


def test_show_json_and_the_atlas_api_see_the_seed(seed, imported):
    proc = run_cli("show", "L00N0000", "--db", str(imported), "--json")
    assert proc.returncode == 0, proc.stderr
    page = json.loads(proc.stdout)
    text, scores, stats = NEURONS["L00N0000"]
    (expl,) = page["explanations"]
    assert (expl["source"], expl["raw_text"]) == ("openai", text)
    got_scores = (
        expl["ev_correlation_score"],
        expl["rsquared_score"],
        expl["absolute_dev_explained_score"],
    )
    assert got_scores == scores
    st = page["stats"]
    assert (st["mean"], st["variance"], st["skewness"], st["kurtosis"]) == stats
    assert st["max_activation"] == 7.3125
    top = RECORDS["L00N0000"]["top"]
    assert [r["tokens"] for r in page["records"]["top"]] == [t for t, _ in top]
    assert [r["peak_index"] for r in page["records"]["top"]] == [1, 1]
    with Atlas(imported) as atlas:
        assert len(atlas) == len(NEURONS)
        n = atlas.neuron("L11N0042")
        assert n.explanation == NEURONS["L11N0042"][0].strip()
        assert "top" not in n.records  # the seed had no top record for it
        assert [r.tokens for r in n.records["random"]] == [[" in", " 1999"]]
        assert n.to_dict()["stats"]["mean"] is None  # moments absent in the seed stay absent
    conn = sqlite3.connect(imported)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert (meta["model_id"], meta["n_layers"], meta["d_mlp"]) == ("gpt2", "12", "3072")
    assert str(seed.resolve()) in meta["data_source"]


def test_embeddings_are_tagged_with_the_notebooks_embedder_and_search_uses_them(imported):
    vectors = planned_vectors()
    conn = sqlite3.connect(imported)
    rows = conn.execute(
        "SELECT e.neuron_id, e.text, b.embedder, b.text_digest FROM embeddings b"
        " JOIN explanations e ON e.id = b.explanation_id ORDER BY e.neuron_id"
    ).fetchall()
    assert rows == [
        (nid, text, "all-mpnet-base-v2", text_digest(text))
        for nid, (text, _, _) in sorted(NEURONS.items())
    ]
    with open_reader(imported) as reader:
        for nid, want in vectors.items():
            _, got = explanation_vector(reader, nid)
            assert got.dtype == np.float32 and np.allclose(got, want, atol=1e-6)
        # search by vector: the stored vectors answer, and the dog neurons are each other's
        hits = search_vector(reader, vectors["L00N0000"].astype(np.float32), k=2)
        assert [h["id"] for h in hits] == ["L00N0000", "L05N1234"]
    proc = run_cli("similar", "L00N0000", "--db", str(imported), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["by_embedding"][0]["id"] == "L05N1234"
    proc = run_cli("search", "parentheses", "--fulltext", "--db", str(imported), "--json")
    assert proc.returncode == 0, proc.stderr
    assert [h["id"] for h in json.loads(proc.stdout)] == ["L11N3071"]
    proc = run_cli("tokens", " poodle", "--db", str(imported), "--json")
    assert proc.returncode == 0, proc.stderr
    assert [h["id"] for h in json.loads(proc.stdout)] == ["L00N0000"]


def test_the_explorer_serves_the_imported_atlas(imported):
    from fastapi.testclient import TestClient

    from neuronatlas.web import create_app

    with TestClient(create_app(imported)) as client:
        page = client.get("/api/neurons/L05N1234", params={"view": "full"})
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["explanations"][0]["raw_text"] == NEURONS["L05N1234"][0]
        assert [r["tokens"] for r in body["records"]["top"]] == [
            t for t, _ in RECORDS["L05N1234"]["top"]
        ]
        similar = client.get("/api/neurons/L05N1234/similar").json()
        assert similar["by_embedding"][0]["id"] == "L00N0000"
        assert client.get("/api/neurons/L11N3071/prev").json()["id"] == "L11N0042"


def test_embed_finds_every_imported_vector_current(seed, tmp_path):
    """`neuronatlas embed` (all-mpnet-base-v2 by default) re-embeds nothing: the vectors carry
    its tag and the digest of the text they embed (the unit tier's guard fails any load)."""
    atlas = tmp_path / "atlas.db"
    import_seed(SeedImportConfig(seed), atlas)
    done = embed_atlas(atlas)
    assert (done.embedder, done.embedded, done.unchanged) == ("all-mpnet-base-v2", 0, 5)


def _state(db: Path) -> tuple:
    conn = sqlite3.connect(db)
    state = (
        relations(db),
        conn.execute("SELECT count(*) FROM excerpts").fetchone(),
        conn.execute("SELECT id, neuron_id, source, position, text FROM explanations").fetchall(),
        conn.execute("SELECT explanation_id, embedder, vector FROM embeddings").fetchall(),
    )
    conn.close()
    return state


def test_rerun_is_idempotent_and_overwrite_changes_nothing(seed, tmp_path):
    atlas = tmp_path / "atlas.db"
    first = import_seed(SeedImportConfig(seed), atlas)
    assert (first.imported, first.embedded, first.already_done) == (5, 5, 0)
    state = _state(atlas)
    again = import_seed(SeedImportConfig(seed), atlas)
    assert (again.imported, again.embedded, again.already_done, again.skipped) == (0, 0, 5, [])
    assert _state(atlas) == state
    forced = import_seed(SeedImportConfig(seed, overwrite=True), atlas)
    assert (forced.imported, forced.embedded) == (5, 5)
    assert _state(atlas) == state
    runs = sqlite3.connect(atlas).execute("SELECT stage, status FROM runs").fetchall()
    assert runs == [("import-seed", "done")] * 3


def test_an_interrupted_import_resumes(seed, tmp_path, monkeypatch, imported):
    atlas = tmp_path / "atlas.db"
    real = AtlasWriter.write_neurons
    calls = []

    def crash_on_second_batch(self, batch):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user's Ctrl-C in the middle of the run
        return real(self, batch)

    monkeypatch.setattr(AtlasWriter, "write_neurons", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        import_seed(SeedImportConfig(seed, batch_size=2), atlas)
    monkeypatch.undo()
    conn = sqlite3.connect(atlas)
    assert conn.execute("SELECT count(*) FROM neuron_info").fetchone() == (2,)
    assert conn.execute("SELECT count(*) FROM embeddings").fetchone() == (2,)
    assert conn.execute("SELECT status FROM runs").fetchall() == [("failed",)]
    conn.close()
    resumed = import_seed(SeedImportConfig(seed, batch_size=2), atlas)
    assert (resumed.imported, resumed.already_done, resumed.embedded) == (3, 2, 3)
    assert _state(atlas)[0] == _state(imported)[0]


def test_vectors_embedded_after_a_first_import_come_in_on_the_next(tmp_path):
    seed = build_seed_db(tmp_path / "seed.db", encode=None)  # the embedding step not run yet
    atlas = tmp_path / "atlas.db"
    first = import_seed(SeedImportConfig(seed), atlas)
    assert (first.imported, first.embedded) == (5, 0)
    assert relations(atlas)[0][0][11] is None
    conn = sqlite3.connect(seed)
    run_embedding_step(conn, planned_encode())  # the notebook's next cell
    conn.close()
    second = import_seed(SeedImportConfig(seed), atlas)
    assert (second.imported, second.embedded, second.already_done) == (5, 5, 0)
    got = {r[0]: json.loads(r[11]) for r in relations(atlas)[0]}
    for nid, want in planned_vectors().items():
        assert np.allclose(got[nid], want, atol=1e-6)


def test_declared_column_types_do_not_matter(imported, tmp_path):
    """Were the notebook's tables declared with TEXT columns, SQLite would store its numbers as
    text ('0.61', '11'): the import reads them as the numbers they are."""
    schema = CREATE_TABLES.replace(" float", " text").replace('_index" integer', '_index" text')
    as_text = build_seed_db(tmp_path / "seed.db", planned_encode(), schema=schema)
    stored = sqlite3.connect(as_text).execute(
        "SELECT typeof(layer_index), typeof(explanation_ev_correlation_score) FROM neurons"
    )
    assert set(stored) == {("text", "text")}
    atlas = tmp_path / "atlas.db"
    assert import_seed(SeedImportConfig(as_text), atlas).skipped == []
    assert _state(atlas)[0] == _state(imported)[0]


def _tables(path: Path, sql: str) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(sql)
    conn.close()
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p, ["no such file"]),
        (lambda p: (p.write_text("id,layer\n"), p)[1], ["not an SQLite database"]),
        (
            lambda p: _tables(p, "CREATE TABLE neurons (id TEXT, layer_index INT, extra TEXT);"),
            ["missing table activations", "neurons.neuron_index", "neurons.explanation_text"],
        ),
        (
            lambda p: _tables(p, CREATE_TABLES.replace('"category" varchar,', "")),
            ["missing activations.category"],
        ),
    ],
    ids=["missing", "csv", "few-columns", "no-category"],
)
def test_a_file_that_is_not_a_seed_database_exits_2_and_writes_nothing(tmp_path, make, words):
    bad = make(tmp_path / "seed.db")
    before = sha256(bad) if bad.exists() else None
    atlas = tmp_path / "atlas.db"
    proc = run_cli("import-seed", str(bad), "--db", str(atlas), "--silent")
    assert proc.returncode == 2, proc.stderr
    line = " ".join(proc.stderr.split())  # one message (rich may wrap it on a narrow terminal)
    assert str(bad) in line and all(w in line for w in words), line
    assert not atlas.exists()
    assert (sha256(bad) if bad.exists() else None) == before


def test_an_atlas_given_as_the_seed_is_named_as_such(imported, tmp_path):
    with pytest.raises(NotASeedDatabase, match="already a neuronatlas atlas"):
        import_seed(SeedImportConfig(imported), tmp_path / "other.db")
    with pytest.raises(BadInput, match="is the seed database itself"):
        import_seed(SeedImportConfig(imported), imported)


def test_bad_rows_are_named_and_skipped_the_rest_imported(tmp_path):
    records = {k: dict(v) for k, v in RECORDS.items()}
    records["L05N1234"] = {"random": [([" a", " b"], [1.0])], "top": []}  # 2 tokens, 1 value
    seed = build_seed_db(tmp_path / "seed.db", planned_encode(), records=records)
    conn = sqlite3.connect(seed)
    conn.execute("UPDATE neurons SET explanation_embedding = '[1, 2' WHERE id = 'L11N3071'")
    conn.commit()
    conn.close()
    atlas = tmp_path / "atlas.db"
    proc = run_cli("import-seed", str(seed), "--db", str(atlas), "--silent")
    assert proc.returncode == 3, proc.stderr
    skipped = sorted(x for x in proc.stderr.splitlines() if x.startswith("skipped "))
    assert len(skipped) == 2
    assert skipped[0].startswith("skipped L05N1234: ") and "2 tokens but 1 activation" in skipped[0]
    assert "activations row" in skipped[0] and str(seed) in skipped[0]
    assert skipped[1].startswith("skipped L11N3071: ") and "malformed JSON" in skipped[1]
    assert [r[0] for r in relations(atlas)[0]] == ["L00N0000", "L00N0001", "L11N0042"]
    again = import_seed(SeedImportConfig(seed), atlas)  # a rerun names them again
    assert [s.neuron_id for s in again.skipped] == ["L05N1234", "L11N3071"]


def test_vectors_of_another_length_need_their_embedder_named(tmp_path):
    seed = build_seed_db(tmp_path / "seed.db", planned_encode(384))
    atlas = tmp_path / "atlas.db"
    with pytest.raises(BadInput, match="--embedder"):
        import_seed(SeedImportConfig(seed), atlas)
    assert not atlas.exists()
    done = import_seed(SeedImportConfig(seed, embedder="all-MiniLM-L6-v2"), atlas)
    assert done.embedded == 5
    tags = sqlite3.connect(atlas).execute("SELECT DISTINCT embedder FROM embeddings").fetchall()
    assert tags == [("all-MiniLM-L6-v2",)]


def test_the_seed_is_opened_read_only(seed, tmp_path):
    """Even a writable copy is never written: the import's connection refuses writes."""
    from neuronatlas.store.seed import open_seed

    copy = shutil.copy(seed, tmp_path / "copy.db")
    conn, layout = open_seed(copy)
    assert layout.has_embeddings
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM activations")
    conn.close()
    assert sha256(Path(copy)) == sha256(seed)


@pytest.mark.slow  # loads all-mpnet-base-v2
def test_semantic_search_with_the_notebooks_real_embedder(tmp_path):
    from neuronatlas.embed.embedders import get_embedder

    model = get_embedder("all-mpnet-base-v2")
    seed = build_seed_db(tmp_path / "seed.db", lambda _ids, texts: model.encode(texts))
    atlas = tmp_path / "atlas.db"
    assert import_seed(SeedImportConfig(seed), atlas).embedded == len(NEURONS)
    proc = run_cli("search", "brackets that end an expression", "--db", str(atlas), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["id"] == "L11N3071"
