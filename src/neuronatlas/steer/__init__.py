"""Steering and ablation: change an MLP neuron, or a group of them, at every position and see
what the model does.

`steer(model, text, neurons, mode, value)` returns a `SteerResult`: per token of the text,
the next-token distribution before and after the edit (top tokens with both probabilities),
their KL divergence, and a greedy continuation without and with the edit; with `target=`,
one chosen next token's probability after the text. `neurons` is one id or a group (a list,
or ids separated by commas), all edited together. Modes: `ablate` (set to 0), `clamp` (set
to `value`), `scale` (multiply by `value`); see `steer.edit`.
"""

from neuronatlas.steer.edit import (
    MAX_NEURONS,
    MAX_VALUE,
    MODES,
    Edit,
    make_edit,
    make_edits,
    parse_group,
)
from neuronatlas.steer.records import (
    Continuation,
    Continuations,
    Mode,
    SteerResult,
    TargetChange,
    TokenChange,
    json_schema,
)
from neuronatlas.steer.run import (
    DEFAULT_K,
    DEFAULT_NEW_TOKENS,
    MAX_K,
    MAX_NEW_TOKENS,
    MAX_TEXT_CHARS,
    MAX_TOKENS,
    steer,
)

__all__ = [
    "DEFAULT_K",
    "DEFAULT_NEW_TOKENS",
    "MAX_K",
    "MAX_NEURONS",
    "MAX_NEW_TOKENS",
    "MAX_TEXT_CHARS",
    "MAX_TOKENS",
    "MAX_VALUE",
    "MODES",
    "Continuation",
    "Continuations",
    "Edit",
    "Mode",
    "SteerResult",
    "TargetChange",
    "TokenChange",
    "json_schema",
    "make_edit",
    "make_edits",
    "parse_group",
    "steer",
]
