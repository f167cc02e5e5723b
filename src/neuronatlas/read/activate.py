"""The live surface (`POST /api/activate`, `Atlas.activate` / `Atlas.activations`): the model
run on a text now, joined with what the atlas stores (explanations, the N2G prediction).

The model itself is `read.live.LiveModel`; this module only puts its answers beside the
atlas's records.
"""

from __future__ import annotations

import sqlite3

from neuronatlas.read.graph import predict
from neuronatlas.read.live import LiveModel
from neuronatlas.read.views import LiveNeuron, LiveStrongest
from neuronatlas.store import browse


def live_strongest(conn: sqlite3.Connection, live: LiveModel, text: str, k: int) -> LiveStrongest:
    """The model's strongest neurons per token of `text`, with the atlas's explanations."""
    out = live.strongest(text, k)
    known = browse.summaries(conn, [n.id for top in out.top for n in top])
    for top in out.top:
        for n in top:
            found = known.get(n.id)
            n.explanation = None if found is None else found.explanation
    return out


def live_neuron(conn: sqlite3.Connection, live: LiveModel, text: str, neuron_id: str) -> LiveNeuron:
    """One stored neuron's live activation per token, and its N2G prediction when it has one."""
    nid = browse.require_neuron(conn, neuron_id)
    out = live.neuron(text, nid)
    out.n2g_prediction = predict(conn, nid, out.tokens)
    return out
