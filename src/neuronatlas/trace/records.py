"""The typed result of a trace: `TraceGraph` (nodes, links, settings), a msgspec Struct that
the CLI prints, the atlas saves and the HTTP API can return as is."""

from __future__ import annotations

from typing import Literal

import msgspec

NodeKind = Literal["embedding", "neuron", "rest", "logit"]


class TraceNode(msgspec.Struct, kw_only=True):
    """One node of the pruned graph.

    node_id: unique in the graph (the Neuronpedia id: "{layer}_{neuron}_{pos}" for a neuron,
    "0_{layer}_{pos}" for a rest bucket, "E_{token_id}_{pos}", "{L+1}_{token_id}_{pos}").
    layer: the neuron's / bucket's layer, -1 for an embedding, n_layers for a logit.
    value: neuron activation, demeaned pre-softcap logit, 0 for buckets and embeddings.
    constant: the target's bias terms (value = sum of incoming edges + constant, before
    pruning), 0 for nodes without incoming edges.
    influence: raw influence on the weighted target logits (normalised-|A| power series).
    influence_share: cumulative share of the node in descending influence order.
    rank: 1 for the most influential neuron (neurons only).
    total_effect: predicted effect on the weighted target logit, value * d(logit)/d(value)
    with only the attention patterns frozen (norms and activations by their derivatives):
    zeroing the node moves that logit by about -total_effect (neurons and embeddings).
    """

    node_id: str
    kind: NodeKind
    layer: int
    position: int
    token: str
    neuron: int | None = None
    neuron_id: str | None = None
    token_id: int | None = None
    value: float = 0.0
    constant: float = 0.0
    influence: float = 0.0
    influence_share: float = 0.0
    rank: int | None = None
    total_effect: float | None = None
    probability: float | None = None
    is_target: bool = False
    explanation: str | None = None
    cluster: str | None = None


class TraceLink(msgspec.Struct, kw_only=True):
    """A kept edge: `weight` is the direct effect of `source` on `target` (signed)."""

    source: str
    target: str
    weight: float


class TraceSettings(msgspec.Struct, kw_only=True):
    """How the graph was made (reproduce it with the same values)."""

    max_nodes: int
    candidates: int
    batch_size: int
    node_threshold: float
    edge_threshold: float
    gated_alpha: float
    prepend_bos: bool


class TraceGraph(msgspec.Struct, kw_only=True):
    """The pruned attribution graph of `prompt` for the next token.

    tokens: the model's tokens of the prompt (BOS first when prepended), aligned with node
    positions. targets: the explained logits' token strings; target: the main one.
    neuron_rows: neuron rows computed (<= max_nodes). completeness_error: the largest
    |value - incoming edges - constant| over computed rows before pruning (float error).
    timings: seconds per phase (first_order_s, rows_s, assemble_s, prune_s).
    """

    model: str
    prompt: str
    tokens: list[str]
    token_ids: list[int]
    target: str
    target_id: int
    targets: list[str]
    n_layers: int
    d_mlp: int
    neuron_rows: int
    completeness_error: float
    settings: TraceSettings
    nodes: list[TraceNode]
    links: list[TraceLink]
    timings: dict[str, float] = {}
    supernodes: list[list[str]] = []

    def neurons(self) -> list[TraceNode]:
        """Neuron nodes, most influential first."""
        return sorted((n for n in self.nodes if n.kind == "neuron"), key=lambda n: n.rank or 0)


class TraceSummary(msgspec.Struct, kw_only=True):
    """A graph saved in an atlas, as listed."""

    id: int
    created_at: str
    model: str
    prompt: str
    target: str
    nodes: int
    links: int
