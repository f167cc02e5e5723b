"""What to do to one neuron, and a context manager that does it inside the model.

The edit applies at the neuron's hook point (the input of the MLP's output projection, see
`models.architectures`), at every position of every forward pass while the context is open:
a leading BOS and generated tokens included, as an ablation study's hook does. Attention is
causal, so an edit can change the prediction at the positions where the neuron's value
changes and at later ones, never at earlier ones. Modes:

- `ablate`: set the activation to 0 (zero ablation). For mean ablation, clamp to the
  neuron's mean, which its page and `neuronatlas show` list.
- `clamp`: set the activation to `value`.
- `scale`: multiply the activation by `value` (0 is ablation, 1 changes nothing).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, get_args

from neuronatlas.errors import BadInput
from neuronatlas.ids import format_id
from neuronatlas.steer.records import Mode

if TYPE_CHECKING:
    from neuronatlas.models.loaded import LoadedModel

MODES: tuple[str, ...] = get_args(Mode)
# Far beyond any real activation (GELU outputs of trained models stay in the tens); larger
# values only overflow bfloat16/float16 models into inf and NaN distributions.
MAX_VALUE = 10_000.0


@dataclass(frozen=True)
class Edit:
    """A checked edit of neuron `neuron` in layer `layer`; build it with `make_edit`."""

    layer: int
    neuron: int
    mode: Mode
    value: float | None = None

    @property
    def id(self) -> str:
        return format_id(self.layer, self.neuron)


def make_edit(
    model: LoadedModel, layer: int, neuron: int, mode: str, value: float | None = None
) -> Edit:
    """An Edit, or BadInput naming what is wrong: a neuron outside the model, an unknown
    mode, a missing, non-finite or out-of-range value, or a value given to `ablate`."""
    if not (0 <= layer < model.n_layers and 0 <= neuron < model.d_mlp):
        raise BadInput(
            f"{format_id(layer, neuron)} is outside the model "
            f"({model.n_layers} layers × {model.d_mlp} neurons)"
        )
    if mode not in MODES:
        raise BadInput(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "ablate":
        if value is not None:
            raise BadInput("ablate sets the neuron to 0 and takes no value (use clamp for that)")
        return Edit(layer, neuron, "ablate")
    if value is None:
        raise BadInput(f"{mode} needs a value (e.g. {'5.0' if mode == 'clamp' else '2.0'})")
    value = float(value)
    if not math.isfinite(value) or abs(value) > MAX_VALUE:
        raise BadInput(f"{mode} value {value}: use a finite number within ±{MAX_VALUE:g}")
    return Edit(layer, neuron, mode, value)  # type: ignore[arg-type]


@contextmanager
def applied(model: LoadedModel, edit: Edit, positions: list[int] | None = None) -> Iterator[None]:
    """While open, every forward pass of `model` sees `edit` at every position, or only at
    `positions` (indices into each pass's sequence: a trace's check ablates one node)."""
    n = edit.neuron
    where: slice | list[int] = slice(None) if positions is None else list(positions)

    def hook(_module, args):
        x = args[0].clone()
        if edit.mode == "ablate":
            x[..., where, n] = 0
        elif edit.mode == "clamp":
            x[..., where, n] = edit.value
        else:
            x[..., where, n] *= edit.value
        return (x, *args[1:])

    handle = model.projection(edit.layer).register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def recorded(model: LoadedModel, layer: int, neuron: int, into: list) -> Iterator[None]:
    """While open, append the neuron's activations (float32 [batch, seq]) of each forward
    pass to `into`, changing nothing."""

    def hook(_module, args):
        into.append(args[0][..., neuron].float().clone())

    handle = model.projection(layer).register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()
