"""`POST /api/trace` (the attribution graph of a prompt's next token over the model's own
neurons, annotated with the atlas's explanations and map clusters), its Neuronpedia twin
`POST /api/trace/neuronpedia`, and the `/trace` page that draws it.

The trace runs the live model like `/api/steer` (`LiveModel.trace` holds the run lock; the
route is a plain `def`, so it runs on a worker thread and never blocks the event loop). The
last few graphs are kept in memory by request, so the page's "download for Neuronpedia"
answers at once instead of tracing the same prompt twice.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from neuronatlas import trace as tr
from neuronatlas.read.views import encode
from neuronatlas.steer import MAX_TARGET_CHARS, json_schema
from neuronatlas.trace.group import annotate_from_atlas
from neuronatlas.web.api import reads
from neuronatlas.web.errors import ERROR_RESPONSES
from neuronatlas.web.steer_api import LIMITS as STEER_LIMITS
from neuronatlas.web.steer_api import Count

router = APIRouter(responses=ERROR_RESPONSES)
page_router = APIRouter(include_in_schema=False)

# A page waits for the answer: the server's default is a few hundred rows (seconds on a CPU
# for a small model), and no request may ask for more than the CLI's default.
WEB_DEFAULT_MAX_NODES = 200
WEB_MAX_NODES = tr.DEFAULT_MAX_NODES
CACHED_GRAPHS = 8
LIMITS = {
    "max_chars": tr.MAX_TEXT_CHARS,
    "max_tokens": tr.MAX_TOKENS,
    "max_nodes": WEB_MAX_NODES,
    "default_max_nodes": WEB_DEFAULT_MAX_NODES,
    "node_threshold": tr.DEFAULT_NODE_THRESHOLD,
    "edge_threshold": tr.DEFAULT_EDGE_THRESHOLD,
    "alpha": tr.DEFAULT_ALPHA,
    "max_target_chars": MAX_TARGET_CHARS,
    "max_neurons": STEER_LIMITS["max_neurons"],
}


class TraceRequest(BaseModel):
    """A prompt whose next token to explain, and how much of the graph to keep."""

    text: str = Field(
        min_length=1,
        max_length=tr.MAX_TEXT_CHARS,
        pattern=r"\S",
        description=f"The prompt: at most {tr.MAX_TEXT_CHARS} characters and "
        f"{tr.MAX_TOKENS} tokens.",
        examples=["We flew from Rome to Paris"],
    )
    target: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_TARGET_CHARS,
        description="The next token to explain, exactly one token (mind a leading space). "
        "Absent or null: the likeliest next tokens covering 95% of the probability (at most "
        "10), each weighted by its probability; the first is the main target.",
        examples=[" France"],
    )
    max_nodes: Count = Field(
        WEB_DEFAULT_MAX_NODES,
        ge=0,
        le=WEB_MAX_NODES,
        description="Neuron rows to compute (the most influential candidates first).",
    )
    node_threshold: float = Field(
        tr.DEFAULT_NODE_THRESHOLD,
        gt=0.0,
        le=1.0,
        allow_inf_nan=False,
        strict=True,
        description="Keep the nodes that make up this cumulative share of the influence.",
    )
    edge_threshold: float = Field(
        tr.DEFAULT_EDGE_THRESHOLD,
        gt=0.0,
        le=1.0,
        allow_inf_nan=False,
        strict=True,
        description="Keep the edges that make up this cumulative share of the influence.",
    )
    alpha: float = Field(
        tr.DEFAULT_ALPHA,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        strict=True,
        description="Gated MLPs (Gemma, Llama): the share of a neuron's credit given to its "
        "up projection, the rest to its gate (1: the gate is frozen). Ignored by GPT-2.",
    )
    group: Literal["cluster"] | None = Field(
        None,
        description='"cluster": one supernode [label, node_id, ...] per map cluster holding '
        "at least two nodes (none without a map); null: no supernodes.",
    )

    def key(self) -> tuple[Any, ...]:
        return (
            self.text,
            self.target,
            self.max_nodes,
            self.node_threshold,
            self.edge_threshold,
            self.alpha,
            self.group,
        )


class GraphCache:
    """The last few annotated graphs by request (and atlas file stamp), shared by threads."""

    def __init__(self, size: int = CACHED_GRAPHS) -> None:
        self.size = size
        self._graphs: OrderedDict[tuple[Any, ...], tr.TraceGraph] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> tr.TraceGraph | None:
        with self._lock:
            graph = self._graphs.get(key)
            if graph is not None:
                self._graphs.move_to_end(key)
            return graph

    def put(self, key: tuple[Any, ...], graph: tr.TraceGraph) -> None:
        with self._lock:
            self._graphs[key] = graph
            self._graphs.move_to_end(key)
            while len(self._graphs) > self.size:
                self._graphs.popitem(last=False)


def traced(request: Request, body: TraceRequest) -> tr.TraceGraph:
    """The request's graph, annotated with the atlas's explanations and clusters: traced on
    the live model, or the same request's graph from the cache."""
    state = request.app.state
    key = (*body.key(), state.settings.db_stamp())
    graph = state.trace_cache.get(key)
    if graph is not None:
        return graph
    graph = state.live.trace(
        body.text,
        target=body.target,
        max_nodes=body.max_nodes,
        node_threshold=body.node_threshold,
        edge_threshold=body.edge_threshold,
        alpha=body.alpha,
    )
    with reads(request) as conn:
        graph = annotate_from_atlas(conn, graph, body.group)
    state.trace_cache.put(key, graph)
    return graph


def _neuronpedia_schema() -> dict[str, Any]:
    doc = tr.schema()
    doc.pop("$schema", None)
    return doc


_TRACE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The pruned graph: `nodes` (neurons at positions, rest buckets, token "
        "embeddings, the explained logits) and signed `links`; `tokens` are the prompt's, "
        "aligned with node positions (docs/ATTRIBUTION.md).",
        "content": {"application/json": {"schema": json_schema(tr.TraceGraph)}},
    }
}


@router.post(
    "/api/trace",
    tags=["live"],
    summary="Attribution graph of the next token after a prompt, over the model's own MLP "
    "neurons, annotated with the atlas's explanations and map clusters",
    response_class=Response,
    responses=_TRACE_RESPONSES,
)
def post_trace(request: Request, body: Annotated[TraceRequest, Body()]) -> Response:
    return Response(encode(traced(request, body)), media_type="application/json")


@router.post(
    "/api/trace/neuronpedia",
    tags=["live"],
    summary="The same graph as the graph JSON that Neuronpedia's and circuit-tracer's viewers load",
    response_class=Response,
    responses={
        200: {
            "description": "The graph document (metadata, qParams with the supernodes, nodes, "
            "links); neurons are written as transcoder features (docs/ATTRIBUTION.md).",
            "content": {"application/json": {"schema": _neuronpedia_schema()}},
        }
    },
)
def post_trace_neuronpedia(request: Request, body: Annotated[TraceRequest, Body()]) -> Response:
    doc = tr.to_neuronpedia(traced(request, body), feature_base_url="")
    return Response(msgspec.json.encode(doc), media_type="application/json")


@page_router.get("/trace", response_class=HTMLResponse)
def trace_page(
    request: Request,
    text: Annotated[str, Query(max_length=tr.MAX_TEXT_CHARS)] = "",
    target: Annotated[str, Query(max_length=MAX_TARGET_CHARS)] = "",
    focus: Annotated[str, Query(max_length=12)] = "",
) -> Response:
    """The page: the form is filled from the query (the neuron page links here with its top
    excerpt), and the script traces it on load; the graph itself needs JavaScript."""
    state = request.app.state
    context = {
        "atlas_name": state.settings.title,
        "model_id": state.settings.model_id,
        "text": text,
        "target": target,
        "focus": focus,
        "live": state.live.status(),
        "json_twin": None,
    }
    return state.templates.TemplateResponse(request, "trace.html", context)
