"""End to end: the `demo` command's code path on a tiny model and corpus, then a second run
that reuses every stage."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

SENTENCES = [
    "The cat sat on the mat while the dog slept by the door.",
    "A dog and a cat can live in the same house if the owners are patient.",
    "Scientists measured the temperature of the lake every morning for a year.",
    "The committee approved the budget after a long debate about the roads.",
    "My cat likes the sun; my dog likes the park and the long walks there.",
    "Rivers carry sediment from the mountains down to the sea over centuries.",
]


def _corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(SENTENCES * 12), encoding="utf-8")
    return path


def _demo(db, model_dir, corpus, *extra):
    cmd = [
        sys.executable,
        "-m",
        "neuronatlas.cli",
        "demo",
        "--db",
        str(db),
        "--model",
        str(model_dir),
        "--corpus",
        str(corpus),
        "--tokens",
        "4096",
        "--embedder",
        "all-MiniLM-L6-v2",
        "--n2g-per-layer",
        "2",
        "--no-serve",
        "--silent",
        *extra,
    ]
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return done.stderr, time.monotonic() - started


def test_demo_builds_a_complete_atlas_and_reuses_it(tmp_path, tiny_gpt2_dir):
    db = tmp_path / "atlas.db"
    corpus = _corpus(tmp_path)
    _demo(db, tiny_gpt2_dir, corpus)

    conn = sqlite3.connect(db)
    n_neurons = conn.execute("SELECT count(*) FROM neurons").fetchone()[0]
    assert n_neurons == 2 * 256
    missing = conn.execute(
        "SELECT count(*) FROM neurons n WHERE NOT EXISTS (SELECT 1 FROM activations a"
        " WHERE a.neuron_id = n.id AND a.category = 'top')"
    ).fetchone()[0]
    assert missing == 0
    # every neuron has an explanation, an embedding and a map position
    unexplained = conn.execute(
        "SELECT count(*) FROM neuron_info WHERE id NOT IN (SELECT neuron_id FROM explanations)"
    ).fetchone()[0]
    assert unexplained == 0
    embedded = conn.execute(
        "SELECT count(*) FROM neurons WHERE explanation_embedding IS NOT NULL"
    ).fetchone()[0]
    mapped = conn.execute("SELECT count(*) FROM map_points").fetchone()[0]
    assert embedded == mapped == n_neurons
    # the known cat detector got an N2G graph whose explanation leads
    text = conn.execute("SELECT explanation_text FROM neurons WHERE id = 'L00N0003'").fetchone()[0]
    assert "cat" in text
    graphs = conn.execute("SELECT count(*) FROM explanations WHERE source = 'n2g'").fetchone()[0]
    assert graphs >= 2
    # token search and excerpt full text answer from indexes the build made
    assert (
        conn.execute(
            "SELECT count(*) FROM token_index WHERE token = ' cat' AND neuron_id = 'L00N0003'"
        ).fetchone()[0]
        == 1
    )
    assert conn.execute("SELECT count(*) FROM excerpts_fts").fetchone()[0] > 0
    conn.close()

    stderr, _ = _demo(db, tiny_gpt2_dir, corpus)
    for stage in ("scrape", "index", "explain", "n2g", "embed", "map"):
        assert any(line.split()[:2] == [stage, "reused"] for line in stderr.splitlines()), stderr

    # A spent N2G time budget is not spent again: the rerun skips N2G and serves at once.
    budget = ("--n2g-per-layer", "4", "--n2g-seconds", "0")
    stderr, _ = _demo(db, tiny_gpt2_dir, corpus, *budget)
    assert "0 graphs built within 0 s" in stderr, stderr
    stderr, _ = _demo(db, tiny_gpt2_dir, corpus, *budget)
    assert "time budget spent earlier" in stderr, stderr
