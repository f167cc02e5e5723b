"""What to do to a neuron or a group of neurons, and a context manager that does it inside
the model.

An edit applies at the neuron's hook point (the input of the MLP's output projection, see
`models.architectures`), at every position of every forward pass while the context is open:
a leading BOS and generated tokens included, as an ablation study's hook does. Attention is
causal, so an edit can change the prediction at the positions where the neuron's value
changes and at later ones, never at earlier ones. Modes:

- `ablate`: set the activation to 0 (zero ablation). For mean ablation, clamp to the
  neuron's mean, which its page and `neuronatlas show` list.
- `clamp`: set the activation to `value`.
- `scale`: multiply the activation by `value` (0 is ablation, 1 changes nothing).

A group (the neurons an attribution graph found, say) is one `Edit` per neuron, all with the
same mode and value; `applied` installs one hook per layer that edits that layer's neurons
together with one indexed write, so a group of 256 neurons costs no more hooks than the
model has layers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, get_args

from neuronatlas.errors import BadInput
from neuronatlas.ids import format_id, parse_id
from neuronatlas.steer.records import Mode

if TYPE_CHECKING:
    import torch

    from neuronatlas.models.loaded import LoadedModel

MODES: tuple[str, ...] = get_args(Mode)
# Far beyond any real activation (GELU outputs of trained models stay in the tens); larger
# values only overflow bfloat16/float16 models into inf and NaN distributions.
MAX_VALUE = 10_000.0
# A group edit is one indexed write per layer, so its cost barely depends on its size; the
# cap keeps requests and the per-neuron activations of a result bounded.
MAX_NEURONS = 256


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
            f"{format_id(layer, neuron)} is outside the model: layers 0-{model.n_layers - 1}, "
            f"neurons 0-{model.d_mlp - 1} ({model.n_layers} layers × {model.d_mlp} neurons)"
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


def parse_group(neuron_ids: str | Iterable[str]) -> list[tuple[int, int]]:
    """(layer, neuron) of each id, in the order given, a repeated neuron kept once (`L5N123`
    and `L05N0123` are the same neuron). A string may hold several ids separated by commas.
    BadNeuronId for a malformed id; BadInput for no ids or more than MAX_NEURONS."""
    items = neuron_ids.split(",") if isinstance(neuron_ids, str) else list(neuron_ids)
    if not items or (len(items) == 1 and isinstance(items[0], str) and not items[0].strip()):
        raise BadInput("no neuron given: name at least one, e.g. L05N0123 or L03N0010,L05N0042")
    if len(items) > MAX_NEURONS:
        raise BadInput(
            f"{len(items)} neurons: steering takes at most {MAX_NEURONS} at once; split the group"
        )
    parsed: dict[tuple[int, int], None] = {}
    for item in items:
        if not isinstance(item, str):
            raise BadInput(f"{item!r} is not a neuron id: use L05N0123, L5N123 or 5:123")
        parsed[parse_id(item)] = None
    return list(parsed)


def make_edits(
    model: LoadedModel, neuron_ids: str | Iterable[str], mode: str, value: float | None = None
) -> tuple[Edit, ...]:
    """One checked Edit per neuron of the group (see `parse_group`), all with `mode` and
    `value`; BadInput as `make_edit` says, naming the first neuron outside the model."""
    return tuple(make_edit(model, layer, n, mode, value) for layer, n in parse_group(neuron_ids))


def by_layer(edits: Iterable[Edit]) -> dict[int, dict[tuple[Mode, float | None], list[int]]]:
    """layer → (mode, value) → the neurons to edit so: what one layer's hook does."""
    out: dict[int, dict[tuple[Mode, float | None], list[int]]] = {}
    for e in edits:
        out.setdefault(e.layer, {}).setdefault((e.mode, e.value), []).append(e.neuron)
    return out


def _layer_hook(
    plan: dict[tuple[Mode, float | None], list[int]], positions: Sequence[int] | None = None
):
    """The forward pre-hook of one layer's output projection: every edit of that layer as
    one indexed write per (mode, value) on a copy of the neuron vector, at every position or
    only at `positions` of each pass's sequence."""
    index: dict[torch.device, list[tuple[Mode, float | None, torch.Tensor]]] = {}

    def hook(_module, args):
        import torch

        x = args[0].clone()
        if x.device not in index:  # built once per device, not once per forward pass
            index[x.device] = [
                (mode, value, torch.tensor(ns, device=x.device))
                for (mode, value), ns in plan.items()
            ]
        where = None if positions is None else torch.tensor(list(positions), device=x.device)
        part = x if where is None else x[..., where, :]  # a copy of those positions' rows
        for mode, value, idx in index[x.device]:
            if mode == "ablate":
                part[..., idx] = 0
            elif mode == "clamp":
                part[..., idx] = value
            else:
                part[..., idx] = part[..., idx] * value
        if where is not None:
            x[..., where, :] = part
        return (x, *args[1:])

    return hook


@contextmanager
def applied(
    model: LoadedModel, edits: Edit | Sequence[Edit], positions: Sequence[int] | None = None
) -> Iterator[None]:
    """While open, every forward pass of `model` sees every edit at every position (or only
    at `positions`: a trace's check ablates one node at its own position): one hook per
    layer that has edits, whatever the number of neurons."""
    group = [edits] if isinstance(edits, Edit) else list(edits)
    handles = [
        model.projection(layer).register_forward_pre_hook(_layer_hook(plan, positions))
        for layer, plan in by_layer(group).items()
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def recorded(
    model: LoadedModel, neurons: Sequence[tuple[int, int]], into: dict[int, torch.Tensor]
) -> Iterator[None]:
    """While open, keep in `into[layer]` the activations (float32 [batch, seq, n]) of that
    layer's `neurons`, in their order, from the first forward pass (the prompt's), changing
    nothing; one hook per layer."""
    per_layer: dict[int, list[int]] = {}
    for layer, n in neurons:
        per_layer.setdefault(layer, []).append(n)

    def hook_for(layer: int, ns: list[int]):
        def hook(_module, args):
            if layer not in into:
                into[layer] = args[0][..., ns].float().clone()

        return hook

    handles = [
        model.projection(layer).register_forward_pre_hook(hook_for(layer, ns))
        for layer, ns in per_layer.items()
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
