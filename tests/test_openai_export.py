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
            " ORDER BY neuron_id, position"
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
    assert sorted(p.name for p in out.iterdir()) == ["collated-activations", "explanations"]
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
    a, b = _relations(db), _relations(back)
    assert a[:2] == b[:2]
    assert [r[3] for r in b[2]] == [" openai words", " n2g words"]


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
