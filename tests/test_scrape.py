"""End to end: a tiny GPT-2 with known token detectors → scrape → atlas; CLI; kill + resume."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest
from typer.testing import CliRunner

from neuronatlas.cli import app
from neuronatlas.scrape import ScrapeSettings, checkpoint_path, run_scrape
from neuronatlas.store import (
    open_reader,
    reader,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SENTENCES = [
    "The cat sat on the mat while a dog slept near the door.",
    "My dog likes long walks, but the cat prefers a warm window.",
    "Rivers carry water from mountains down to the sea.",
    "A small cat chased a moth across the garden at night.",
    "Every dog in town barked when the bell rang at noon.",
    "Numbers such as seven and eleven are prime.",
    "She fed the cat, then took the dog out into the rain.",
    "Old maps show roads that no longer exist.",
]


def _run_killed(settings: ScrapeSettings, db, kill_at: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", _KILLER, json.dumps(asdict(settings)), str(db), str(kill_at)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "pets.txt"
    lines = [SENTENCES[(i * 3) % len(SENTENCES)] for i in range(48)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _settings(model_dir, corpus, **kw) -> ScrapeSettings:
    base = {
        "model": str(model_dir),
        "corpus": str(corpus),
        "context": 12,
        "top_k": 5,
        "random_k": 3,
        "quantile_k": 2,
        "batch_size": 4,
        "checkpoint_every": 0,
    }
    return ScrapeSettings(**{**base, **kw})


def test_detector_neurons_get_their_token_on_top(tiny_gpt2_dir, corpus, tmp_path):
    db = tmp_path / "atlas.db"
    result = run_scrape(_settings(tiny_gpt2_dir, corpus), db)
    assert result.neurons == 2 * 256 and result.tokens == result.windows * 12 > 0
    detectors = json.loads((tiny_gpt2_dir / "detectors.json").read_text())
    conn = open_reader(db)
    for nid, info in detectors.items():
        n = reader.neuron(conn, nid)
        top = n.records["top"]
        assert len(top) == 5
        peaks = [r.max_activation for r in top]
        assert peaks == sorted(peaks, reverse=True)
        for r in top:
            assert r.tokens[r.peak_index] == info["token"]
            assert r.max_activation == pytest.approx(info["peak"], abs=5e-5)
            assert len(r.tokens) == len(r.activations) == 12
        assert len(n.records["random"]) == 3
        assert {"quantile_0", "quantile_4"} & set(n.records)
        stats = n.stats
        for key in ("mean", "variance", "skewness", "kurtosis"):
            assert math.isfinite(getattr(stats, key))
        assert stats.variance > 0 and stats.max_activation == pytest.approx(info["peak"], abs=5e-5)
        assert len(stats.quantile_boundaries) == 4
    meta = reader.meta(conn)
    assert meta["data_source"] == "scrape" and meta["architecture"] == "gpt2"
    assert meta["model_path"] == str(tiny_gpt2_dir.resolve())
    assert json.loads(meta["bos_policy"])["mode"] == "none"
    assert json.loads(meta["hook_points"]) == ["blocks.0.mlp.hook_post", "blocks.1.mlp.hook_post"]
    assert int(meta["tokens"]) == result.tokens and meta["context"] == "12"
    assert json.loads(meta["corpus"])["kind"] == "txt"
    # the seed-compatible relations
    raw = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    cats = {
        r[0] for r in raw.execute("SELECT category FROM activations WHERE neuron_id = 'L00N0003'")
    }
    assert {"top", "random"} <= cats
    assert not checkpoint_path(db).exists()


def test_layers_and_tokens_cap(tiny_gpt2_dir, corpus, tmp_path):
    db = tmp_path / "atlas.db"
    result = run_scrape(_settings(tiny_gpt2_dir, corpus, layers=[1], tokens=100), db)
    assert result.windows == 100 // 12 and result.neurons == 256
    conn = open_reader(db)
    assert reader.layers(conn) == [(1, 256)]


def test_cli_scrape_json_and_errors(tiny_gpt2_dir, corpus, tmp_path):
    db = tmp_path / "cli.db"
    out = CliRunner().invoke(
        app,
        [
            "scrape",
            "--model",
            str(tiny_gpt2_dir),
            "--corpus",
            str(corpus),
            "--db",
            str(db),
            "--context",
            "12",
            "--top-k",
            "4",
            "--random-k",
            "2",
            "--layers",
            "0-0",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["neurons"] == 256 and doc["layers"] == [0]
    bad = subprocess.run(
        [
            sys.executable,
            "-c",
            "from neuronatlas.cli import main; main()",
            "scrape",
            "--model",
            str(tiny_gpt2_dir),
            "--corpus",
            str(tmp_path / "nope.csv"),
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 1 and "--corpus" in bad.stderr and "Traceback" not in bad.stderr


_KILLER = """
import json, os, signal, sys
from neuronatlas.scrape import ScrapeSettings, run_scrape
settings = ScrapeSettings(**json.loads(sys.argv[1]))
kill_at = int(sys.argv[3])

def progress(event):
    if event.phase == "scrape" and event.done >= kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

run_scrape(settings, sys.argv[2], progress)
"""


def _dump(db):
    conn = open_reader(db)
    ids = reader.neuron_ids(conn)
    info = list(reader.iter_neuron_info(conn))
    recs = list(
        reader.iter_records(conn, ids, ["top", "random", *[f"quantile_{i}" for i in range(5)]])
    )
    return info, recs


@pytest.mark.slow
def test_killed_scrape_resumes_to_the_same_atlas(tiny_gpt2_dir, corpus, tmp_path):
    settings = _settings(tiny_gpt2_dir, corpus, checkpoint_every=2, batch_size=3)
    killed_db = tmp_path / "killed.db"
    # killed after batch 5 (15 windows); the last checkpoint holds batches 1-4 (12 windows)
    proc = _run_killed(settings, killed_db, 15)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert checkpoint_path(killed_db).exists()
    resumed = run_scrape(settings, killed_db)
    assert resumed.resumed_from == 12
    assert not checkpoint_path(killed_db).exists()
    clean_db = tmp_path / "clean.db"
    clean = run_scrape(settings, clean_db)
    assert clean.resumed_from == 0 and clean.windows == resumed.windows
    assert _dump(killed_db) == _dump(clean_db)


def test_checkpoint_of_other_settings_is_not_resumed(tiny_gpt2_dir, corpus, tmp_path):
    db = tmp_path / "atlas.db"
    settings = _settings(tiny_gpt2_dir, corpus, checkpoint_every=1, batch_size=3, layers=[0])

    class Crash(Exception):
        pass

    def crash(event):
        if event.phase == "scrape" and event.done >= 6:
            raise Crash

    with pytest.raises(Crash):
        run_scrape(settings, db, crash)
    assert checkpoint_path(db).exists()
    other = run_scrape(
        _settings(tiny_gpt2_dir, corpus, checkpoint_every=1, batch_size=3, layers=[0], seed=1), db
    )
    assert other.resumed_from == 0


@pytest.mark.slow
def test_default_model_over_default_corpus(tmp_path):
    """Gemma-3-270M (offline default) over the offline Wikipedia extracts, two layers."""
    db = tmp_path / "gemma.db"
    result = run_scrape(
        ScrapeSettings(
            model="default",
            corpus="default",
            tokens=512,
            context=32,
            layers=[0, 17],
            batch_size=8,
            checkpoint_every=0,
        ),
        db,
    )
    assert result.windows == 16 and result.neurons == 2 * 2048
    conn = open_reader(db)
    meta = reader.meta(conn)
    assert meta["model_id"] == "gemma-3-270m" and meta["architecture"] == "gemma3"
    assert json.loads(meta["bos_policy"])["mode"] == "prepend"
    n = reader.neuron(conn, "L17N0000")
    top = n.records["top"]
    assert len(top) == 16 and all(len(r.tokens) == 32 for r in top)
    assert "<bos>" not in top[0].tokens
    assert all(math.isfinite(getattr(n.stats, k)) for k in ("mean", "variance", "kurtosis"))


def _crashed_checkpoint(model_dir, corpus, db, **kw):
    """A scrape of `db` that crashed after 6 windows, leaving its checkpoint."""

    class Crash(Exception):
        pass

    def crash(event):
        if event.phase == "scrape" and event.done >= 6:
            raise Crash

    with pytest.raises(Crash):
        run_scrape(_settings(model_dir, corpus, checkpoint_every=1, batch_size=3, **kw), db, crash)
    assert checkpoint_path(db).exists()


def test_checkpoint_resumes_on_another_device_setting(tiny_gpt2_dir, corpus, tmp_path):
    db = tmp_path / "atlas.db"
    _crashed_checkpoint(tiny_gpt2_dir, corpus, db, device="cpu")
    resumed = run_scrape(_settings(tiny_gpt2_dir, corpus, batch_size=3, device="auto"), db)
    assert resumed.resumed_from == 6
    clean_db = tmp_path / "clean.db"
    run_scrape(_settings(tiny_gpt2_dir, corpus, batch_size=3, device="cpu"), clean_db)
    assert _dump(db) == _dump(clean_db)


def test_checkpoint_of_an_unknown_format_is_refused_with_what_to_do(
    tiny_gpt2_dir, corpus, tmp_path
):
    from neuronatlas.errors import StateFormatError

    db = tmp_path / "atlas.db"
    _crashed_checkpoint(tiny_gpt2_dir, corpus, db)
    ckpt = checkpoint_path(db)
    with np.load(ckpt) as z:
        arrays = dict(z)
    arrays["format_version"] = np.array(99)
    with ckpt.open("wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(StateFormatError, match=r"format 99.*Delete the file"):
        run_scrape(_settings(tiny_gpt2_dir, corpus, checkpoint_every=1, batch_size=3), db)
    assert ckpt.exists()  # the user's work is not thrown away


def test_device_choice_is_checked():
    import torch

    from neuronatlas.errors import BadInput
    from neuronatlas.models import resolve_device

    has_cuda = torch.cuda.is_available()
    assert resolve_device("auto") == ("cuda" if has_cuda else "cpu")
    assert resolve_device("CPU") == "cpu"
    for bad in ("tpu", "cuda:x", "cuda:99"):
        with pytest.raises(BadInput, match="--device"):
            resolve_device(bad)
    if not has_cuda:
        with pytest.raises(BadInput, match="no CUDA GPU here; use --device cpu"):
            resolve_device("cuda")


def test_cli_scrape_refuses_a_device_it_lacks(tiny_gpt2_dir, corpus, tmp_path):
    import torch

    from neuronatlas.errors import BadInput

    out = CliRunner().invoke(
        app,
        [
            "scrape",
            *("--model", str(tiny_gpt2_dir), "--corpus", str(corpus)),
            *("--db", str(tmp_path / "a.db"), "--context", "12", "--silent"),
            *("--device", "cuda:99"),
        ],
    )
    assert out.exit_code == 1 and isinstance(out.exception, BadInput), out.output
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert ("no CUDA GPU" if count == 0 else "only GPUs") in str(out.exception)
    assert not (tmp_path / "a.db").exists()
