"""`neuronatlas serve` as a user runs it: a subprocess on loopback, answering over real HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest

from synthetic import build_synthetic_atlas


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = build_synthetic_atlas(
        tmp_path_factory.mktemp("serve") / "atlas.db",
        layers=2,
        per_layer=5,
        n_top=3,
        n_random=2,
        length=8,
    )
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
        # gzip on the wire for big bodies
        r = c.get("/api/neurons/L00N0001", headers={"accept-encoding": "gzip"})
        assert r.headers.get("content-encoding") == "gzip"


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
    assert r.returncode == 1 and "no such atlas" in r.stderr
