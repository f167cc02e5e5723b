"""The order in which N2G does its work: the batches of neurons in a seeded random order.

Why not id order: how long a batch takes varies several-fold (its neurons' examples need from
a few thousand to tens of thousands of model tokens), and where the costly batches fall in id
order is chance, so the pace of a run's first part need not be that of the rest
(bench/README.md, "A neuron bar's time left"). Done in a random order, any early part of the
work is a random sample of the whole, so a progress bar's pace measured on it is an unbiased
estimate of the rest, whatever the neurons' costs along the ids (or the layers) are.

What is shuffled is the order of the batches, not their make-up: a layer's neurons are cut into
batches in id order, exactly as before, and only the order in which the batches run is random.
That keeps every stored result identical to the id order: a row's activations in a batched
forward pass can differ in the last bits of float32 with the other rows of its pass, so putting
other neurons together in a batch could move a graph's scores slightly (a neuron's split is
seeded by its own id, and nothing else carries from one batch to the next).

The order is a sort on a keyed hash (BLAKE2b of `n2g:<seed>:<first neuron id of the batch>`),
not a draw from a global random state: the same in every process and Python version, and
independent of anything else the run does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal, NamedTuple

from neuronatlas.errors import BadInput
from neuronatlas.ids import parse_id

NeuronOrder = Literal["random", "id"]
"""random: batches in the seeded random order (the default); id: in (layer, neuron) order."""


class Batch(NamedTuple):
    """Neurons of one layer built together (they share every forward pass)."""

    layer: int
    ids: list[str]


def _key(seed: int, batch: Batch) -> bytes:
    return hashlib.blake2b(f"n2g:{seed}:{batch.ids[0]}".encode(), digest_size=8).digest()


def work_batches(
    targets: Sequence[str], batch_neurons: int, seed: int, order: NeuronOrder = "random"
) -> list[Batch]:
    """`targets` (canonical ids) cut into batches of up to `batch_neurons` neurons of one layer
    in id order, listed in the seeded random order (`order="random"`, seed =
    N2GSettings.seed) or in id order (`order="id"`)."""
    if order not in ("random", "id"):
        raise ValueError(f"n2g order {order!r}: random or id")
    if batch_neurons < 1:
        raise BadInput(f"--batch-neurons {batch_neurons}: must be at least 1")
    by_layer: dict[int, list[str]] = {}
    for t in sorted(set(targets), key=parse_id):
        by_layer.setdefault(parse_id(t)[0], []).append(t)
    batches = [
        Batch(layer, ids[at : at + batch_neurons])
        for layer, ids in by_layer.items()
        for at in range(0, len(ids), batch_neurons)
    ]
    if order == "random":
        batches.sort(key=lambda b: _key(seed, b))
    return batches
