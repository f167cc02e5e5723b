"""The order in which N2G does its work: batches of randomly chosen neurons, in a random order.

Why: how long a batch takes follows the model tokens its neurons' examples need, and those vary
several-fold from neuron to neuron (bench/README.md, "A neuron bar's time left"). Cut in id
order, a batch's cost is that of 16 neighbours and where the costly batches fall is chance, so
the pace of a run's first batches need not be that of the rest. With each layer's neurons
shuffled before they are cut into batches, every batch is a random sample of its layer, its
cost an average over that many random neurons (so batches vary far less), and with the
batches themselves run in a random order, any early part of the work is a random sample of
the whole: a progress bar's pace measured on it is an unbiased estimate of the rest.

A batch still holds neurons of one layer only: every forward pass of a batch stops at that
layer (`n2g.build.build_layer`). Regrouping neurons changes which rows share a batched forward
pass, which can move activations in float32's last bits (padding, accumulation order), so a
graph's scores can differ from those of id-order batches in the last float bits (relative
1e-10 or so), as they already do with another `--batch-neurons`; the graphs themselves (nodes,
edges, trie) do not change. `order="id"` keeps id-contiguous batches run in id order.

Both shuffles are sorts on a keyed hash (BLAKE2b of `n2g:<seed>:<neuron id>`, a batch keyed by
its first neuron), not draws from a global random state: the same in every process and Python
version, and independent of anything else the run does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal, NamedTuple

from neuronatlas.errors import BadInput
from neuronatlas.ids import parse_id

NeuronOrder = Literal["random", "id"]
"""random: batches of random neurons of a layer, in a random order (the default); id: batches
cut in (layer, neuron) order and run in that order."""


class Batch(NamedTuple):
    """Neurons of one layer built together (they share every forward pass), in id order."""

    layer: int
    ids: list[str]


def _key(seed: int, neuron_id: str) -> bytes:
    return hashlib.blake2b(f"n2g:{seed}:{neuron_id}".encode(), digest_size=8).digest()


def work_batches(
    targets: Sequence[str], batch_neurons: int, seed: int, order: NeuronOrder = "random"
) -> list[Batch]:
    """`targets` (canonical ids) in batches of up to `batch_neurons` neurons of one layer.

    `order="random"` (seed = N2GSettings.seed): each layer's neurons in a seeded random order
    cut into batches, and the batches (of all layers) in a seeded random order. `order="id"`:
    each layer's neurons cut in id order, the batches in (layer, neuron) order."""
    if order not in ("random", "id"):
        raise ValueError(f"n2g order {order!r}: random or id")
    if batch_neurons < 1:
        raise BadInput(f"--batch-neurons {batch_neurons}: must be at least 1")
    by_layer: dict[int, list[str]] = {}
    for t in sorted(set(targets), key=parse_id):
        by_layer.setdefault(parse_id(t)[0], []).append(t)
    if order == "random":
        for ids in by_layer.values():
            ids.sort(key=lambda nid: _key(seed, nid))
    batches = [
        Batch(layer, sorted(ids[at : at + batch_neurons], key=parse_id))
        for layer, ids in by_layer.items()
        for at in range(0, len(ids), batch_neurons)
    ]
    if order == "random":
        batches.sort(key=lambda b: _key(seed, f"batch:{b.ids[0]}"))
    return batches
