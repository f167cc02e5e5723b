"""Steering and ablation: change one MLP neuron at every position and see what the model does.

`steer(model, text, neuron_id, mode, value)` returns a `SteerResult`: per token of the text,
the next-token distribution before and after the edit (top tokens with both probabilities),
their KL divergence, and a greedy continuation without and with the edit. Modes: `ablate`
(set to 0), `clamp` (set to `value`), `scale` (multiply by `value`); see `steer.edit`.
"""

from neuronatlas.steer.edit import MAX_VALUE, MODES, Edit, make_edit
from neuronatlas.steer.records import (
    Continuation,
    Continuations,
    Mode,
    SteerResult,
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
    "TokenChange",
    "json_schema",
    "make_edit",
    "steer",
]
