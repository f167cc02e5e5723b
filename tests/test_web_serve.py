"""`neuronatlas serve` as a user runs it: a subprocess on loopback, answering over real HTTP."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest


@pytest.fixture(scope="module")
def served(synthetic_atlas, free_port):
    db = synthetic_atlas("serve", layers=2, per_layer=5)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from neuronatlas.cli import main; main()",
            "serve",
            "--db",
            str(db),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.stderr.read()
        try:
            httpx.get(base + "/healthz", timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
    yield base, proc, db
    proc.terminate()
    proc.wait(timeout=10)


def test_serve_binds_loopback_and_says_where(served):
    base, proc, db = served
    line = proc.stderr.readline()
    assert "this machine only" in line and base + "/" in line and str(db) in line


def test_served_atlas_answers_over_http(served):
    base, _, _ = served
    with httpx.Client(base_url=base) as c:
        assert c.get("/healthz").json()["neurons"] == 10
        assert c.get("/api/neurons/L01N0004").json()["id"] == "L01N0004"
        assert c.get("/api/neurons/L01N0009").status_code == 404
        assert c.get("/api/neurons/nope").status_code == 400
        assert c.get("/api/search?q=dog&k=0").status_code == 422
        assert c.get("/api/search?q=the word").json()["results"]
        assert c.get("/openapi.json").json()["info"]["title"] == "neuronatlas"
        for page in ["/", "/neurons/L00N0001", "/search?q=word", "/docs"]:
            r = c.get(page, headers={"accept": "text/html"})
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        # served on loopback: big bodies go uncompressed (gzip would only cost CPU)
        r = c.get("/api/neurons/L00N0001", headers={"accept-encoding": "gzip"})
        assert "content-encoding" not in r.headers and r.json()["id"] == "L00N0001"


def test_compression_is_on_for_the_network(synthetic_atlas):
    """What `serve --host 0.0.0.0` (or --gzip) builds: large answers gzip-compressed, small
    ones not; without compression the same body comes as is."""
    from fastapi.testclient import TestClient

    from neuronatlas.web import create_app

    db = synthetic_atlas("gzip", layers=1, per_layer=3)
    for compress, want in ((True, "gzip"), (False, None)):
        with TestClient(create_app(db, compress=compress)) as c:
            big = c.get("/api/neurons/L00N0001?view=full", headers={"accept-encoding": "gzip"})
            small = c.get("/healthz", headers={"accept-encoding": "gzip"})
            assert big.headers.get("content-encoding") == want
            assert "content-encoding" not in small.headers
            assert big.json()["id"] == "L00N0001"


def test_serve_refuses_a_missing_atlas(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "from neuronatlas.cli import main; main()",
            "serve",
            "--db",
            str(tmp_path / "none.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2 and "no such atlas" in r.stderr  # 2: not a usable atlas
