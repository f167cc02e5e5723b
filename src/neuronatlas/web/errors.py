"""One error shape for the whole server: `{"error": {"code", "message"}}` with a fitting status.

Typed library errors map to 4xx (or 503 for a missing model / an overlong query); validation
failures to 422; anything unexpected to 500 with the same shape. HTML pages get the same
message on an error page with the same status.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from neuronatlas.errors import (
    AtlasNotFound,
    BadInput,
    BadNeuronId,
    ModelUnavailable,
    NeuronAtlasError,
    NeuronNotFound,
    QueryTimeout,
    StageNotBuilt,
)
from neuronatlas.ids import parse_id

log = logging.getLogger(__name__)

# (status, code) per error type; the first matching class in this order wins.
STATUS: list[tuple[type[Exception], int, str]] = [
    (BadNeuronId, 400, "bad_id"),
    (NeuronNotFound, 404, "not_found"),
    (AtlasNotFound, 404, "not_found"),
    (BadInput, 400, "bad_input"),
    (StageNotBuilt, 409, "not_built"),
    (ModelUnavailable, 503, "model_unavailable"),
    (QueryTimeout, 503, "timeout"),
]
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    422: "invalid",
    503: "unavailable",
}


_ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorBody"}  # read.views.ErrorBody

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    s: {"description": d, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    for s, d in [
        (400, "Bad id or parameter"),
        (404, "Unknown neuron"),
        (409, "The atlas lacks the stage this needs"),
        (422, "Invalid request"),
        (
            503,
            "No live model (model_unavailable: start the server with --model SPEC) or a "
            "query that ran past the time limit (timeout)",
        ),
    ]
}


def wants_html(request: Request) -> bool:
    """Pages (not /api, /healthz, /openapi.json) answer errors with an HTML page."""
    path = request.url.path
    if path.startswith(("/api/", "/healthz", "/openapi", "/docs", "/static/")):
        return False
    return "text/html" in request.headers.get("accept", "")


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    if wants_html(request):
        templates = request.app.state.templates
        return templates.TemplateResponse(
            request,
            "error.html",
            {"status": status, "code": code, "message": message},
            status_code=status,
            headers=headers,
        )
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "path", "body"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _bad_neuron_id(request: Request, exc: RequestValidationError) -> str | None:
    """The parser's own message when the only fault is a neuron id in the path: a user who
    types `/neurons/L5` hears what an id looks like, as from every other entry point."""
    errors = exc.errors()
    if not errors or any(tuple(e.get("loc", ())) != ("path", "neuron_id") for e in errors):
        return None
    text = request.path_params.get("neuron_id", "")
    try:
        parse_id(text)
    except BadNeuronId as bad:
        return str(bad)
    return f"{text!r} is not a neuron id: use L05N0123, L5N123 or 5:123"


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""

    @app.exception_handler(NeuronAtlasError)
    async def _typed(request: Request, exc: NeuronAtlasError) -> Response:
        for cls, status, code in STATUS:
            if isinstance(exc, cls):
                return error_response(request, status, code, str(exc))
        return error_response(request, 400, "bad_request", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        bad_id = _bad_neuron_id(request, exc)
        if bad_id is not None:
            return error_response(request, 400, "bad_id", bad_id)
        return error_response(request, 422, "invalid", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        # keep the exception's headers: a 405 carries `Allow` (the methods the path takes)
        return error_response(request, exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return error_response(
            request, 500, "internal", f"internal error ({type(exc).__name__}); see the server log"
        )
