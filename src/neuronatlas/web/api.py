"""The JSON API (`/api/...`, `/healthz`): the twin of every page, documented at /docs.

Each route parses and bounds its parameters, borrows a read-only connection under a time
limit, and calls one function of `web.data` (the same one its page and `Atlas` use).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Annotated

import msgspec
from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from neuronatlas import __version__
from neuronatlas.errors import StageNotBuilt
from neuronatlas.ids import canonical
from neuronatlas.store import reader
from neuronatlas.store import web as store_web
from neuronatlas.web import data
from neuronatlas.web.errors import ERROR_RESPONSES
from neuronatlas.web.live import MAX_TEXT_CHARS

router = APIRouter(responses=ERROR_RESPONSES)

NeuronId = Annotated[
    str, Path(max_length=40, description="L05N0123, L5N123 or 5:123", examples=["L00N0001"])
]
K = Annotated[int, Query(ge=1, le=data.MAX_K, description="How many results (1-100).")]
Q = Annotated[str, Query(min_length=1, max_length=500, description="The query text.")]
_encode = msgspec.json.Encoder().encode


def reads(request: Request, seconds: float | None = None) -> AbstractContextManager:
    """A pooled read-only connection, interrupted after the server's time limit (for `def`
    routes, which run on FastAPI's thread pool)."""
    state = request.app.state
    return state.pool.borrow(seconds or state.settings.time_limit_s)


def loop_reads(request: Request) -> AbstractContextManager:
    """The event loop's own connection, for `async def` routes: they run one at a time on the
    loop and never await while holding it, so one connection never waits, and the thread
    pool's connections being busy with slow searches cannot stall the loop."""
    state = request.app.state
    return state.loop_pool.borrow(state.settings.time_limit_s)


# Routes declared `async` (health, navigation, tooltips) run their few index seeks on the
# event loop itself, skipping the hop to a worker thread and the GIL hand-offs it causes under
# load. Every route that may wait on something slow (the neuron page's similar neurons load
# the vector index on first use, search may load a query encoder, the map reads every neuron,
# live routes run the model) stays plain `def`, which FastAPI runs on its thread pool.


def json_bytes(value: object) -> Response:
    """msgspec-encoded JSON: several times faster than the stdlib for record-heavy bodies."""
    return Response(_encode(value), media_type="application/json")


@router.get("/healthz", tags=["meta"], summary="Liveness, size and which stages are built")
async def healthz(request: Request) -> Response:
    state = request.app.state
    now = time.monotonic()
    cached = state.health_cache
    if cached is None or now - cached[0] > 10.0:
        with loop_reads(request) as conn:
            body = {
                "ok": True,
                **store_web.counts(conn),
                "stages": store_web.finished_stages(conn),
                "model_id": reader.meta(conn).get("model_id"),
            }
        state.health_cache = cached = (now, body)
    return json_bytes({**cached[1], "version": __version__, "live_model": state.live.status()})


@router.get(
    "/api/neurons/{neuron_id}",
    tags=["neurons"],
    summary="One neuron: explanations, scores, stats, records, N2G metrics, similar",
)
def get_neuron(
    request: Request,
    neuron_id: NeuronId,
    records: Annotated[
        int, Query(ge=0, le=data.MAX_RECORDS, description="Records per category.")
    ] = 20,
) -> Response:
    with reads(request) as conn:
        return json_bytes(data.neuron_detail(conn, neuron_id, records=records))


@router.get(
    "/api/neurons/{neuron_id}/summary",
    tags=["neurons"],
    summary="A neuron's id and primary explanation (for tooltips)",
)
async def get_summary(request: Request, neuron_id: NeuronId) -> Response:
    with loop_reads(request) as conn:
        nid = store_web.require_neuron(conn, neuron_id)
        return json_bytes(store_web.summaries(conn, [nid])[nid])


@router.get(
    "/api/neurons/{neuron_id}/graph",
    tags=["neurons"],
    summary="The neuron's N2G graph: nodes, edges, metrics and an SVG drawing",
)
def get_graph(request: Request, neuron_id: NeuronId) -> Response:
    with reads(request) as conn:
        return json_bytes(data.neuron_graph(conn, neuron_id))


@router.get(
    "/api/neurons/{neuron_id}/graph.svg",
    tags=["neurons"],
    summary="The N2G graph drawing alone",
    response_class=Response,
)
def get_graph_svg(request: Request, neuron_id: NeuronId) -> Response:
    with reads(request) as conn:
        graph = data.neuron_graph(conn, neuron_id)
    if not graph.get("svg"):
        raise StageNotBuilt(f"the N2G graph of {canonical(neuron_id)} has no drawing")
    return Response(graph["svg"], media_type="image/svg+xml")


@router.get(
    "/api/neurons/{neuron_id}/logit_effects",
    tags=["live"],
    summary="Tokens the neuron's output promotes / suppresses most (needs the model)",
)
def get_logit_effects(request: Request, neuron_id: NeuronId, k: K = 10) -> Response:
    live = request.app.state.live
    with reads(request) as conn:
        nid = store_web.require_neuron(conn, neuron_id)  # 400 / 404 before any 503
    live.get()
    with reads(request, request.app.state.settings.live_time_limit_s) as conn:
        return json_bytes(data.logit_effects(conn, live, nid, k))


@router.get(
    "/api/neurons/{neuron_id}/next",
    tags=["navigation"],
    summary="The next stored neuron (by layer, then index; wraps around)",
)
async def get_next(request: Request, neuron_id: NeuronId) -> Response:
    with loop_reads(request) as conn:
        nid = store_web.require_neuron(conn, neuron_id)
        return json_bytes({"id": store_web.neighbour(conn, nid, +1)})


@router.get(
    "/api/neurons/{neuron_id}/prev",
    tags=["navigation"],
    summary="The previous stored neuron (wraps around)",
)
async def get_prev(request: Request, neuron_id: NeuronId) -> Response:
    with loop_reads(request) as conn:
        nid = store_web.require_neuron(conn, neuron_id)
        return json_bytes({"id": store_web.neighbour(conn, nid, -1)})


@router.get("/api/random", tags=["navigation"], summary="A random stored neuron")
async def get_random(request: Request) -> Response:
    with loop_reads(request) as conn:
        return json_bytes({"id": store_web.random_neuron(conn)})


@router.get("/api/search", tags=["search"], summary="Search neurons by their explanations")
def get_search(
    request: Request,
    q: Q,
    k: K = 10,
    mode: Annotated[
        data.SearchMode,
        Query(
            description="semantic (embeddings), tokens (stored records), fulltext, "
            "substring, or auto (the best this atlas has)"
        ),
    ] = "auto",
) -> Response:
    with reads(request, request.app.state.settings.search_time_limit_s) as conn:
        return json_bytes(data.search(conn, q, k, mode))


@router.get(
    "/api/tokens",
    tags=["search"],
    summary="Neurons whose stored records fire on the tokens of a text",
)
def get_tokens(request: Request, q: Q, k: K = 10) -> Response:
    with reads(request, request.app.state.settings.search_time_limit_s) as conn:
        return json_bytes(data.search(conn, q, k, "tokens"))


class ActivateRequest(BaseModel):
    """Text to run through the model live, and optionally one neuron to follow."""

    text: str = Field(
        min_length=1, max_length=MAX_TEXT_CHARS, description=f"At most {MAX_TEXT_CHARS} characters."
    )
    neuron: str | None = Field(
        None,
        max_length=40,
        description="A neuron id: its activation per token (+ N2G "
        "prediction) instead of the strongest neurons.",
    )
    k: int = Field(10, ge=1, le=data.MAX_K, description="Neurons per token (without `neuron`).")


@router.post(
    "/api/activate",
    tags=["live"],
    summary="Run the model on text: strongest neurons per token, or one neuron",
)
def post_activate(request: Request, body: Annotated[ActivateRequest, Body()]) -> Response:
    live = request.app.state.live
    if body.neuron is not None:
        with reads(request) as conn:
            store_web.require_neuron(conn, body.neuron)  # 400 / 404 before any 503
    live.get()  # load (or fail with 503) before borrowing a connection and starting its clock
    if body.neuron is None:
        # The deadline covers the forward pass too (its reads come after it): allow for it.
        with reads(request, request.app.state.settings.live_time_limit_s) as conn:
            return json_bytes(data.live_strongest(conn, live, body.text, body.k))
    with reads(request, request.app.state.settings.live_time_limit_s) as conn:
        return json_bytes(data.live_neuron(conn, live, body.text, body.neuron))


@router.get(
    "/api/map",
    tags=["map"],
    summary="Every neuron as a point, in compact columns, with cluster labels",
)
def get_map(
    request: Request,
    explanations: Annotated[
        bool | None, Query(description="Include explanation texts (default: when ≤ 60,000 points)")
    ] = None,
) -> Response:
    state = request.app.state
    key = (explanations, state.settings.db_stamp())
    cached = state.map_cache.get(key)
    if cached is None:
        with reads(request, state.settings.map_time_limit_s) as conn:
            with_text = explanations
            if with_text is None:
                with_text = store_web.counts(conn)["neurons"] <= 60_000
            cached = _encode(data.map_data(conn, with_text))
        state.map_cache.clear()
        state.map_cache[key] = cached
    return Response(cached, media_type="application/json")
