"""The JSON API (`/api/...`, `/healthz`): the twin of every page, documented at /docs.

Each route parses and bounds its parameters (the bounds are in the schema: clients and
fuzzers see exactly what the server accepts), borrows a read-only connection under a time
limit, calls one function of a `neuronatlas.read` surface module (the same one its page and
`Atlas` use) and encodes the typed record it returns with msgspec. Each route names that
record in `responses=`, and `web.openapi` puts the record's msgspec schema into /openapi.json.
"""

from __future__ import annotations

import gzip
import logging
import time
from contextlib import AbstractContextManager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from neuronatlas.errors import StageNotBuilt
from neuronatlas.ids import NEURON_ID_PATTERN, canonical
from neuronatlas.read import activate as read_activate
from neuronatlas.read import graph as read_graph
from neuronatlas.read import health as read_health
from neuronatlas.read import map as read_map
from neuronatlas.read import neuron as read_neuron
from neuronatlas.read import relations as read_relations
from neuronatlas.read import search as read_search
from neuronatlas.read.live import MAX_TEXT_CHARS
from neuronatlas.read.mapbin import encode_compact, encode_points
from neuronatlas.read.views import (
    Health,
    Histogram,
    LiveNeuron,
    LiveStrongest,
    LogitEffects,
    MapClusters,
    MapData,
    NeuronGraph,
    NeuronPage,
    NeuronRef,
    NeuronSummary,
    RecordPage,
    SearchMode,
    SearchResult,
    Similar,
    encode,
)
from neuronatlas.version import __version__
from neuronatlas.web.errors import ERROR_RESPONSES
from neuronatlas.web.openapi import binary, returns, svg

router = APIRouter(responses=ERROR_RESPONSES)

NeuronId = Annotated[
    str,
    Path(
        pattern=NEURON_ID_PATTERN,
        max_length=12,
        description="L05N0123, L5N123 or 5:123",
        examples=["L00N0001"],
    ),
]
K = Annotated[int, Query(ge=1, le=read_search.MAX_K, description="How many results (1-100).")]
# At least one non-space character: an all-space query is refused by the schema, not later.
Q = Annotated[
    str, Query(min_length=1, max_length=500, pattern=r"\S", description="The query text.")
]

log = logging.getLogger(__name__)


def reads(request: Request, seconds: float | None = None) -> AbstractContextManager[Any]:
    """A pooled read-only connection, interrupted after the server's time limit (for `def`
    routes, which run on FastAPI's thread pool)."""
    state = request.app.state
    return state.pool.borrow(seconds or state.settings.time_limit_s)


def loop_reads(request: Request) -> AbstractContextManager[Any]:
    """The event loop's own connection, for `async def` routes: they run one at a time on the
    loop and never await while holding it, so one connection never waits, and the thread
    pool's connections being busy with slow searches cannot stall the loop."""
    state = request.app.state
    return state.loop_pool.borrow(state.settings.time_limit_s)


# Routes declared `async` (health, navigation, tooltips, and the neuron page once its similar
# neurons are precomputed) run their few index seeks on the event loop itself, skipping the
# hop to a worker thread and the GIL hand-offs it causes under load. Every route that may wait
# on something slow (search may load a query encoder, the map reads every neuron, live routes
# run the model) stays plain `def`, which FastAPI runs on its thread pool.


def json_bytes(value: object) -> Response:
    """msgspec-encoded JSON: several times faster than the stdlib for record-heavy bodies."""
    return Response(encode(value), media_type="application/json")


@router.get(
    "/healthz",
    tags=["meta"],
    summary="Liveness, size and which stages are built",
    responses=returns(Health),
)
async def healthz(request: Request) -> Response:
    state = request.app.state
    now = time.monotonic()
    cached = state.health_cache
    if cached is None or now - cached[0] > 10.0:
        with loop_reads(request) as conn:
            body = read_health.health(conn, __version__, state.live.status(), state.stages)
        state.health_cache = cached = (now, body)
    body = cached[1]
    body.live_model = state.live.status()
    return json_bytes(body)


View = Literal["first", "full"]


@router.get(
    "/api/neurons/{neuron_id}",
    tags=["neurons"],
    summary="One neuron: what its page shows first (view=first) or all of it (view=full)",
    description="view=first (the default) answers in a few index seeks: explanations, "
    "scores, stats, N2G metrics, navigation, the count of each record category and the first "
    f"{read_neuron.FIRST_RECORDS} records of the top category. The histogram, similar neurons "
    "and the other records are left out; `more` names the endpoint of each. view=full sends "
    "everything, as the HTML page, `neuronatlas show --json` and `Atlas.neuron` have it.",
    responses=returns(NeuronPage),
)
async def get_neuron(
    request: Request,
    neuron_id: NeuronId,
    records: Annotated[
        int | None,
        Query(
            ge=0,
            le=read_neuron.MAX_RECORDS,
            description=f"Records of the top category (view=first, default "
            f"{read_neuron.FIRST_RECORDS}) or of each category (view=full, default "
            f"{read_neuron.DEFAULT_RECORDS}).",
        ),
    ] = None,
    view: Annotated[View, Query(description="first (the default) or full.")] = "first",
) -> Response:
    if view == "first":  # index seeks and one bounded range
        n = read_neuron.FIRST_RECORDS if records is None else records
        return await answer(request, True, read_neuron.neuron_first, neuron_id, n)
    n = read_neuron.DEFAULT_RECORDS if records is None else records
    # with similar neurons precomputed every read is an index seek or range
    seeks_only = request.app.state.similar_k >= read_relations.DEFAULT_SIMILAR
    return await answer(request, seeks_only, read_neuron.neuron_detail, neuron_id, n)


async def answer(request: Request, seeks_only: bool, read: Any, *args: Any) -> Response:
    """`read(conn, *args)` encoded. When all its reads are index seeks, on the event loop's
    own connection: a few milliseconds there beat the hop to a worker thread and back.
    Otherwise (a vector index that loads on first use, a token-overlap join) on a worker
    thread, so the loop never waits on it."""
    if seeks_only:
        with loop_reads(request) as conn:
            return json_bytes(read(conn, *args))

    def on_thread() -> Response:
        with reads(request) as conn:
            return json_bytes(read(conn, *args))

    return await run_in_threadpool(on_thread)


Category = Annotated[
    str,
    Query(
        pattern=r"^[A-Za-z0-9_]+$",
        max_length=40,
        description="A record category: top, random, quantile_0, ...",
        examples=["random"],
    ),
]


@router.get(
    "/api/neurons/{neuron_id}/records",
    tags=["neurons"],
    summary="A slice of one category of the neuron's stored records",
    responses=returns(RecordPage),
)
async def get_records(
    request: Request,
    neuron_id: NeuronId,
    category: Category = "top",
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="First rank.")] = 0,
    limit: Annotated[
        int, Query(ge=1, le=read_neuron.MAX_RECORDS, description="How many records.")
    ] = read_neuron.DEFAULT_RECORDS,
) -> Response:
    with loop_reads(request) as conn:
        return json_bytes(read_neuron.neuron_records(conn, neuron_id, category, offset, limit))


@router.get(
    "/api/neurons/{neuron_id}/histogram",
    tags=["neurons"],
    summary="The histogram of every stored activation of the neuron",
    responses=returns(Histogram),
)
async def get_histogram(request: Request, neuron_id: NeuronId) -> Response:
    with loop_reads(request) as conn:
        return json_bytes(read_neuron.neuron_histogram(conn, neuron_id))


@router.get(
    "/api/neurons/{neuron_id}/similar",
    tags=["neurons"],
    summary="Neurons similar to this one, by explanation embedding and by shared peak tokens",
    responses=returns(Similar),
)
async def get_similar(request: Request, neuron_id: NeuronId, k: K = 10) -> Response:
    precomputed = k <= request.app.state.similar_k  # one range read
    return await answer(request, precomputed, read_relations.neuron_similar, neuron_id, k)


@router.get(
    "/api/neurons/{neuron_id}/summary",
    tags=["neurons"],
    summary="A neuron's id and primary explanation (for tooltips)",
    responses=returns(NeuronSummary),
)
async def get_summary(request: Request, neuron_id: NeuronId) -> Response:
    with loop_reads(request) as conn:
        return json_bytes(read_neuron.summary(conn, neuron_id))


@router.get(
    "/api/neurons/{neuron_id}/graph",
    tags=["neurons"],
    summary="The neuron's N2G graph: nodes, edges, metrics and an SVG drawing",
    responses=returns(NeuronGraph),
)
def get_graph(request: Request, neuron_id: NeuronId) -> Response:
    with reads(request) as conn:
        return json_bytes(read_graph.neuron_graph(conn, neuron_id))


@router.get(
    "/api/neurons/{neuron_id}/graph.svg",
    tags=["neurons"],
    summary="The N2G graph drawing alone",
    response_class=Response,
    responses=svg(),
)
def get_graph_svg(request: Request, neuron_id: NeuronId) -> Response:
    with reads(request) as conn:
        graph = read_graph.neuron_graph(conn, neuron_id)
    if not graph.svg:
        raise StageNotBuilt(f"the N2G graph of {canonical(neuron_id)} has no drawing")
    return Response(graph.svg, media_type="image/svg+xml")


@router.get(
    "/api/neurons/{neuron_id}/logit_effects",
    tags=["live"],
    summary="Tokens the neuron's output promotes / suppresses most (needs the model)",
    responses=returns(LogitEffects),
)
def get_logit_effects(request: Request, neuron_id: NeuronId, k: K = 10) -> Response:
    live = request.app.state.live
    with reads(request) as conn:
        read_neuron.summary(conn, neuron_id)  # 400 / 404 before any 503
    live.get()
    with reads(request, request.app.state.settings.live_time_limit_s) as conn:
        return json_bytes(read_relations.logit_effects(conn, live, neuron_id, k))


@router.get(
    "/api/neurons/{neuron_id}/next",
    tags=["navigation"],
    summary="The next stored neuron (by layer, then index; wraps around)",
    responses=returns(NeuronRef),
)
async def get_next(request: Request, neuron_id: NeuronId) -> Response:
    with loop_reads(request) as conn:
        return json_bytes(read_neuron.step(conn, neuron_id, +1))


@router.get(
    "/api/neurons/{neuron_id}/prev",
    tags=["navigation"],
    summary="The previous stored neuron (wraps around)",
    responses=returns(NeuronRef),
)
async def get_prev(request: Request, neuron_id: NeuronId) -> Response:
    with loop_reads(request) as conn:
        return json_bytes(read_neuron.step(conn, neuron_id, -1))


@router.get(
    "/api/random",
    tags=["navigation"],
    summary="A random stored neuron",
    responses=returns(NeuronRef),
)
async def get_random(request: Request) -> Response:
    with loop_reads(request) as conn:
        return json_bytes(read_neuron.random_neuron(conn))


@router.get(
    "/api/search",
    tags=["search"],
    summary="Search neurons by their explanations",
    responses=returns(SearchResult),
)
def get_search(
    request: Request,
    q: Q,
    k: K = 10,
    mode: Annotated[
        SearchMode,
        Query(
            description="semantic (embeddings), tokens (stored records), fulltext, "
            "substring, or auto (the best this atlas has)"
        ),
    ] = "auto",
) -> Response:
    with reads(request, request.app.state.settings.search_time_limit_s) as conn:
        return json_bytes(read_search.search(conn, q, k, mode))


@router.get(
    "/api/tokens",
    tags=["search"],
    summary="Neurons whose stored records fire on the tokens of a text",
    responses=returns(SearchResult),
)
def get_tokens(request: Request, q: Q, k: K = 10) -> Response:
    with reads(request, request.app.state.settings.search_time_limit_s) as conn:
        return json_bytes(read_search.search(conn, q, k, "tokens"))


class ActivateRequest(BaseModel):
    """Text to run through the model live, and optionally one neuron to follow."""

    text: str = Field(
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        pattern=r"\S",
        description=f"At most {MAX_TEXT_CHARS} characters, not all spaces.",
    )
    neuron: str | None = Field(
        None,
        pattern=NEURON_ID_PATTERN,
        max_length=12,
        description="A neuron id: its activation per token (+ N2G "
        "prediction) instead of the strongest neurons.",
    )
    k: int = Field(
        10, ge=1, le=read_search.MAX_K, description="Neurons per token (without `neuron`)."
    )


@router.post(
    "/api/activate",
    tags=["live"],
    summary="Run the model on text: strongest neurons per token, or one neuron",
    responses=returns(LiveStrongest, LiveNeuron),
)
def post_activate(request: Request, body: Annotated[ActivateRequest, Body()]) -> Response:
    live = request.app.state.live
    if body.neuron is not None:
        with reads(request) as conn:
            read_neuron.summary(conn, body.neuron)  # 400 / 404 before any 503
    live.get()  # load (or fail with 503) before borrowing a connection and starting its clock
    # The deadline covers the forward pass too (its reads come after it): allow for it.
    with reads(request, request.app.state.settings.live_time_limit_s) as conn:
        if body.neuron is None:
            return json_bytes(read_activate.live_strongest(conn, live, body.text, body.k))
        return json_bytes(read_activate.live_neuron(conn, live, body.text, body.neuron))


@router.get(
    "/api/map",
    tags=["map"],
    summary="Every neuron as a point, in compact columns, with cluster labels",
    responses=returns(MapData),
)
def get_map(
    request: Request,
    explanations: Annotated[
        bool | None, Query(description="Include explanation texts (default: when ≤ 60,000 points)")
    ] = None,
) -> Response:
    body = map_answer(
        request.app.state,
        ("json", explanations),
        lambda c: encode(read_map.map_data(c, explanations)),
    )
    return Response(body, media_type="application/json")


def _compact_points(conn: Any) -> bytes:
    return encode_compact(read_map.map_data(conn, False))


def _gzipped(raw: bytes) -> bytes:
    return gzip.compress(raw, 1, mtime=0)


def warm_map(state: Any) -> None:
    """Build what the map page asks for first (clusters, compact points, their gzip) before
    anyone asks: at GPT-2 XL's size the first read of every point took ~20 s on a busy
    machine. Run on a thread at start; a failure only means the first visitor builds it."""
    try:
        map_answer(state, ("clusters",), lambda c: encode(read_map.map_clusters(c)))
        raw = map_answer(state, ("compact",), _compact_points)
        map_answer(state, ("compact", "gzip"), lambda _: _gzipped(raw))
    except Exception:  # the route builds it again and reports any error to its caller
        log.warning("could not prepare the map in advance", exc_info=True)


def map_answer(state: Any, what: tuple[Any, ...], build: Any) -> bytes:
    """One answer of the map routes, built once per state of the atlas file (reading 307,200
    points takes seconds; answers for an older file are dropped); `state` is the app's, so
    `warm_map` can build them before any request."""
    stamp = state.settings.db_stamp()
    cached: bytes | None = state.map_cache.get((what, stamp))
    if cached is None:
        with state.pool.borrow(state.settings.map_time_limit_s) as conn:
            cached = build(conn)
        for old in [k for k in state.map_cache if k[1] != stamp]:
            del state.map_cache[old]
        state.map_cache[(what, stamp)] = cached
    return cached


@router.get(
    "/api/map/clusters",
    tags=["map"],
    summary="The map's clusters, labels and counts, without its points (small: fetch it first)",
    responses=returns(MapClusters),
)
def get_map_clusters(request: Request) -> Response:
    body = map_answer(request.app.state, ("clusters",), lambda c: encode(read_map.map_clusters(c)))
    return Response(body, media_type="application/json")


@router.get(
    "/api/map/points",
    tags=["map"],
    summary="Every neuron as a point, as little-endian typed arrays (22 bytes a point)",
    responses=binary(
        "The points: a 16-byte header (magic NAMAP, version, count, flags) then float32 x, "
        "float32 y, uint32 neuron, int32 fine cluster, int32 coarse cluster, uint16 layer, "
        "one array after the other (see neuronatlas.read.mapbin)."
    ),
)
def get_map_points(request: Request) -> Response:
    body = map_answer(
        request.app.state, ("points",), lambda c: encode_points(read_map.map_data(c, False))
    )
    return Response(body, media_type="application/octet-stream")


@router.get(
    "/api/map/points/compact",
    tags=["map"],
    summary="Every neuron as a point, 12 bytes a point, in tiles and level-of-detail order",
    responses=binary(
        "The points for drawing: a 40-byte header (magic NAMAP, version 2, count, flags, tile "
        "grid, bounding box), where each tile's points start, then one 12-byte row a point: "
        "uint16 x, uint16 y quantised to the box, uint16 fine and coarse cluster, uint32 "
        "layer << 20 | neuron; each tile's points in a random order, so any prefix of a tile "
        "is a sample of it (see neuronatlas.read.mapbin). Sent gzip-compressed to clients "
        "that accept it, compressed once per state of the atlas."
    ),
)
def get_map_points_compact(request: Request) -> Response:
    """The page's points. Built and compressed once per state of the atlas file: the
    middleware's gzip of a multi-megabyte body is seconds of CPU per request on a busy machine."""
    raw = map_answer(request.app.state, ("compact",), _compact_points)
    wants_gzip = "gzip" in request.headers.get("accept-encoding", "")
    body = (
        map_answer(request.app.state, ("compact", "gzip"), lambda _: _gzipped(raw))
        if wants_gzip
        else raw
    )
    # a set Content-Encoding (even "identity") keeps the gzip middleware off these bytes
    headers = {"Content-Encoding": "gzip" if wants_gzip else "identity", "Vary": "Accept-Encoding"}
    return Response(body, media_type="application/octet-stream", headers=headers)
