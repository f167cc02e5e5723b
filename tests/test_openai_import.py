"""`import-openai` from local folders: exact values, broken neurons named, idempotent, resumable
after SIGKILL, layouts detected."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neuronatlas.openai import ImportConfig, import_openai, plan_import
from neuronatlas.store import open_reader, reader
from openai_fixtures import (
    BROKEN,
    as_float32,
    expected_activations,
    expected_neurons,
    write_source,
)

CLI = [sys.executable, "-c", "from neuronatlas.cli import main; main()"]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def relations(db: Path) -> tuple[list, list]:
    """The seed relations as plain SQL sees them."""
    conn = sqlite3.connect(db)
    neurons = conn.execute("SELECT * FROM neurons ORDER BY id").fetchall()
    acts = conn.execute("SELECT * FROM activations").fetchall()
    conn.close()
    return neurons, acts


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_source(tmp_path_factory.mktemp("openai") / "src")


def test_import_is_exact_names_the_broken_and_exits_3(source, db_path):
    proc = run_cli("import-openai", str(source), "--db", str(db_path), "--silent")
    assert proc.returncode == 3, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("skipped ")]
    assert len(lines) == 3
    by_id = {x.split()[1].rstrip(":"): x for x in lines}
    assert set(by_id) == set(BROKEN)
    assert "collated-activations/1/1.json" in by_id["L01N0001"]
    assert "malformed JSON" in by_id["L01N0001"] and "truncated" in by_id["L01N0001"]
    assert "explanations/1/2.jsonl" in by_id["L01N0002"] and "wrong type" in by_id["L01N0002"]
    assert "explanations/1/3.jsonl" in by_id["L01N0003"]
    assert "missing counterpart" in by_id["L01N0003"]
    assert "collated-activations/1/3.json" in by_id["L01N0003"]

    neurons, acts = relations(db_path)
    want_n = expected_neurons(source, "collated-activations", set(BROKEN))
    assert [tuple(r[:11]) for r in neurons] == want_n
    assert all(r[11] is None for r in neurons)
    want_a = expected_activations(source, "collated-activations", set(BROKEN))
    got_a = [(r[0], r[1], json.loads(r[2]), json.loads(r[3])) for r in acts]
    assert as_float32(got_a) == as_float32(want_a)  # SQL text: shortest float32 spellings
    with open_reader(db_path) as conn:  # the library reads the identical doubles
        exact = [(n, c, json.loads(t), v) for n, c, _, t, v in reader.iter_record_rows(conn)]
    assert exact == want_a
    cats = {r[1] for r in acts}
    assert {"top", "random", "quantile_0", "quantile_2"} <= cats
    # tokens are stored as compact JSON with the characters themselves
    assert any("日本" in r[2] for r in acts) and all(", " not in r[3] for r in acts)


def test_rerun_is_idempotent_and_overwrite_changes_nothing(source, db_path):
    assert run_cli("import-openai", str(source), "--db", str(db_path), "--silent").returncode == 3
    first = relations(db_path)
    conn = sqlite3.connect(db_path)
    excerpts = conn.execute("SELECT count(*) FROM excerpts").fetchone()[0]
    expl = conn.execute("SELECT id, neuron_id, position, text FROM explanations").fetchall()
    conn.close()
    again = run_cli("import-openai", str(source), "--db", str(db_path), "--silent")
    assert again.returncode == 3 and again.stderr.count("skipped ") == 3
    assert relations(db_path) == first
    forced = run_cli(
        "import-openai",
        str(source),
        "--db",
        str(db_path),
        "--silent",
        "--overwrite",
        "--workers",
        "0",
    )
    assert forced.returncode == 3
    assert relations(db_path) == first
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM excerpts").fetchone()[0] == excerpts
    assert conn.execute("SELECT id, neuron_id, position, text FROM explanations").fetchall() == expl
    runs = conn.execute("SELECT stage, status FROM runs ORDER BY id").fetchall()
    assert runs == [("import-openai", "partial")] * 3


def test_seed_layout_under_a_subfolder_with_layers_and_model(tmp_path, db_path):
    root = write_source(
        tmp_path / "seed",
        layout="seed",
        subfolder="data/gpt2-small",
        broken=False,
        n_layers=3,
        n_neurons=4,
    )
    plan = plan_import(ImportConfig(source=str(root), layers="1-2", model="gpt2-small"))
    assert "seed layout" in plan.description and "data/gpt2-small" in plan.description
    assert {f.layer for f in plan.neurons} == {1, 2}
    result = import_openai(
        ImportConfig(source=str(root), layers="1-2", model="gpt2-small", workers=1), db_path
    )
    assert (result.imported, result.skipped) == (8, [])
    neurons, _ = relations(db_path)
    folder = root / "data" / "gpt2-small"
    skip = {f"L00N{n:04d}" for n in range(4)}
    assert [tuple(r[:11]) for r in neurons] == expected_neurons(folder, "activations", skip)
    conn = sqlite3.connect(db_path)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["model_id"] == "gpt2" and meta["n_layers"] == "12" and meta["d_mlp"] == "3072"
    assert "approximate GELU" in meta["activation_note"]
    assert meta["data_source"] == str(folder.resolve())


def test_a_folder_without_the_layout_is_a_one_line_error(tmp_path, db_path):
    (tmp_path / "empty" / "explanations").mkdir(parents=True)
    proc = run_cli("import-openai", str(tmp_path / "empty"), "--db", str(db_path))
    assert proc.returncode == 1
    flat = " ".join(proc.stderr.split())  # rich may wrap the message at the terminal width
    assert "found no explanations/ beside activations/" in flat
    assert "Traceback" not in proc.stderr
    proc = run_cli("import-openai", "https://example.invalid/x", "--db", str(db_path))
    assert proc.returncode == 1 and "--model" in proc.stderr


@pytest.mark.slow
def test_sigkill_mid_import_then_rerun_equals_a_clean_import(tmp_path):
    src = write_source(
        tmp_path / "big", n_layers=2, n_neurons=1500, broken=False, nan_literal=False, n_tokens=4
    )
    clean = tmp_path / "clean.db"
    assert run_cli("import-openai", str(src), "--db", str(clean), "--silent").returncode == 0
    killed = tmp_path / "killed.db"
    proc = subprocess.Popen(
        [*CLI, "import-openai", str(src), "--db", str(killed), "--silent", "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    rows_at_kill = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if killed.exists():
                try:
                    conn = sqlite3.connect(f"file:{killed}?mode=ro", uri=True)
                    rows_at_kill = conn.execute("SELECT count(*) FROM neuron_info").fetchone()[0]
                    conn.close()
                except sqlite3.OperationalError:
                    rows_at_kill = 0
                if rows_at_kill > 0:
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert 0 < rows_at_kill < 3000
    assert run_cli("import-openai", str(src), "--db", str(killed), "--silent").returncode == 0
    assert relations(killed) == relations(clean)
    count = "SELECT count(*) FROM excerpts"
    assert (
        sqlite3.connect(killed).execute(count).fetchone()
        == sqlite3.connect(clean).execute(count).fetchone()
    )


def test_parse_names_a_file_about_another_neuron_or_with_ragged_records(tmp_path):
    from neuronatlas.openai.parse import Job, parse_chunk
    from openai_fixtures import neuron_record, simulation_results

    def files(name: str, rec: dict, res: dict) -> Job:
        a, e = tmp_path / f"{name}.json", tmp_path / f"{name}.jsonl"
        a.write_text(json.dumps(rec))
        e.write_text(json.dumps(res) + "\n")
        return Job(0, 1, str(e), str(a), str(e), str(a))

    other = files("other", neuron_record(0, 2, seed=1), simulation_results(0, 1, seed=1))
    ragged_rec = neuron_record(0, 1, seed=2)
    ragged_rec["random_sample"][0]["activations"].append(1.0)
    ragged = files("ragged", ragged_rec, simulation_results(0, 1, seed=2))
    empty = files("empty", neuron_record(0, 1, seed=3), {})
    Path(empty.explanations).write_text("")
    done, skipped = parse_chunk([other, ragged, empty])
    assert done == []
    reasons = {Path(s.files[0]).name: s.reason for s in skipped}
    assert reasons["other.json"] == "file is about L00N0002, expected L00N0001"
    assert reasons["ragged.json"].startswith("wrong shape: random record 0: 8 tokens but 9")
    assert reasons["empty.jsonl"] == "malformed JSON: empty explanations file"
