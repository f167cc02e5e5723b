"""`POST /api/steer`: one stored neuron ablated, clamped or scaled in the live model.

The request is a union on `mode`, so the schema itself says that `clamp` and `scale` need a
`value` and `ablate` takes none; the response is `neuronatlas.steer.SteerResult`, whose JSON
Schema is declared in /openapi.json.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, Field

from neuronatlas import steer
from neuronatlas.read.models import NEURON_ID_PATTERN
from neuronatlas.store import browse
from neuronatlas.web.api import reads
from neuronatlas.web.errors import ERROR_RESPONSES

router = APIRouter(responses=ERROR_RESPONSES)
# What the neuron page's steering form may send (its input limits).
LIMITS = {
    "max_chars": steer.MAX_TEXT_CHARS,
    "max_tokens": steer.MAX_TOKENS,
    "max_value": steer.MAX_VALUE,
}


def _json_number(value: object) -> object:
    """Only a JSON number is a count: lax parsing would also take `true` or "5", which the
    schema forbids (38.0 stays valid: JSON Schema counts it as an integer)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return value


Count = Annotated[int, BeforeValidator(_json_number)]


class _SteerBase(BaseModel):
    text: str = Field(
        min_length=1,
        max_length=steer.MAX_TEXT_CHARS,
        pattern=r"\S",
        description=f"At most {steer.MAX_TEXT_CHARS} characters and {steer.MAX_TOKENS} tokens.",
        examples=["The Eiffel Tower is in Paris"],
    )
    neuron: str = Field(
        pattern=NEURON_ID_PATTERN,
        max_length=12,
        description="A stored neuron: L05N0123, L5N123 or 5:123.",
        examples=["L00N0001"],
    )
    k: Count = Field(
        steer.DEFAULT_K, ge=1, le=steer.MAX_K, description="Top next tokens per position."
    )
    new_tokens: Count = Field(
        steer.DEFAULT_NEW_TOKENS,
        ge=0,
        le=steer.MAX_NEW_TOKENS,
        description="Length of the greedy continuations.",
    )


class AblateRequest(_SteerBase):
    """Set the neuron to 0 at every position."""

    mode: Literal["ablate"]
    value: None = Field(None, description="Ablation takes no value.")


class _ValueRequest(_SteerBase):
    # strict: `false` is no number (lax parsing would take what the schema forbids)
    value: float = Field(ge=-steer.MAX_VALUE, le=steer.MAX_VALUE, allow_inf_nan=False, strict=True)


class ClampRequest(_ValueRequest):
    """Set the neuron to `value` at every position."""

    mode: Literal["clamp"]


class ScaleRequest(_ValueRequest):
    """Multiply the neuron by `value` at every position."""

    mode: Literal["scale"]


SteerRequest = Annotated[AblateRequest | ClampRequest | ScaleRequest, Field(discriminator="mode")]

_encode = msgspec.json.Encoder().encode


@router.post(
    "/api/steer",
    tags=["live"],
    summary="Ablate, clamp or scale one neuron at every position: per-token KL, top-token "
    "changes and greedy continuations without and with the edit",
    response_class=Response,
    responses={
        200: {
            "description": "The comparison; `tokens`, `activations`, `kl` and `top` are "
            "aligned (entry i: the prediction after token i).",
            "content": {"application/json": {"schema": steer.json_schema(steer.SteerResult)}},
        }
    },
)
def post_steer(request: Request, body: Annotated[SteerRequest, Body()]) -> Response:
    with reads(request) as conn:
        nid = browse.require_neuron(conn, body.neuron)  # 400 / 404 before any 503
    result = request.app.state.live.steer(
        body.text, nid, body.mode, body.value, k=body.k, new_tokens=body.new_tokens
    )
    return Response(_encode(result), media_type="application/json")
