"""Downloading OpenAI's neuron files over plain HTTPS into an on-disk cache.

Every URL maps to one cache file `$NEURONATLAS_HOME/openai-cache/<host>/<path>`. A file is
written to a temporary name and renamed into place, so a killed download never leaves a half
file that a later run would trust, and a rerun downloads nothing twice. A 404 is remembered
with an empty `<file>.404` marker (the public blob is immutable), so a rerun makes no request
at all for a fully cached source. Delete the cache folder to forget both.

Requests run on an asyncio loop with bounded concurrency; timeouts, connection errors, 429 and
5xx answers are retried with exponential backoff. `stream_neurons` runs that loop in a thread
and hands each neuron to the importer as soon as both its files are resolved, so parsing starts
with the first download rather than after the last.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import httpx

from neuronatlas.atomic import write_atomic
from neuronatlas.paths import neuronatlas_home
from neuronatlas.version import __version__

log = logging.getLogger(__name__)


def cache_root() -> Path:
    return neuronatlas_home() / "openai-cache"


def cache_path(url: str, root: Path | None = None) -> Path:
    """Where a URL's body is cached: host (port kept, `:` → `_`) then the URL path."""
    parts = urlsplit(url)
    host = parts.netloc.replace(":", "_")
    segments = [s for s in parts.path.split("/") if s not in ("", ".", "..")]
    return (root or cache_root()).joinpath(host, *segments)


@dataclass(frozen=True)
class DownloadSettings:
    """How to talk to the server."""

    concurrency: int = 16  # requests in flight at once
    retries: int = 4  # extra attempts after a timeout, connection error, 429 or 5xx
    backoff: float = 0.5  # seconds before the first retry; doubles on each further one
    timeout: float = 30.0  # seconds per request (connect, read, write, pool each)
    cache: Path | None = None  # cache folder; None = $NEURONATLAS_HOME/openai-cache


@dataclass(frozen=True)
class Fetched:
    """The outcome of one URL: a cached file, a 404, or a failure after every retry."""

    url: str
    path: str | None  # the cache file when the body is on disk
    error: str | None  # None on success; "HTTP 404" / the last failure otherwise

    @property
    def ok(self) -> bool:
        return self.path is not None


def _write_atomic(path: Path, body: bytes) -> None:
    """A cached file appears whole or not at all (no fsync: it can be downloaded again)."""
    write_atomic(path, lambda f: f.write(body), durable=False)


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


class Downloader:
    """Fetch URLs into the cache with one shared client and a concurrency bound."""

    def __init__(self, settings: DownloadSettings):
        self.settings = settings
        self.root = settings.cache or cache_root()
        self.requests = 0  # made by this downloader (cache hits make none)
        self._client: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None

    async def __aenter__(self) -> Self:
        s = self.settings
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(s.timeout),
            limits=httpx.Limits(
                max_connections=s.concurrency, max_keepalive_connections=s.concurrency
            ),
            follow_redirects=True,
            headers={"User-Agent": f"neuronatlas/{__version__}"},
        )
        self._sem = asyncio.Semaphore(s.concurrency)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._client is not None
        await self._client.aclose()

    async def fetch(self, url: str) -> Fetched:
        """The cached file for `url`, downloading it if needed."""
        path = cache_path(url, self.root)
        if path.exists():
            return Fetched(url, str(path), None)
        gone = path.with_name(path.name + ".404")
        if gone.exists():
            return Fetched(url, None, "HTTP 404 (cached)")
        assert self._client is not None and self._sem is not None
        delay = self.settings.backoff
        last = "no attempt"
        for attempt in range(self.settings.retries + 1):
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
            try:
                async with self._sem:
                    self.requests += 1
                    resp = await self._client.get(url)
            except httpx.TransportError as exc:  # timeouts, refused/reset connections
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                log.debug("%s: %s (attempt %d)", url, last, attempt + 1)
                continue
            if resp.status_code == 200:
                _write_atomic(path, resp.content)
                return Fetched(url, str(path), None)
            if resp.status_code == 404:
                _write_atomic(gone, b"")
                return Fetched(url, None, "HTTP 404")
            last = f"HTTP {resp.status_code}"
            if not _retryable(resp.status_code):
                break
            log.debug("%s: %s (attempt %d)", url, last, attempt + 1)
        return Fetched(url, None, f"{last} after {attempt + 1} attempt(s)")


@dataclass(frozen=True)
class NeuronFetch:
    """Both files of one neuron, resolved."""

    layer: int
    neuron: int
    explanations: Fetched
    activations: Fetched


async def _fetch_neuron(
    dl: Downloader, layer: int, neuron: int, urls: tuple[str, str]
) -> NeuronFetch:
    exp, act = await asyncio.gather(dl.fetch(urls[0]), dl.fetch(urls[1]))
    return NeuronFetch(layer, neuron, exp, act)


async def _stream(
    items: list[tuple[int, int, str, str]],
    settings: DownloadSettings,
    out: queue.Queue,
    stop: threading.Event,
) -> None:
    window = asyncio.Semaphore(settings.concurrency * 4)  # neurons resolved ahead of use

    async def one(dl: Downloader, item: tuple[int, int, str, str]) -> None:
        try:
            layer, neuron, exp_url, act_url = item
            out.put(await _fetch_neuron(dl, layer, neuron, (exp_url, act_url)))
        finally:
            window.release()

    async with Downloader(settings) as dl:
        tasks = set()
        for item in items:
            if stop.is_set():
                break
            await window.acquire()
            task = asyncio.create_task(one(dl, item))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        out.put(("requests", dl.requests))


class NeuronStream:
    """Neurons' files resolved by a background download thread, in completion order.

    Iterate to get `NeuronFetch` items; `requests` is the number of HTTP requests made once
    the iteration ends. `close()` stops the downloads early.
    """

    def __init__(self, items: Iterable[tuple[int, int, str, str]], settings: DownloadSettings):
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self.requests = 0
        self._error: BaseException | None = None
        work = list(items)
        self._thread = threading.Thread(
            target=self._run, args=(work, settings), name="neuronatlas-download", daemon=True
        )
        self._thread.start()

    def _run(self, work: list, settings: DownloadSettings) -> None:
        try:
            asyncio.run(_stream(work, settings, self._queue, self._stop))
        except BaseException as exc:
            self._error = exc
            self._queue.put(("error", 0))

    def __iter__(self):
        while True:
            item = self._queue.get()
            if isinstance(item, tuple):
                kind, value = item
                if kind == "error":
                    assert self._error is not None
                    raise self._error
                self.requests = value
                return
            yield item

    def close(self) -> None:
        self._stop.set()


def probe(urls: list[str], settings: DownloadSettings) -> Fetched | None:
    """The first of `urls` that exists (fetched into the cache), or None."""

    async def run() -> Fetched | None:
        async with Downloader(settings) as dl:
            for url in urls:
                got = await dl.fetch(url)
                if got.ok:
                    return got
                log.debug("probe %s: %s", url, got.error)
        return None

    return asyncio.run(run())
