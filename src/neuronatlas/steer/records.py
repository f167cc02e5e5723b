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


class TargetChange(msgspec.Struct, frozen=True):
    """One chosen next token after the last token of the text, before and after the edit: the
    check of "turn down the neurons behind a wrong answer, then look at the answer"."""

    token: str
    token_id: int
    before: float  # probability
    after: float
    change: float  # after - before
    rank_before: int  # 1: the most likely next token
    rank_after: int


class SteerResult(msgspec.Struct, frozen=True):
    """What changing one neuron, or a group of neurons together, does to the model's
    predictions on a text.

    `neurons` lists every edited neuron (canonical ids, in the order given, each once);
    `neuron` is the first of them, the only one for a single-neuron edit. `tokens`,
    `activations`, each row of `group_activations`, `kl` and `top` are aligned: entry i is
    about the prediction made after reading token i (the distribution over token i + 1).
    `activations` is `neuron`'s own, unedited value there, `group_activations[j]` that of
    `neurons[j]`; `kl` is KL(before ‖ after) in nats; `top` holds the most likely next tokens
    before and after the edit (the union of both top-k lists), most likely first. `target`,
    when one was asked for, is that token's probability after the last token.
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
    neurons: list[str]
    group_activations: list[list[float]]
    target: TargetChange | None  # None when no target was asked for


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
