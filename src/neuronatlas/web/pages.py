"""The HTML pages: `/` (map), `/neurons/{id}`, `/search`, and navigation redirects.

Pages are rendered on the server from the same `neuronatlas.read` functions as their JSON twins
(linked from each page), so they work without JavaScript except the map and the live box. The
neuron page renders the first view and fills in the rest with its script; `?view=full` is the
whole page rendered on the server, for readers without JavaScript.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from neuronatlas.errors import BadInput, StageNotBuilt
from neuronatlas.ids import canonical
from neuronatlas.read import neuron as read_neuron
from neuronatlas.read import search as read_search
from neuronatlas.read.live import MAX_TEXT_CHARS
from neuronatlas.read.views import MEASURES, NeuronPage, SearchMode
from neuronatlas.store import browse
from neuronatlas.web.api import NeuronId, View, loop_reads, reads

router = APIRouter(include_in_schema=False)
#: The neuron page alone, which the app tries before every other route.
neuron_router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, context: dict, status: int = 200) -> Response:
    state = request.app.state
    base = {"atlas_name": state.settings.title, "model_id": state.settings.model_id}
    return state.templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status
    )


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
    return _page(
        request,
        "neuron.html",
        {
            "n": n,
            "full": full,
            "page_size": read_neuron.MAX_RECORDS,
            "json_twin": twin,
            "max_text": MAX_TEXT_CHARS,
            "live": request.app.state.live.status(),
        },
    )


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
