"""`trace`: a prompt in, a pruned attribution graph over the model's own neurons out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from neuronatlas.errors import BadInput
from neuronatlas.ids import format_id
from neuronatlas.trace.attribute import (
    DEFAULT_BATCH,
    DEFAULT_CANDIDATES,
    DEFAULT_MAX_NODES,
    Attribution,
    attribute,
)
from neuronatlas.trace.influence import cumulative_share, prune
from neuronatlas.trace.records import TraceGraph, TraceLink, TraceNode, TraceSettings
from neuronatlas.trace.targets import token_id

if TYPE_CHECKING:
    from neuronatlas.models.loaded import LoadedModel

MAX_TEXT_CHARS = 1_000
# Each neuron row's backward pass replays the whole prompt; the JSON of a graph grows with
# positions too. 128 tokens keep a CPU trace of a small model within minutes.
MAX_TOKENS = 128
DEFAULT_NODE_THRESHOLD = 0.8
DEFAULT_EDGE_THRESHOLD = 0.98
# The gated split (docs/ATTRIBUTION.md): 1 freezes the gate phi(g) and gives all credit to
# the up projection; 0.5 shares it between the two paths. Chosen on the development
# prompts of bench/trace_bench.py (figures in bench/README.md).
DEFAULT_ALPHA = 1.0


def encode(model: LoadedModel, text: str, prepend_bos: bool) -> tuple[list[int], bool]:
    """Token ids to trace (BOS first when asked and the model has one) and whether BOS was
    put first; BadInput for an empty or too long text."""
    if not text.strip():
        raise BadInput("text is empty: give the prompt whose next token to trace")
    if len(text) > MAX_TEXT_CHARS:
        raise BadInput(f"text is {len(text)} characters; trace takes at most {MAX_TEXT_CHARS}")
    ids = [int(i) for i in model.tokenizer(text, add_special_tokens=False)["input_ids"]]
    if not ids:
        raise BadInput("the text has no tokens")
    if len(ids) > MAX_TOKENS:
        raise BadInput(f"text is {len(ids)} tokens; trace takes at most {MAX_TOKENS}: shorten it")
    if prepend_bos and model.bos_token_id is not None:
        return [model.bos_token_id, *ids], True
    return ids, False


def _check_thresholds(node_threshold: float, edge_threshold: float) -> None:
    for name, v in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
        if not 0.0 < v <= 1.0:
            raise BadInput(f"{name}={v}: a cumulative share in (0, 1], e.g. 0.8")


def trace(
    model: LoadedModel,
    text: str,
    *,
    target: str | None = None,
    prepend_bos: bool = False,
    max_nodes: int = DEFAULT_MAX_NODES,
    node_threshold: float = DEFAULT_NODE_THRESHOLD,
    edge_threshold: float = DEFAULT_EDGE_THRESHOLD,
    candidates: int = DEFAULT_CANDIDATES,
    batch_size: int = DEFAULT_BATCH,
    alpha: float = DEFAULT_ALPHA,
    progress: Callable[[int, int], None] | None = None,
) -> TraceGraph:
    """The pruned attribution graph of the next token after `text` (see docs/ATTRIBUTION.md).

    target: the next token to explain (exactly one token, e.g. " Paris"); None explains the
    likeliest tokens covering 95% of the probability (at most 10). prepend_bos: put BOS
    first as the atlas's records were taken (its neurons are never nodes). The caller holds
    the model's lock. BadInput on bad input; ModelUnavailable for an unsupported family.
    """
    _check_thresholds(node_threshold, edge_threshold)
    target_id = None if target is None else token_id(model, target)
    ids, bos = encode(model, text, prepend_bos)
    attribution = attribute(
        model,
        ids,
        target=target_id,
        bos=bos,
        max_nodes=max_nodes,
        candidates=candidates,
        batch_size=batch_size,
        alpha=alpha,
        progress=progress,
    )
    settings = TraceSettings(
        max_nodes=max_nodes,
        candidates=candidates,
        batch_size=batch_size,
        node_threshold=node_threshold,
        edge_threshold=edge_threshold,
        gated_alpha=alpha,
        prepend_bos=bos,
    )
    return to_graph(model, text, attribution, settings)


def completeness_error(a: Attribution) -> float:
    """max over computed rows of |value - incoming - constant| / max(1, |value|)."""
    r = a.computed
    if not r.any():
        return 0.0
    res = a.values[r] - a.adjacency[r].sum(axis=1) - a.constants[r]
    return float(np.max(np.abs(res) / np.maximum(1.0, np.abs(a.values[r]))))


def to_graph(model: LoadedModel, text: str, a: Attribution, settings: TraceSettings) -> TraceGraph:
    """Prune an Attribution and describe its kept nodes and edges."""
    t0 = time.perf_counter()
    n = a.n_nodes
    kinds = np.empty(n, dtype=object)
    kinds[: a.rest_offset] = "neuron"
    kinds[a.rest_offset : a.embedding_offset] = "rest"
    kinds[a.embedding_offset : a.logit_offset] = "embedding"
    kinds[a.logit_offset :] = "logit"
    weights = np.zeros(n)
    weights[a.logit_offset :] = a.logits.weights
    always = (kinds == "embedding") | (kinds == "logit")
    pruned = prune(
        a.adjacency,
        weights,
        always=always,
        sources=(kinds == "neuron") | (kinds == "rest"),
        needs_input=kinds == "neuron",
        node_threshold=settings.node_threshold,
        edge_threshold=settings.edge_threshold,
    )
    share = cumulative_share(pruned.influence)
    tokens = model.token_strings(a.token_ids)
    ids = _node_ids(a)
    neuron_idx = [i for i in range(a.rest_offset) if pruned.nodes[i]]
    ranks = {i: r + 1 for r, i in enumerate(sorted(neuron_idx, key=lambda i: -pruned.influence[i]))}
    nodes = [
        _node(model, a, i, ids[i], str(kinds[i]), tokens, pruned.influence, share, ranks)
        for i in range(n)
        if pruned.nodes[i]
    ]
    tgt, src = np.nonzero(pruned.edges)
    links = [
        TraceLink(source=ids[s], target=ids[t], weight=float(a.adjacency[t, s]))
        for t, s in zip(tgt.tolist(), src.tolist(), strict=True)
    ]
    primary = a.logits.token_ids[a.logits.primary]
    timings = {**a.timings, "prune_s": time.perf_counter() - t0}
    return TraceGraph(
        model=model.name,
        prompt=text,
        tokens=tokens,
        token_ids=a.token_ids,
        target=model.token_strings([primary])[0],
        target_id=primary,
        targets=model.token_strings(a.logits.token_ids),
        n_layers=a.n_layers,
        d_mlp=a.d_mlp,
        neuron_rows=int(a.rest_offset),
        completeness_error=completeness_error(a),
        settings=settings,
        nodes=nodes,
        links=links,
        timings={k: round(v, 4) for k, v in timings.items()},
    )


def _node_ids(a: Attribution) -> list[str]:
    """Neuronpedia node ids, in the Attribution's node order."""
    out = [f"{la}_{i}_{p}" for la, p, i in a.neurons.tolist()]
    out += [f"0_{la}_{p}" for la in range(a.n_layers) for p in range(a.n_positions)]
    out += [f"E_{t}_{p}" for p, t in enumerate(a.token_ids)]
    out += [f"{a.n_layers + 1}_{t}_{a.n_positions - 1}" for t in a.logits.token_ids]
    return out


def _node(
    model: LoadedModel,
    a: Attribution,
    i: int,
    node_id: str,
    kind: str,
    tokens: list[str],
    infl: np.ndarray,
    share: np.ndarray,
    ranks: dict[int, int],
) -> TraceNode:
    if kind == "neuron":
        layer, pos, idx = (int(x) for x in a.neurons[i])
    elif kind == "rest":
        (layer, pos), idx = divmod(i - a.rest_offset, a.n_positions), -1
    elif kind == "embedding":
        layer, pos, idx = -1, i - a.embedding_offset, -1
    else:
        layer, pos, idx = a.n_layers, a.n_positions - 1, i - a.logit_offset
    node = TraceNode(
        node_id=node_id,
        kind=kind,  # type: ignore[arg-type]
        layer=layer,
        position=pos,
        token=tokens[pos],
        value=float(a.values[i]),
        constant=float(a.constants[i]),
        influence=float(infl[i]),
        influence_share=float(share[i]),
    )
    if kind == "neuron":
        return msgspec.structs.replace(
            node,
            neuron=idx,
            neuron_id=format_id(layer, idx),
            rank=ranks[i],
            total_effect=float(a.total_effect[i]),
        )
    if kind == "embedding":
        return msgspec.structs.replace(
            node, token_id=a.token_ids[pos], total_effect=float(a.total_effect[i])
        )
    if kind == "logit":
        tid = a.logits.token_ids[idx]
        return msgspec.structs.replace(
            node,
            token=model.token_strings([tid])[0],
            token_id=tid,
            probability=a.logits.probs[idx],
            is_target=idx == a.logits.primary,
        )
    return node
