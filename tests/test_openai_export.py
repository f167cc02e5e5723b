"""`neuronatlas export`: OpenAI files that import back identically; Parquet tables."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

from neuronatlas.openai import ImportConfig, import_openai
from neuronatlas.openai.export import export_openai, export_parquet
from neuronatlas.store import AtlasWriter, Explanation, NeuronData, Record, prepare
from openai_fixtures import write_source

CLI = [sys.executable, "-c", "from neuronatlas.cli import main; main()"]


def _relations(db) -> tuple[list, list, list]:
    conn = sqlite3.connect(db)
    out = (
        conn.execute("SELECT * FROM neurons ORDER BY id").fetchall(),
        conn.execute("SELECT * FROM activations").fetchall(),
        conn.execute(
            "SELECT neuron_id, source, position, text, ev_correlation_score,"
            " rsquared_score, absolute_dev_explained_score FROM explanations"
            " ORDER BY neuron_id, source, position"
        ).fetchall(),
    )
    conn.close()
    return out


def test_openai_export_imports_back_identically(tmp_path):
    src = write_source(tmp_path / "src", n_layers=2, n_neurons=6)
    first = tmp_path / "first.db"
    import_openai(ImportConfig(source=str(src), workers=0), first)
    out = tmp_path / "out"
    proc = subprocess.run(
        [*CLI, "export", "--db", str(first), "--format", "openai", str(out), "--silent"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "collated-activations",
        "explanations",
        "neuronatlas",
        "neuronatlas.json",
    ]
    rec = json.loads((out / "collated-activations" / "0" / "2.json").read_text("utf-8"))
    assert rec["dataclass_name"] == "NeuronRecord"
    assert [len(b) for b in rec["random_sample_by_quantile"]] == [2, 0, 1]
    assert rec["quantile_boundaries"] == [0.01, None]
    line = (out / "explanations" / "0" / "2.jsonl").read_text("utf-8")
    assert line.count("\n") == 1 and json.loads(line)["scored_explanations"][1]["explanation"]

    second = tmp_path / "second.db"
    result = import_openai(ImportConfig(source=str(out), workers=1), second)
    assert result.skipped == [] and result.imported == 9
    assert _relations(second) == _relations(first)


def test_export_keeps_every_source_primary_first_and_neurons_without_explanations(tmp_path):
    db = tmp_path / "a.db"
    rec = Record([" a", " b"], [0.5, None])
    with AtlasWriter(db) as w:
        w.write_neurons(
            [
                prepare(
                    NeuronData(
                        0, 0, "scrape", {"top": [rec], "random": []}, mean=0.1, variance=None
                    )
                ),
                prepare(
                    NeuronData(
                        0,
                        1,
                        "scrape",
                        {"top": [rec], "random": [rec]},
                        explanations=[Explanation(" n2g words", 0.3)],
                        explanation_source="n2g",
                    )
                ),
            ]
        )
        w.write_explanations("L00N0001", "openai", [(" openai words", 0.9, None, 0.1)])
    out = tmp_path / "out"
    export_openai(db, out)
    back = tmp_path / "back.db"
    import_openai(ImportConfig(source=str(out), workers=0), back)
    assert _relations(back) == _relations(db)  # each explanation under its own source
    line = json.loads((out / "explanations" / "0" / "1.jsonl").read_text("utf-8"))
    assert [e["explanation"] for e in line["scored_explanations"]] == [
        " openai words",
        " n2g words",
    ]


def test_parquet_has_one_table_per_relation(tmp_path):
    import pyarrow.parquet as pq

    src = write_source(tmp_path / "src", n_layers=1, n_neurons=4, broken=False)
    db = tmp_path / "a.db"
    import_openai(ImportConfig(source=str(src), workers=0), db)
    counts = export_parquet(db, tmp_path / "pq")
    neurons, acts, expl = _relations(db)
    assert counts == {"neurons": len(neurons), "activations": len(acts), "explanations": len(expl)}
    t = pq.read_table(tmp_path / "pq" / "activations.parquet")
    assert t.column_names == ["neuron_id", "category", "tokens", "activation_values"]

    # Same values; the view spells float32 values with 17 digits, the export as short as
    # round-trips.
    def parsed(rows):
        return [(n, c, json.loads(tok), json.loads(v)) for n, c, tok, v in rows]

    assert parsed(tuple(r.values()) for r in t.to_pylist()) == parsed(acts)
    n = pq.read_table(tmp_path / "pq" / "neurons.parquet").to_pylist()
    assert [tuple(r.values()) for r in n] == neurons


def _rich_atlas(db, model_dir) -> list[str]:
    """An atlas holding every kind of data OpenAI's files (with the export's extras) carry:
    records of every category, moments and quantile boundaries, explanations of several
    sources (two from OpenAI, one by an LLM with provenance), scores by two scorers, and the
    model in meta. Returns its neuron ids."""
    from neuronatlas.store import llm as store_llm
    from neuronatlas.store.search import rebuild_token_index

    rec = [Record([" the", " cat", " sat"], [0.1, 7.25, None]), Record([" a", " dog"], [0.0, 3.5])]
    low = Record([" on", " the", " mat"], [0.01, -0.02, 0.03])
    ids = []
    with AtlasWriter(db) as w:
        w.set_meta(
            {
                "model_id": "tiny-gpt2",
                "model_path": str(model_dir),
                "n_layers": 2,
                "d_mlp": 256,
                "bos_policy": '{"mode":"none"}',
                "embedder": "hashing-64",
            }
        )
        for layer, neuron in [(0, 3), (1, 5), (1, 7)]:
            w.write_neurons(
                [
                    prepare(
                        NeuronData(
                            layer,
                            neuron,
                            "scrape",
                            {
                                "top": rec,
                                "random": [low],
                                "quantile_0": [low],
                                "quantile_1": [],
                                "quantile_2": [rec[1]],
                            },
                            mean=0.01 * neuron,
                            variance=0.5,
                            skewness=3.25,
                            kurtosis=None,
                            quantile_boundaries=[0.5, 2.0],
                            explanations=[Explanation(" cats", 0.5, 0.25, 0.1)],
                            explanation_source="top-tokens",
                        )
                    )
                ]
            )
            nid = f"L{layer:02d}N{neuron:04d}"
            ids.append(nid)
            w.write_explanations(
                nid, "openai", [(" animals", 0.9, None, 0.1), (" pets", 0.2, None, None)]
            )
            w.write_explanations(nid, "n2g", [(" cat|dog", 0.7, None, None)])
            eid = store_llm.write_llm_explanation(
                w.conn,
                nid,
                "llm:smollm2",
                "mentions of cats",
                store_llm.Provenance(
                    model="smollm2-135m-instruct",
                    endpoint="local",
                    prompt_digest="abc123",
                    settings={"temperature": 0.0},
                    usage={"prompt_tokens": 10, "completion_tokens": 4},
                ),
                None,
            )
            expl = store_llm.explanations_of(w.conn, [nid])
            rows = [
                (e.id, "embedding", "hashing-64", 0.5 + 0.1 * i, {"n": 4}, None)
                for i, e in enumerate(expl)
            ]
            rows.append((eid, "simulation", "smollm2-135m-instruct", 0.33, {"method": "all"}, None))
            store_llm.write_scores(w.conn, rows)
        rebuild_token_index(w.conn)  # as a scrape does
    return ids


def _show(db, nid: str) -> dict:
    proc = subprocess.run(
        [*CLI, "show", nid, "--db", str(db), "--json", "--records", "50"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    page = json.loads(proc.stdout.replace(str(db), "ATLAS"))  # messages name the file
    for e in page["explanations"]:
        e.pop("id")  # row ids of the new atlas: the only field expected to differ
    return page


def test_openai_round_trip_keeps_sources_scores_records_and_the_model(tmp_path, tiny_gpt2_dir):
    first = tmp_path / "first.db"
    ids = _rich_atlas(first, tiny_gpt2_dir)
    out = tmp_path / "out"
    export_openai(first, out)
    # OpenAI's own files stay exactly OpenAI's: no key their dataclasses lack
    line = json.loads((out / "explanations" / "1" / "5.jsonl").read_text("utf-8"))
    assert set(line["scored_explanations"][0]) == {
        "dataclass_name",
        "explanation",
        "scored_simulation",
    }
    manifest = json.loads((out / "neuronatlas.json").read_text("utf-8"))
    assert manifest["meta"]["model_id"] == "tiny-gpt2" and "embedder" not in manifest["meta"]

    back = tmp_path / "back.db"
    proc = subprocess.run(
        [*CLI, "import-openai", str(out), "--db", str(back), "--silent", "--workers", "0"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    for nid in ids:
        before, after = _show(first, nid), _show(back, nid)
        assert after == before
        sources = {e["source"] for e in after["explanations"]}
        assert sources == {"openai", "n2g", "top-tokens", "llm:smollm2"}
        assert after["records"].keys() == {"top", "random", "quantile_0", "quantile_2"}
    assert _relations(back) == _relations(first)
    conn = sqlite3.connect(back)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    prov = conn.execute("SELECT model, prompt_digest, settings FROM llm_explanations").fetchall()
    assert meta["model_id"] == "tiny-gpt2" and meta["model_path"] == str(tiny_gpt2_dir)
    assert "activation_note" not in meta and "embedder" not in meta
    assert prov == [("smollm2-135m-instruct", "abc123", '{"temperature":0.0}')] * 3

    # a rerun finds every neuron imported (their records keep the source 'scrape')
    again = import_openai(ImportConfig(source=str(out), workers=0), back)
    assert (again.imported, again.already_done) == (0, 3)

    # live features run the model the manifest names
    proc = subprocess.run(
        [*CLI, "activate", " the cat", "--db", str(back), "--json", "--k", "3"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    tokens = json.loads(proc.stdout)["tokens"]
    assert tokens == [" the", " cat"]


def test_import_takes_any_model_id_and_writes_no_gpt2_note_for_it(tmp_path):
    src = write_source(tmp_path / "src", n_layers=1, n_neurons=3, broken=False)
    db = tmp_path / "a.db"
    import_openai(ImportConfig(source=str(src), model="google/gemma-3-270m", workers=0), db)
    meta = dict(sqlite3.connect(db).execute("SELECT key, value FROM meta"))
    assert meta["model_id"] == "google/gemma-3-270m"
    assert (meta["n_layers"], meta["d_mlp"]) == ("1", "3")  # from the files
    assert "activation_note" not in meta
    gpt2 = tmp_path / "b.db"
    import_openai(ImportConfig(source=str(src), model="gpt2-small", workers=0), gpt2)
    meta = dict(sqlite3.connect(gpt2).execute("SELECT key, value FROM meta"))
    assert meta["model_id"] == "gpt2" and "approximate GELU" in meta["activation_note"]


def test_extras_that_differ_from_the_openai_file_are_ignored_for_that_neuron(tmp_path, caplog):
    first = tmp_path / "first.db"
    _rich_atlas(first, tmp_path)
    out = tmp_path / "out"
    export_openai(first, out)
    side = out / "neuronatlas" / "explanations" / "0.jsonl"
    line = json.loads(side.read_text("utf-8"))
    line["explanations"][0]["text"] = " edited"
    side.write_text(json.dumps(line) + "\n", encoding="utf-8")
    back = tmp_path / "back.db"
    import_openai(ImportConfig(source=str(out), workers=0), back)
    assert "L00N0003: the explanations differ" in caplog.text
    rows = sqlite3.connect(back).execute(
        "SELECT neuron_id, group_concat(DISTINCT source) FROM explanations GROUP BY neuron_id"
    )
    sources = {nid: set(s.split(",")) for nid, s in rows}
    assert sources["L00N0003"] == {"openai"}  # as plain OpenAI files
    assert sources["L01N0005"] == {"openai", "n2g", "top-tokens", "llm:smollm2"}
