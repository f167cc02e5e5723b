"""Downloads against a loopback HTTP server serving OpenAI-format files, with injected 404s,
500s and slow responses; the cache makes a second run request nothing."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

import pytest

from neuronatlas import atomic
from neuronatlas.openai import ImportConfig, import_openai, layout
from neuronatlas.openai import download as D
from openai_fixtures import write_source

PREFIX = "/neuron-explainer/gpt2_small_data/"
# Injected behaviour per path (relative to PREFIX).
MISSING = {"explanations/0/2.jsonl", "collated-activations/1/4.json", "explanations/1/4.jsonl"}
FLAKY = {"collated-activations/0/3.json": 2, "explanations/1/0.jsonl": 2}  # 500s before OK
SLOW = {"collated-activations/0/1.json": 0.3}  # seconds, under the timeout
HANG_ONCE = {"explanations/1/5.jsonl": 2.0}  # first answer slower than the timeout


class _Server:
    def __init__(self, root: Path):
        self.root = root
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                if not self.path.startswith(PREFIX):
                    return self._send(404, b"")
                rel = self.path[len(PREFIX) :]
                with server.lock:
                    server.hits[rel] += 1
                    n = server.hits[rel]
                if rel in SLOW:
                    time.sleep(SLOW[rel])
                if rel in HANG_ONCE and n == 1:
                    time.sleep(HANG_ONCE[rel])
                if rel in MISSING:
                    return self._send(404, b"BlobNotFound")
                if n <= FLAKY.get(rel, 0):
                    return self._send(500, b"server busy")
                path = server.root / rel
                if not path.is_file():
                    return self._send(404, b"BlobNotFound")
                self._send(200, path.read_bytes())

            def _send(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.01,), daemon=True
        )  # a short poll: shutdown() waits up to one poll interval (0.5 s by default)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/neuron-explainer/"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path, monkeypatch):
    src = write_source(tmp_path / "blob", n_layers=2, n_neurons=6, broken=False, nan_literal=False)
    monkeypatch.setitem(layout.MODELS, "tiny", layout.ModelShape("tiny", "tiny-gpt2", 2, 6))
    with _Server(src) as server:
        yield server


def _config(server: _Server, cache: Path, **kw) -> ImportConfig:
    settings = D.DownloadSettings(concurrency=4, retries=3, backoff=0.01, timeout=0.8, cache=cache)
    # the parent of gpt2_small_data/: the layout must be found by probing
    return ImportConfig(source=server.base, model="tiny", download=settings, **kw)


def _relations(db: Path) -> tuple[list, list]:
    conn = sqlite3.connect(db)
    out = (
        conn.execute("SELECT * FROM neurons ORDER BY id").fetchall(),
        conn.execute("SELECT * FROM activations").fetchall(),
    )
    conn.close()
    return out


def test_download_retries_skips_404s_and_caches(served, tmp_path):
    cache = tmp_path / "cache"
    first = import_openai(_config(served, cache, workers=1), tmp_path / "a.db")
    assert first.imported == 12 - 2
    assert {s.neuron_id for s in first.skipped} == {"L00N0002", "L01N0004"}
    both = next(s for s in first.skipped if s.neuron_id == "L01N0004")
    assert len(both.files) == 2 and all(f.startswith("http://127.0.0.1") for f in both.files)
    assert "HTTP 404" in both.reason
    assert all(served.hits[p] == 1 for p in MISSING)
    assert all(served.hits[p] == n + 1 for p, n in FLAKY.items())  # retried until it worked
    assert all(served.hits[p] == 2 for p in HANG_ONCE)  # timed out once, then retried
    # the layout probe fetched L0N0's activations into the cache before the import began
    assert first.requests == sum(served.hits.values()) - 1

    # cached where the URL says, whole files only, 404s remembered
    host = served.base.split("/")[2].replace(":", "_")
    cached = cache / host / "neuron-explainer" / "gpt2_small_data"
    assert (cached / "collated-activations" / "0" / "3.json").stat().st_size > 0
    assert (cached / "explanations" / "0" / "2.jsonl.404").exists()
    assert not list(cache.rglob("*.part"))

    before = sum(served.hits.values())
    second = import_openai(_config(served, cache), tmp_path / "b.db")  # a fresh atlas
    assert sum(served.hits.values()) == before  # zero requests: all from the cache
    assert second.requests == 0
    assert second.imported == 10 and len(second.skipped) == 2
    assert _relations(tmp_path / "a.db") == _relations(tmp_path / "b.db")
    meta = dict(sqlite3.connect(tmp_path / "a.db").execute("SELECT key, value FROM meta"))
    assert meta["model_id"] == "tiny-gpt2"
    assert meta["data_source"].endswith("/neuron-explainer/gpt2_small_data/")


def test_layers_restrict_remote_imports_and_resume_skips_done(served, tmp_path):
    cache = tmp_path / "cache"
    db = tmp_path / "a.db"
    r = import_openai(_config(served, cache, layers="1", workers=0), db)
    assert r.imported == 5 and [s.neuron_id for s in r.skipped] == ["L01N0004"]
    served.hits.clear()
    again = import_openai(_config(served, cache, workers=0), db)
    assert again.already_done == 5
    assert again.imported == 5 and {s.neuron_id for s in again.skipped} == {"L00N0002", "L01N0004"}
    assert not any(
        k.startswith(("explanations/1/", "collated-activations/1/")) for k in served.hits
    )  # layer 1 came from the cache


def test_write_is_atomic_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "x" / "1.json"

    def boom(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        D._write_atomic(target, b'{"half": ')
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_cache_path_follows_host_and_path(monkeypatch, tmp_path):
    monkeypatch.setenv("NEURONATLAS_HOME", str(tmp_path))
    url = layout.BLOB + "gpt2_small_data/explanations/3/7.jsonl"
    assert D.cache_path(url) == tmp_path.joinpath(
        "openai-cache",
        "openaipublic.blob.core.windows.net",
        "neuron-explainer",
        "gpt2_small_data",
        "explanations",
        "3",
        "7.jsonl",
    )
    assert layout.ALIASES["openai:gpt2-xl"][0].endswith("/neuron-explainer/data/")
