"""The HTML pages: `/` (map), `/neurons/{id}`, `/search`, and navigation redirects.

Pages are rendered on the server from the same `neuronatlas.read` functions as their JSON twins
(linked from each page), so they work without JavaScript except the map and the live box. The
neuron page renders the first view and fills in the rest with its script; `?view=full` is the
whole page rendered on the server, for readers without JavaScript.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import escape
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Route
from starlette.types import Scope

from neuronatlas.errors import BadInput, StageNotBuilt
from neuronatlas.ids import CANONICAL_ID_PATTERN, canonical
from neuronatlas.read import neuron as read_neuron
from neuronatlas.read import search as read_search
from neuronatlas.read.live import MAX_TEXT_CHARS
from neuronatlas.read.views import MEASURES, NeuronPage, SearchMode
from neuronatlas.store import browse
from neuronatlas.web import steer_api, trace_api
from neuronatlas.web.api import NeuronId, View, loop_reads, reads
from neuronatlas.web.neuron_html import neuron_main

router = APIRouter(include_in_schema=False)
#: The neuron page alone, which the app tries before every other route.
neuron_router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, context: dict, status: int = 200) -> Response:
    state = request.app.state
    base = {"atlas_name": state.settings.title, "model_id": state.settings.model_id}
    return state.templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status
    )


#: Stand-ins for what changes from one neuron page to the next, rendered once into the page's
#: shell (`_shell`); no escaping touches them.
_SLOTS = {"id": "\x00id\x00", "twin": "\x00twin\x00", "main": "\x00main\x00"}
_SLOT = re.compile("(\x00(?:id|twin|main)\x00)")


def _shell(request: Request) -> list[str]:
    """`neuron.html` rendered once per app with stand-ins for the neuron's id, its JSON twin
    and its body, cut at them: a page is then the pieces joined with its own values. Under
    Jinja, making a fresh render context and stepping through `base.html` cost more than
    the whole body drawn in Python (bench/README.md). The server's title, model and version
    never change under it, and the templates are not reloaded (`auto_reload` off)."""
    state = request.app.state
    shell: list[str] | None = getattr(state, "neuron_shell", None)
    if shell is None:
        html = state.templates.get_template("neuron.html").render(
            atlas_name=state.settings.title,
            model_id=state.settings.model_id,
            n={"id": _SLOTS["id"]},
            json_twin=_SLOTS["twin"],
            main_html=_SLOTS["main"],
        )
        shell = state.neuron_shell = _SLOT.split(html)
    return shell


def _neuron_html(request: Request, nid: str, twin: str, main: str) -> Response:
    values = {_SLOTS["id"]: nid, _SLOTS["twin"]: str(escape(twin)), _SLOTS["main"]: main}
    return HTMLResponse("".join([values.get(piece, piece) for piece in _shell(request)]))


class FirstViewRoute(Route):
    """`/neurons/{id}` as people open it (a canonical id, no query but `view=first`), as a
    plain Starlette route the app tries first: no parameter models, no dependency solving,
    ~0.1 ms less per page (bench/README.md). Every other request to the path (another
    spelling, `?view=full`, a bad parameter, another method) matches nothing here and goes to
    `neuron_page`, whose checks, redirects and error pages stay FastAPI's."""

    _canonical = re.compile(CANONICAL_ID_PATTERN)
    _queries = frozenset((b"", b"view=first"))

    def __init__(self) -> None:
        super().__init__("/neurons/{neuron_id}", _first_view_page, include_in_schema=False)
        self.methods = {"GET"}  # as `neuron_page` (FastAPI answers HEAD with 405)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.FULL and scope.get("query_string", b"") in self._queries:
            nid = child["path_params"]["neuron_id"]
            if self._canonical.match(nid) and canonical(nid) == nid:
                return match, child
        return Match.NONE, {}


async def _first_view_page(request: Request) -> Response:
    nid = request.path_params["neuron_id"]
    with loop_reads(request) as conn:
        first = read_neuron.neuron_first(conn, nid)
    return _neuron(request, first, False)


@router.get("/", response_class=HTMLResponse)
def map_page(request: Request) -> Response:
    with reads(request) as conn:
        counts = browse.counts(conn)
    return _page(request, "map.html", {"counts": counts, "json_twin": "/api/map"})


@neuron_router.get("/neurons/{neuron_id}", response_class=HTMLResponse)
async def neuron_page(
    request: Request,
    neuron_id: NeuronId,
    view: Annotated[View, Query(description="first (the default) or full.")] = "first",
) -> Response:
    """The neuron page. `view=first` (the default) renders what the JSON first view holds,
    in a few index seeks on the event loop's connection; the page's script then fetches the
    histogram, similar neurons and further records from the endpoints under `more`. Without
    JavaScript those sections link to `view=full`, which renders everything on the server
    (every category's first 50 records, the histogram, similar neurons)."""
    nid = canonical(neuron_id)
    if nid != neuron_id:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"/neurons/{nid}{query}", status_code=308)
    if view == "first":
        with loop_reads(request) as conn:
            first = read_neuron.neuron_first(conn, nid)
        return _neuron(request, first, False)

    def full() -> Response:  # every record read and rendered: off the event loop
        with reads(request) as conn:
            detail = read_neuron.neuron_detail(conn, nid, records=read_neuron.MAX_RECORDS)
        return _neuron(request, detail, True)

    return await run_in_threadpool(full)


def _neuron(request: Request, n: NeuronPage, full: bool) -> Response:
    twin = f"/api/neurons/{n.id}" + (
        f"?view=full&records={read_neuron.MAX_RECORDS}" if full else ""
    )
    main = neuron_main(
        n,
        full=full,
        page_size=read_neuron.MAX_RECORDS,
        max_text=MAX_TEXT_CHARS,
        live=request.app.state.live.status(),
        steer_limits=steer_api.LIMITS,
        trace_limits=trace_api.LIMITS,
    )
    return _neuron_html(request, n.id, twin, main)


@router.get("/neurons/{neuron_id}/next")
def next_page(request: Request, neuron_id: NeuronId) -> Response:
    with reads(request) as conn:
        nid = read_neuron.step(conn, neuron_id, +1).id
    return RedirectResponse(f"/neurons/{nid}", status_code=303)


@router.get("/neurons/{neuron_id}/prev")
def prev_page(request: Request, neuron_id: NeuronId) -> Response:
    with reads(request) as conn:
        nid = read_neuron.step(conn, neuron_id, -1).id
    return RedirectResponse(f"/neurons/{nid}", status_code=303)


@router.get("/random")
def random_page(request: Request) -> Response:
    with reads(request) as conn:
        nid = read_neuron.random_neuron(conn).id
    return RedirectResponse(f"/neurons/{nid}", status_code=303)


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    q: Annotated[str, Query(max_length=500)] = "",
    k: Annotated[int, Query(ge=1, le=read_search.MAX_K)] = 20,
    mode: SearchMode = "auto",
) -> Response:
    result, problem = None, None
    if q.strip():
        try:
            with reads(request, request.app.state.settings.search_time_limit_s) as conn:
                result = read_search.search(conn, q, k, mode)
        except (StageNotBuilt, BadInput) as exc:
            problem = str(exc)
    twin = "/api/search?" + urlencode({"q": q, "k": k, "mode": mode})
    return _page(
        request,
        "search.html",
        {
            "q": q,
            "k": k,
            "mode": mode,
            "result": result,
            "problem": problem,
            "json_twin": twin,
            "measures": MEASURES,
        },
    )
