"""`to_neuronpedia`: a TraceGraph as the graph JSON that circuit-tracer's local viewer and
Neuronpedia's graph page load (schema in `neuronpedia_graph.schema.json` next to this file).

Neurons are written as features of a "cross layer transcoder" (the only feature type both
viewers open a detail panel for and count in their scores): `feature` is the Cantor pair of
(layer, neuron), which viewers decode under `schema_version: 1`. Rest buckets take the
"mlp reconstruction error" slot, which is where the viewers expect the mass a graph does not
split into features. Our own fields (neuron_id, rank, raw influence, explanation, cluster,
node_kind, bias_in, total_effect) ride along: the schema allows extra properties.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

from neuronatlas.trace.records import TraceGraph, TraceNode

SCHEMA_FILE = "neuronpedia_graph.schema.json"
FEATURE_TYPES = {
    "neuron": "cross layer transcoder",
    "rest": "mlp reconstruction error",
    "embedding": "embedding",
    "logit": "logit",
}


def schema() -> dict[str, Any]:
    """The JSON Schema of the graph document (as Neuronpedia describes it, plus our fields)."""
    text = resources.files("neuronatlas.trace").joinpath(SCHEMA_FILE).read_text("utf-8")
    return json.loads(text)


def cantor(a: int, b: int) -> int:
    """The Cantor pairing of two naturals: the viewers' global feature id."""
    return (a + b) * (a + b + 1) // 2 + b


def _feature(node: TraceNode) -> int:
    if node.kind == "neuron":
        assert node.neuron is not None
        return cantor(node.layer, node.neuron)
    if node.kind == "rest":
        return -1
    if node.kind == "embedding":
        return node.position
    assert node.token_id is not None
    return node.token_id


def _layer(node: TraceNode) -> str:
    if node.kind == "embedding":
        return "E"
    if node.kind == "logit":
        return str(node.layer + 1)
    return str(node.layer)


def _clerp(node: TraceNode) -> str:
    if node.kind == "logit":
        return f'Output "{node.token}" (p={node.probability or 0.0:.3f})'
    if node.kind == "embedding":
        return f'Emb: "{node.token}"'
    if node.kind == "rest":
        return f'Rest: L{node.layer} "{node.token}"'
    return node.explanation or node.neuron_id or ""


def _node_json(node: TraceNode) -> dict[str, Any]:
    js_id = (
        f"{node.layer}_{node.neuron}-0"
        if node.kind == "neuron"
        else f"{node.node_id.rsplit('_', 1)[0]}-0"
    )
    out: dict[str, Any] = {
        "node_id": node.node_id,
        "feature": _feature(node),
        "layer": _layer(node),
        "ctx_idx": node.position,
        "feature_type": FEATURE_TYPES[node.kind],
        "jsNodeId": js_id,
        "clerp": _clerp(node),
        "activation": node.value,
        "influence": node.influence_share,
        "token_prob": node.probability or 0.0,
        "is_target_logit": node.is_target,
        "node_kind": "mlp_neuron" if node.kind == "neuron" else node.kind,
        "bias_in": node.constant,
        "raw_influence": node.influence,
    }
    if node.kind == "neuron":
        out.update(
            neuron_id=node.neuron_id,
            rank=node.rank,
            explanation=node.explanation,
            cluster=node.cluster,
            total_effect=node.total_effect,
        )
    return out


def to_neuronpedia(
    graph: TraceGraph, *, slug: str | None = None, feature_base_url: str = ""
) -> dict[str, Any]:
    """The graph as a Neuronpedia / circuit-tracer graph document (a JSON-ready dict)."""
    slug = slug or "neuronatlas-trace"
    metadata = {
        "slug": slug,
        "scan": graph.model,
        "prompt_tokens": graph.tokens,
        "prompt": graph.prompt,
        "node_threshold": graph.settings.node_threshold,
        "schema_version": 1,
        "transcoder_list": [],
        "feature_details": {"feature_json_base_url": feature_base_url},
        "info": {
            "generator": {
                "name": "neuronatlas trace",
                "version": _version(),
                "url": "",
            },
            "create_time_ms": int(time.time() * 1000),
        },
        "generation_settings": {
            "max_n_logits": len(graph.targets),
            "desired_logit_prob": 0.95,
            "batch_size": graph.settings.batch_size,
            "max_feature_nodes": graph.settings.max_nodes,
        },
        "pruning_settings": {
            "node_threshold": graph.settings.node_threshold,
            "edge_threshold": graph.settings.edge_threshold,
        },
        "linearisation": {
            "attention": "frozen patterns",
            "norms": "frozen denominators",
            "ungated": "ratio phi(h)/h",
            "gated_alpha": graph.settings.gated_alpha,
        },
    }
    return {
        "metadata": metadata,
        "qParams": {
            "pinnedIds": [],
            "supernodes": [list(s) for s in graph.supernodes],
            "linkType": "both",
            "clickedId": "",
            "sg_pos": "",
        },
        "nodes": [_node_json(n) for n in graph.nodes],
        "links": [
            {"source": k.source, "target": k.target, "weight": k.weight} for k in graph.links
        ],
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("neuronatlas")
    except PackageNotFoundError:
        return "unknown"
