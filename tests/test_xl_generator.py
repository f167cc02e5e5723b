"""bench/gen_openai_xl.py: a small slice of the XL-sized generator goes through `import-openai`
exactly, is deterministic per neuron, and has the structure the later stages need (peaks on
the words the explanation names)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from neuronatlas.openai import ImportConfig, import_openai
from neuronatlas.store import open_reader, reader
from openai_fixtures import expected_activations, expected_neurons

ROOT = Path(__file__).resolve().parents[1]
ACTS = "collated-activations"


def generate(out: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gen_openai_xl.py"), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def slice_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("xl") / "src"
    generate(out, "--layers", "2", "--neurons", "12", "--workers", "1", "--top", "6")
    return out


def test_a_slice_imports_exactly(slice_dir, db_path):
    result = import_openai(ImportConfig(source=str(slice_dir), model="gpt2-xl", workers=0), db_path)
    assert (result.imported, result.skipped) == (24, [])
    conn = sqlite3.connect(db_path)
    neurons = conn.execute("SELECT * FROM neurons ORDER BY id").fetchall()
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    conn.close()
    assert [tuple(r[:11]) for r in neurons] == expected_neurons(slice_dir, ACTS, set())
    assert (meta["n_layers"], meta["d_mlp"], meta["model_id"]) == ("48", "6400", "gpt2-xl")
    with open_reader(db_path) as rc:
        got = [(n, c, json.loads(t), v) for n, c, _, t, v in reader.iter_record_rows(rc)]
    want = expected_activations(slice_dir, ACTS, set())
    assert got == want
    assert Counter(c for _, c, _, _ in got) == {"top": 24 * 6, "random": 24 * 10}
    assert {len(t) for _, _, t, _ in got} == {64}


def test_neurons_are_deterministic_and_independent_of_the_slice(slice_dir, tmp_path):
    other = tmp_path / "other"
    generate(other, "--layers", "1", "--neurons", "5", "--workers", "1", "--top", "6")
    for kind, ext in (("explanations", "jsonl"), (ACTS, "json")):
        for n in range(5):
            a = (slice_dir / kind / "0" / f"{n}.{ext}").read_bytes()
            assert a == (other / kind / "0" / f"{n}.{ext}").read_bytes()
    changed = tmp_path / "seeded"
    generate(changed, "--layers", "1", "--neurons", "1", "--seed", "1", "--top", "6")
    first = (slice_dir / "explanations" / "0" / "0.jsonl").read_bytes()
    assert (changed / "explanations" / "0" / "0.jsonl").read_bytes() != first


def test_top_records_peak_on_what_the_explanation_names(slice_dir):
    named = texts = 0
    for path in sorted((slice_dir / ACTS).glob("*/*.json")):
        rec = json.loads(path.read_text(encoding="utf-8"))
        exp = json.loads(
            (slice_dir / "explanations" / path.parent.name / f"{path.stem}.jsonl").read_text()
        )
        text = exp["scored_explanations"][0]["explanation"].lower()
        tops = rec["most_positive_activation_records"]
        maxima = [max(r["activations"]) for r in tops]
        assert maxima == sorted(maxima, reverse=True)  # ranked by their maximum, as OpenAI's
        peaks = [r["tokens"][r["activations"].index(m)] for r, m in zip(tops, maxima, strict=True)]
        texts += 1
        named += all(p.strip().lower() in text for p in peaks)
        assert rec["mean"] is not None and rec["variance"] > 0
    # title-only explanations may not name the word; most neurons' peaks are named words
    assert named >= texts * 0.6
