"""The explorer while its atlas is built: progress until the scrape is written, then neuron
pages and search while the later stages run, then the map; `/api/build` throughout."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from starlette.testclient import TestClient

import embed_fixtures  # noqa: F401  (registers the instant test-hashing embedder)
from neuronatlas.build_status import BuildStatus
from neuronatlas.pipeline import BuildSettings, build_atlas, stage_weight
from neuronatlas.web import create_app
from neuronatlas.web.building import BuildingApp, duration

SENTENCES = [
    "The cat sat on the mat while the dog slept by the door.",
    "A dog and a cat can live in the same house if the owners are patient.",
    "Rivers carry sediment from the mountains down to the sea over centuries.",
]
NEURON = "L00N0003"  # the tiny model's " cat" detector


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_status_weights_stages_estimates_time_left_and_reports_a_failure():
    clock = Clock()
    status = BuildStatus(["scrape", "embed", "map"], {"scrape": 6, "embed": 3, "map": 1}.get, clock)
    first = status.snapshot()
    assert first.fraction == 0 and first.remaining_s is None and not first.pages_ready
    assert [s.state for s in first.stages] == ["waiting"] * 3
    clock.t = 1.0
    status("scrape", 0.0, "starting")
    clock.t = 31.0
    status("scrape", 0.5, "1,024/2,048 windows")
    mid = status.snapshot()
    assert mid.fraction == pytest.approx(0.3) and mid.current == "scrape"
    assert mid.remaining_s == pytest.approx(31.0 * 0.7 / 0.3, rel=1e-3)
    assert mid.stages[0].seconds == 30.0 and mid.stages[0].detail == "1,024/2,048 windows"
    clock.t = 61.0
    status("scrape", 1.0, "done")
    status("embed", 0.0, "starting")
    ready = status.snapshot()
    assert ready.pages_ready and not ready.map_ready and ready.current == "embed"
    status.finish(RuntimeError("out of memory"))
    failed = status.snapshot()
    assert failed.done and failed.error == "RuntimeError: out of memory"
    assert [s.state for s in failed.stages] == ["done", "failed", "waiting"]
    assert not failed.map_ready and failed.remaining_s is None


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (4.4, 65, 3725)] == ["4 s", "1 min 05 s", "1 h 02 min"]


@pytest.mark.slow  # a real scrape of the tiny model and UMAP's first fit
def test_each_part_is_served_as_soon_as_its_stage_is_written(tmp_path, tiny_gpt2_dir):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES * 20), encoding="utf-8")
    db = tmp_path / "atlas.db"
    settings = BuildSettings(
        model=str(tiny_gpt2_dir),
        corpus=str(corpus),
        tokens=2048,
        embedder="test-hashing",
        device="cpu",
        stages=("scrape", "index", "explain", "embed", "map"),
    )
    status = BuildStatus(settings.stages, lambda name: stage_weight(name, settings))
    app = BuildingApp(status, lambda: create_app(db, compress=False), db)
    seen: list[tuple[str, float, int, int, str]] = []

    with TestClient(app) as client:

        def probe(stage: str, fraction: float, detail: str) -> None:
            status(stage, fraction, detail)
            home = client.get("/")
            neuron = client.get(f"/api/neurons/{NEURON}")
            kind = "progress" if 'id="build"' in home.text else "map"
            seen.append((stage, fraction, home.status_code, neuron.status_code, kind))
            if neuron.status_code == 503:
                assert neuron.json()["error"]["code"] == "building"
            build = client.get("/api/build").json()
            assert build["current"] == (stage if fraction < 1 else None)

        build_atlas(db, settings, probe)
        status.finish()
        assert client.get("/").status_code == 200 and 'id="build"' not in client.get("/").text
        assert client.get("/api/build").json()["done"] is True

    during_scrape = [s for s in seen if s[0] == "scrape" and s[1] < 1]
    assert during_scrape and all(s[2:] == (200, 503, "progress") for s in during_scrape)
    after_scrape = [s for s in seen if s[0] in ("index", "explain", "embed")]
    assert after_scrape and all(s[3] == 200 and s[4] == "progress" for s in after_scrape)
    assert seen[-1][:2] == ("map", 1.0) and seen[-1][4] == "map"


@pytest.mark.slow  # the `demo` command end to end in its own process, on the tiny model
def test_demo_serves_while_it_builds(tmp_path, tiny_gpt2_dir, free_port):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES * 20), encoding="utf-8")
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "neuronatlas.cli",
        "demo",
        "--db",
        str(tmp_path / "atlas.db"),
        "--model",
        str(tiny_gpt2_dir),
        "--corpus",
        str(corpus),
        "--tokens",
        "2048",
        "--n2g-per-layer",
        "1",
        "--embedder",
        "all-MiniLM-L6-v2",
        "--port",
        str(port),
        "--silent",
    ]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    states = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert server.poll() is None, server.communicate()
            try:
                build = httpx.get(f"{base}/api/build", timeout=5).json()
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            states.append(build)
            if build["done"]:
                break
            time.sleep(0.2)
        assert states and states[-1]["done"] and states[-1]["error"] is None, states[-1:]
        assert any(not s["pages_ready"] for s in states)  # the server was up before the atlas
        assert httpx.get(f"{base}/api/neurons/{NEURON}", timeout=10).status_code == 200
        assert 'id="build"' not in httpx.get(f"{base}/", timeout=10).text
    finally:
        server.terminate()
        server.communicate(timeout=30)
