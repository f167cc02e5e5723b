"""The explorer while its atlas is being built: progress first, each part as soon as it exists.

`neuronatlas demo` serves from the start. Until the scrape is written there is nothing to
read, so every page is the build's progress (stage, share done, time left) and every API call
answers 503 with the usual error body; `/api/build` gives the same progress as JSON. Once the
scrape is written the explorer proper is created and serves neuron pages, records and search
while the later stages run (each page reads the atlas anew, so their results appear as they
are written); its map page replaces the progress page when the map stage is done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import msgspec

from neuronatlas.build_status import BuildState, BuildStatus

log = logging.getLogger(__name__)

ASGIApp = Callable[..., Any]
#: How often the progress page reloads itself (it needs no JavaScript).
REFRESH_S = 3
#: Paths the progress app answers itself, whatever the build's state.
OWN_PATHS = ("/api/build", "/building")


def duration(seconds: float) -> str:
    """12 s, 3 min 05 s, 1 h 02 min: what a person reads at a glance."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class BuildingApp:
    """An ASGI app that shows the build's progress and hands over to the explorer (made by
    `make_explorer`, once) for each part as it becomes ready."""

    def __init__(self, status: BuildStatus, make_explorer: Callable[[], ASGIApp], db: Path):
        from jinja2 import Environment, FileSystemLoader, select_autoescape
        from starlette.staticfiles import StaticFiles

        self.status = status
        self._make_explorer = make_explorer
        self._explorer: ASGIApp | None = None
        self._explorer_lock = threading.Lock()
        self._db_name = str(db)
        pkg = files("neuronatlas.web")
        env = Environment(
            loader=FileSystemLoader(str(pkg / "templates")), autoescape=select_autoescape()
        )
        env.filters["duration"] = duration
        self._page = env.get_template("building.html")
        self._static = StaticFiles(directory=str(pkg / "static"))

    def explorer(self) -> ASGIApp | None:
        """The explorer, created on first use after the scrape is written (None before, or
        when it cannot open the atlas yet: the next request tries again)."""
        with self._explorer_lock:
            if self._explorer is None:
                try:
                    self._explorer = self._make_explorer()
                except Exception:  # the atlas is not readable yet: keep showing progress
                    log.warning("the explorer could not open the atlas yet", exc_info=True)
            return self._explorer

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        state = self.status.snapshot()
        path = scope.get("path", "")
        if path in OWN_PATHS:
            await self._progress(scope, send, state, 200)
            return
        if state.pages_ready and not (path == "/" and not state.map_ready):
            explorer = self.explorer()
            if explorer is not None:
                await explorer(scope, receive, send)
                return
        if path.startswith("/static/"):
            await self._static(scope, receive, send)
            return
        await self._progress(scope, send, state, 200 if path == "/" else 503)

    async def _progress(self, scope: dict, send: Callable, state: BuildState, status: int) -> None:
        """The progress as JSON (`/api/build`, or a 503 error body for other API paths) or
        as the self-refreshing page."""
        path = scope.get("path", "")
        headers = [(b"cache-control", b"no-store")]
        if status == 503:
            headers.append((b"retry-after", str(REFRESH_S).encode()))
        if path == "/api/build":
            body = msgspec.json.encode(state)
            kind = b"application/json"
        elif path.startswith("/api/") or path == "/openapi.json":
            waiting = "the scrape is written" if not state.pages_ready else "the explorer opens"
            message = (
                f"the atlas is being built ({state.fraction:.0%} done, now: "
                f"{state.current or 'starting'}); this answers once {waiting}: see /api/build"
            )
            body = msgspec.json.encode({"error": {"code": "building", "message": message}})
            kind = b"application/json"
        else:
            page = self._page.render(state=state, db_name=self._db_name, refresh_s=REFRESH_S)
            body = page.encode("utf-8")
            kind = b"text/html; charset=utf-8"
        headers += [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Callable, send: Callable) -> None:
    """Nothing to set up or tear down: the explorer opens its connections when created."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
