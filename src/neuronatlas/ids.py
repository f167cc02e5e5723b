"""Neuron ids: `(layer, neuron)` inside the code, `L05N0123` at the edges.

Inputs also accept the short forms `L5N123` and `5:123`. This module is the one place the id
grammar is written: the parser below, the pattern the HTTP routes validate with and the
pattern of the canonical ids in the read model's schemas are all built from the same pieces,
so what a schema promises and what the parser accepts are the same set of strings.
"""

from __future__ import annotations

import re

from neuronatlas.errors import BadNeuronId

# ASCII digits only ([0-9], not \d, which also matches other scripts' digits)
_LAYER = "[0-9]{1,3}"
_NEURON = "[0-9]{1,6}"
#: Every accepted spelling (`L05N0123`, `L5N123`, `5:123`): the routes' validation pattern.
NEURON_ID_PATTERN = f"^(?:[Ll]{_LAYER}[Nn]{_NEURON}|{_LAYER}:{_NEURON})$"
#: The canonical spelling `format_id` writes (two or more layer digits, four or more neuron's).
CANONICAL_ID_PATTERN = "^L[0-9]{2,3}N[0-9]{4,6}$"
_PARSE = re.compile(f"^(?:[Ll]({_LAYER})[Nn]({_NEURON})|({_LAYER}):({_NEURON}))$")


def format_id(layer: int, neuron: int) -> str:
    """The canonical id, zero-padded so ids sort by layer then neuron."""
    return f"L{layer:02d}N{neuron:04d}"


def parse_id(text: str) -> tuple[int, int]:
    """Parse any accepted spelling into `(layer, neuron)`; raise BadNeuronId otherwise."""
    m = _PARSE.match(text.strip())
    if not m:
        raise BadNeuronId(f"{text!r} is not a neuron id: use L05N0123, L5N123 or 5:123")
    layer, neuron = (m.group(1), m.group(2)) if m.group(1) is not None else m.group(3, 4)
    return int(layer), int(neuron)


def canonical(text: str) -> str:
    """Any accepted spelling → `L05N0123`."""
    return format_id(*parse_id(text))


def parse_layers(spec: str | None, n_layers: int | None = None) -> list[int] | None:
    """Parse a `--layers` value such as `3`, `0-5` or `0,2,4-6`; None means all layers."""
    if spec is None or spec.strip() == "":
        return None
    layers: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"--layers {spec!r}: expected e.g. 3, 0-5 or 0,2,4-6")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if hi < lo:
            raise ValueError(f"--layers {spec!r}: range {lo}-{hi} is backwards")
        layers.update(range(lo, hi + 1))
    if n_layers is not None and max(layers) >= n_layers:
        raise ValueError(f"--layers {spec!r}: the model has layers 0-{n_layers - 1}")
    return sorted(layers)
