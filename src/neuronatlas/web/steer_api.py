"""`POST /api/steer`: a stored neuron, or a group of them, ablated, clamped or scaled in the
live model.

The request is a union on `mode`, so the schema itself says that `clamp` and `scale` need a
`value` and `ablate` takes none; it names one neuron (`neuron`) or a group (`neurons`),
exactly one of the two (a `oneOf` in the schema, checked on every request). The response is
`neuronatlas.steer.SteerResult`, whose JSON Schema is declared in /openapi.json.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from neuronatlas import steer
from neuronatlas.ids import NEURON_ID_PATTERN, format_id
from neuronatlas.store import browse
from neuronatlas.web.api import reads
from neuronatlas.web.errors import ERROR_RESPONSES

router = APIRouter(responses=ERROR_RESPONSES)
# What the neuron page's steering form may send (its input limits).
LIMITS = {
    "max_chars": steer.MAX_TEXT_CHARS,
    "max_tokens": steer.MAX_TOKENS,
    "max_value": steer.MAX_VALUE,
    "max_neurons": steer.MAX_NEURONS,
    "max_target_chars": steer.MAX_TARGET_CHARS,
}


def _json_number(value: object) -> object:
    """Only a JSON number is a count: lax parsing would also take `true` or "5", which the
    schema forbids (38.0 stays valid: JSON Schema counts it as an integer)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return value


Count = Annotated[int, BeforeValidator(_json_number)]
NeuronId = Annotated[str, StringConstraints(pattern=NEURON_ID_PATTERN, max_length=12)]
NeuronGroup = Annotated[list[NeuronId], Field(min_length=1, max_length=steer.MAX_NEURONS)]
_WHO = ("neuron", "neurons")


def _not_null(schema: dict[str, Any]) -> None:
    """The schema of an optional field without null: absent means "not given", and a sent
    null is refused (`_one_of_neuron_and_neurons`), so the schema offers only the value."""
    schema.pop("default", None)
    branches = [b for b in schema.pop("anyOf", []) if b.get("type") != "null"]
    if branches:
        schema.update(branches[0])


class _SteerBase(BaseModel):
    # the schema says "exactly one of neuron and neurons"; `_one_of_neuron_and_neurons`
    # checks it (null is no value: the schema has no null for either)
    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": [name]} for name in _WHO]})

    text: str = Field(
        min_length=1,
        max_length=steer.MAX_TEXT_CHARS,
        pattern=r"\S",
        description=f"At most {steer.MAX_TEXT_CHARS} characters and {steer.MAX_TOKENS} tokens.",
        examples=["The Eiffel Tower is in Paris"],
    )
    neuron: NeuronId | None = Field(
        None,
        json_schema_extra=_not_null,
        description="A stored neuron: L05N0123, L5N123 or 5:123 (or give `neurons`).",
        examples=["L00N0001"],
    )
    neurons: NeuronGroup | None = Field(
        None,
        json_schema_extra=_not_null,
        description=f"A group of stored neurons changed together, e.g. "
        f'["L03N0010", "L05N0042"] (at most {steer.MAX_NEURONS}; a repeated neuron counts '
        "once), instead of `neuron`.",
    )
    target: str | None = Field(
        None,
        min_length=1,
        max_length=steer.MAX_TARGET_CHARS,
        description="One token (mind a leading space): its probability and rank as the next "
        "token after the text, before and after the edit.",
        examples=[" Paris"],
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

    @model_validator(mode="before")
    @classmethod
    def _one_of_neuron_and_neurons(cls, data: Any) -> Any:
        if isinstance(data, dict):
            given = [name for name in _WHO if data.get(name) is not None]
            if len(given) != 1 or any(data.get(name, 0) is None for name in _WHO):
                raise ValueError(
                    "give exactly one of `neuron` (one id) and `neurons` (a list of ids)"
                )
        return data

    def ids(self) -> list[str]:
        """The requested neuron ids: the group, or the one neuron."""
        if self.neurons is not None:
            return list(self.neurons)
        return [] if self.neuron is None else [self.neuron]


class AblateRequest(_SteerBase):
    """Set the neurons to 0 at every position."""

    mode: Literal["ablate"]
    value: None = Field(None, description="Ablation takes no value.")


class _ValueRequest(_SteerBase):
    # strict: `false` is no number (lax parsing would take what the schema forbids)
    value: float = Field(ge=-steer.MAX_VALUE, le=steer.MAX_VALUE, allow_inf_nan=False, strict=True)


class ClampRequest(_ValueRequest):
    """Set the neurons to `value` at every position."""

    mode: Literal["clamp"]


class ScaleRequest(_ValueRequest):
    """Multiply the neurons by `value` at every position."""

    mode: Literal["scale"]


SteerRequest = Annotated[AblateRequest | ClampRequest | ScaleRequest, Field(discriminator="mode")]

_encode = msgspec.json.Encoder().encode


@router.post(
    "/api/steer",
    tags=["live"],
    summary="Ablate, clamp or scale a neuron or a group of neurons at every position: "
    "per-token KL, top-token changes, a target token's probability and greedy continuations "
    "without and with the edit",
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
    with reads(request) as conn:  # 400 / 404 before any 503
        ids = [browse.require_neuron(conn, format_id(*n)) for n in steer.parse_group(body.ids())]
    result = request.app.state.live.steer(
        body.text,
        ids,
        body.mode,
        body.value,
        k=body.k,
        new_tokens=body.new_tokens,
        target=body.target,
    )
    return Response(_encode(result), media_type="application/json")
