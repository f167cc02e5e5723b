"""The typed records a steering run returns, shared by the CLI's --json, the HTTP API and
`neuronatlas.Atlas`: msgspec Structs, so the JSON and its schema come from one definition."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Mode = Literal["ablate", "clamp", "scale"]


class TokenChange(msgspec.Struct, frozen=True):
    """One candidate next token at one position: its probability before and after the edit."""

    token: str
    token_id: int
    before: float
    after: float
    change: float  # after - before


class Continuation(msgspec.Struct, frozen=True):
    """A greedy continuation of the text: the new tokens and their decoded text."""

    text: str
    tokens: list[str]


class Continuations(msgspec.Struct, frozen=True):
    """The same greedy continuation without (`before`) and with (`after`) the edit."""

    before: Continuation
    after: Continuation


class SteerResult(msgspec.Struct, frozen=True):
    """What changing one neuron does to the model's predictions on a text.

    `tokens`, `activations`, `kl` and `top` are aligned: entry i is about the prediction made
    after reading token i (the distribution over token i + 1). `activations` is the neuron's
    own, unedited value there; `kl` is KL(before ‖ after) in nats; `top` holds the most likely
    next tokens before and after the edit (the union of both top-k lists), most likely first.
    """

    neuron: str
    mode: Mode
    value: float | None
    model: str
    tokens: list[str]
    activations: list[float]
    kl: list[float]
    top: list[list[TokenChange]]
    continuation: Continuations


def json_schema(struct: type = SteerResult) -> dict[str, Any]:
    """The JSON Schema of a record with its nested records inlined (no `$ref`), so it can sit
    in an OpenAPI document as is, whatever that document names its components."""
    raw = msgspec.json.schema(struct)
    defs = raw.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(raw)
