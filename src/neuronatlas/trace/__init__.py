"""Attribution graphs over a model's own MLP neurons (`neuronatlas trace`).

`trace(model, text, target=None, ...)` returns a `TraceGraph`: which neurons, at which
positions, drive the next-token logit and how they drive each other, computed in the
linearised model (frozen attention patterns, norm denominators and activation ratios) where
every node's incoming edges plus its constant equal its value exactly. `to_neuronpedia`
writes the graph JSON that Neuronpedia's and circuit-tracer's viewers load;
`check_interventions` compares the graph's predictions with ablations in the real model.
See docs/ATTRIBUTION.md.
"""

from neuronatlas.trace.attribute import (
    DEFAULT_BATCH,
    DEFAULT_CANDIDATES,
    DEFAULT_MAX_NODES,
    MAX_NODES_LIMIT,
    Attribution,
    attribute,
)
from neuronatlas.trace.build import (
    DEFAULT_ALPHA,
    DEFAULT_EDGE_THRESHOLD,
    DEFAULT_NODE_THRESHOLD,
    MAX_TEXT_CHARS,
    MAX_TOKENS,
    completeness_error,
    encode,
    trace,
)
from neuronatlas.trace.group import annotate
from neuronatlas.trace.neuronpedia import schema, to_neuronpedia
from neuronatlas.trace.records import (
    TraceGraph,
    TraceLink,
    TraceNode,
    TraceSettings,
    TraceSummary,
)
from neuronatlas.trace.verify import Ablation, InterventionCheck, check_interventions

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_BATCH",
    "DEFAULT_CANDIDATES",
    "DEFAULT_EDGE_THRESHOLD",
    "DEFAULT_MAX_NODES",
    "DEFAULT_NODE_THRESHOLD",
    "MAX_NODES_LIMIT",
    "MAX_TEXT_CHARS",
    "MAX_TOKENS",
    "Ablation",
    "Attribution",
    "InterventionCheck",
    "TraceGraph",
    "TraceLink",
    "TraceNode",
    "TraceSettings",
    "TraceSummary",
    "annotate",
    "attribute",
    "check_interventions",
    "completeness_error",
    "encode",
    "schema",
    "to_neuronpedia",
    "trace",
]
