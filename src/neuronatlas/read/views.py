"""The typed read model: every record the explorer shows, as msgspec Structs.

The HTTP API encodes these, `--json` in the CLI prints them and `neuronatlas.Atlas` returns
them, so the three can never disagree on a field; /openapi.json carries their JSON schemas
(`msgspec.json.schema_components`), so what a client is promised is what the encoder writes.
Fields that may be absent in a stored atlas are `... | None`, never missing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

import msgspec
from msgspec import Meta, Struct

from neuronatlas.ids import CANONICAL_ID_PATTERN

SearchMode = Literal["auto", "semantic", "tokens", "fulltext", "substring"]

#: A neuron id as the read model writes it (`ids.format_id`); the grammar lives in `ids`.
CanonicalId = Annotated[str, Meta(pattern=CANONICAL_ID_PATTERN, examples=["L05N0123"])]


class Record(Struct):
    """One stored excerpt: its tokens and the neuron's activation on each (null = NaN)."""

    tokens: list[str]
    activations: list[float | None]
    max_activation: float | None
    peak_index: int | None


class ExplanationScore(Struct):
    """One scorer's verdict on an explanation (`neuronatlas score`): the scorer, the judge
    that scored it (the embedder or the LLM), the score and the scorer's own details."""

    scorer: str
    judge: str
    score: float
    details: Any = None


class Explanation(Struct):
    """One explanation of a neuron, with its simulation scores where they exist and every
    stored scorer's score (`scores`)."""

    id: int
    source: str
    position: int
    text: str
    raw_text: str
    ev_correlation_score: float | None
    rsquared_score: float | None
    absolute_dev_explained_score: float | None
    scores: list[ExplanationScore] = msgspec.field(default_factory=list)


class Stats(Struct):
    """The neuron's activation statistics over the scraped corpus."""

    mean: float | None
    variance: float | None
    skewness: float | None
    kurtosis: float | None
    max_activation: float | None
    quantile_boundaries: list[float | None] | None


class Histogram(Struct):
    """Counts of every stored record's activations of a neuron in equal-width bins
    (len(edges) = bins + 1)."""

    edges: list[float]
    counts: list[int]


class Nav(Struct):
    """The stored neurons before and after this one (wrapping around)."""

    prev: CanonicalId
    next: CanonicalId


class NeuronRef(Struct):
    """A neuron id, the answer of navigation routes."""

    id: CanonicalId


class NeuronSummary(Struct):
    """A neuron's id and primary explanation (tooltips, search hits, live runs)."""

    id: CanonicalId
    layer: int
    neuron: int
    explanation: str | None
    score: float | None


class Measure(NamedTuple):
    """What a hit's `similarity` number is: a short label for column headers and the
    description (with its range) that `SearchHit.similarity_measure` carries."""

    label: str
    description: str


#: The measure behind `similarity`, by search mode or kind of neighbour. Three different
#: numbers share the name; these say which one a list holds.
MEASURES: dict[str, Measure] = {
    "semantic": Measure(
        "cosine (−1…1)", "cosine similarity of explanation embeddings (−1…1, higher = closer)"
    ),
    "tokens": Measure(
        "peak share (0…1)", "share of the neuron's top-record peak mass on these tokens (0…1)"
    ),
    "fulltext": Measure(
        "full-text rank (−bm25)", "full-text rank, −bm25 (higher = better match; unbounded)"
    ),
    "embedding": Measure(
        "cosine (−1…1)", "cosine similarity of explanation embeddings (−1…1, higher = closer)"
    ),
    "shared_tokens": Measure(
        "weighted Jaccard (0…1)", "weighted Jaccard index of the peak tokens (0…1)"
    ),
    "weights": Measure(
        "connection weight (signed)",
        "direct connection weight w_out · w_in between the two neurons (signed, unbounded; "
        "ranked by its absolute value)",
    ),
}


class SearchHit(Struct, omit_defaults=True):
    """One neuron found by search or similarity. similarity: cosine (semantic, by
    embedding), the share of peak mass on the tokens (tokens), −bm25 (fulltext), the
    weighted Jaccard index (by tokens), the signed connection weight (by weights), or null
    (substring); `similarity_measure` says which, with its range (`MEASURES`). The other
    fields come with the modes that have them."""

    id: CanonicalId
    layer: int
    neuron: int
    explanation: str | None
    score: float | None
    similarity: Annotated[
        float | None,
        Meta(
            description="The number the hits are ranked by. Its measure depends on the list: "
            "cosine of explanation embeddings (−1…1; semantic search, similar by embedding), "
            "share of peak mass on the tokens (0…1; token search), full-text rank −bm25 "
            "(higher = better, unbounded; full-text search), weighted Jaccard of peak tokens "
            "(0…1; similar by tokens), direct connection weight w_out · w_in (signed, "
            "unbounded; similar by weights); null for substring search. "
            "`similarity_measure` names it."
        ),
    ]
    token: str | None = None
    activation: float | None = None
    hits: int | None = None
    field: Literal["explanation", "excerpts"] | None = None
    shared_tokens: list[str] | None = None
    similarity_measure: Annotated[
        str | None,
        Meta(description="What `similarity` measures, with its range (absent: substring)."),
    ] = None


class SearchResult(Struct):
    """The answer of a search: the query as run, the mode used and the hits, best first."""

    query: str
    mode: Literal["semantic", "tokens", "fulltext", "substring"]
    k: int
    results: list[SearchHit]
    message: str | None = None


class Similar(Struct):
    """Neurons near this one by explanation embedding and by shared peak tokens."""

    by_embedding: list[SearchHit]
    by_tokens: list[SearchHit]


class N2GSummary(Struct):
    """The page's N2G section: the graph's scores and explanation (its drawing is separate)."""

    metrics: dict[str, float | int | None]
    explanation: str | None
    has_svg: bool


class NeuronPage(Struct):
    """A neuron: everything its page shows (the full view), or what the page shows first.

    Sections of stages this atlas lacks are null, with the reason and the command that
    builds them under `unavailable`. The first view (the API's default) leaves out the
    sections that need every stored record or a join: the histogram, similar neurons and
    the records of categories other than the first; `more` maps each left-out section to
    the endpoint that serves it."""

    id: CanonicalId
    layer: int
    neuron: int
    source: str | None
    stats: Stats
    explanations: list[Explanation]
    records: dict[str, list[Record]]
    record_counts: dict[str, int]
    truncated: bool
    histogram: Histogram | None
    nav: Nav
    n2g: N2GSummary | None
    similar: Similar | None
    unavailable: dict[str, str]
    more: dict[str, str]
    stale: dict[str, str] = msgspec.field(default_factory=dict)
    """Derived parts (`embedding`, `map`) made from another explanation than the primary one
    shown here, each with what is out of date and the command that refreshes it."""

    @property
    def explanation(self) -> str | None:
        """The primary explanation's text."""
        return self.explanations[0].text if self.explanations else None


class RecordPage(Struct):
    """A slice of one category of a neuron's stored records, in rank order (the top
    category strongest first); `total`: how many the category holds."""

    id: CanonicalId
    category: str
    offset: int
    total: int
    records: list[Record]


class GraphNode(Struct):
    """One node of an N2G graph as drawn: an activating token (depth 1), a context token to
    its left, or a wildcard. activation: the best normalised activation beneath (activating
    nodes); end_activation: the normalised activation a pattern ending here predicts."""

    id: int
    label: str
    kind: Literal["activating", "context", "wildcard"]
    depth: int
    activation: float | None
    activation_value: float | None
    importance: float
    end: bool
    end_activation: float | None
    count: int
    substitutes_tried: int
    substitutes_failed: int


class GraphEdge(Struct):
    """An edge from a context node (source) to the token on its right (target)."""

    source: int
    target: int


class Graph(Struct):
    """The drawn part of a graph: its heaviest nodes (truncated when some were left out)."""

    nodes: list[GraphNode]
    edges: list[GraphEdge]
    truncated: bool


class MaskToken(Struct):
    """The token N2G substituted to hide context, and why that one."""

    id: int | None
    token: str | None
    reason: str | None


class NeuronGraph(Struct):
    """A neuron's stored N2G graph: nodes, edges, metrics, explanation and its drawing."""

    neuron_id: CanonicalId
    metrics: dict[str, float | int | None]
    explanation: str | None
    graph: Graph
    dot: str
    svg: str | None
    settings: dict[str, Any]
    mask_token: MaskToken | None
    stats: dict[str, Any]
    a_max: float
    model: str | None


class Cluster(Struct):
    """One fine cluster of the map: its label, size, centre and top words, the coarse cluster
    it sits in (`parent`, null on a map made before the hierarchy) and its coherence."""

    cluster: int
    label: str
    size: int
    x: float
    y: float
    words: list[str]
    parent: int | None = None
    coherence: float | None = None


class CoarseCluster(Struct):
    """One coarse cluster (the zoomed-out level): a union of whole fine clusters (`children`,
    largest first)."""

    cluster: int
    label: str
    size: int
    x: float
    y: float
    words: list[str]
    coherence: float | None
    children: list[int]


class Coherence(Struct):
    """How alike a level's clusters are inside: mean similarity of a neuron's explanation to
    its cluster-mates' (with a 95% interval) against random pairs, under one measure."""

    level: str
    measure: str
    clusters: int
    within: float | None
    within_low: float | None
    within_high: float | None
    random: float | None


class MapColumns(Struct, omit_defaults=True):
    """The map's points in columns (one array per field, aligned), compact for 300k points."""

    layer: list[int]
    neuron: list[int]
    x: list[float]
    y: list[float]
    cluster: list[int | None]
    coarse: list[int | None]
    explanation: list[str] | None = None


class MapData(Struct):
    """Every neuron as a point. built=false: the map stage has not run and the points are a
    (layer, neuron) grid; `message` says how to build the real one."""

    built: bool
    count: int
    truncated: bool
    columns: MapColumns
    clusters: list[Cluster]
    coarse: list[CoarseCluster]
    coherence: list[Coherence]
    message: str | None


class MapClusters(Struct):
    """The map without its points (`/api/map/clusters`): small, so the page can place labels
    before the points arrive from `/api/map/points`. Fields as in MapData."""

    built: bool
    count: int
    truncated: bool
    clusters: list[Cluster]
    coarse: list[CoarseCluster]
    coherence: list[Coherence]
    message: str | None


class LiveNeuronRef(Struct):
    """A neuron that fires strongly on a token in a live run."""

    id: CanonicalId
    activation: float
    explanation: str | None = None


class LiveStrongest(Struct):
    """The model's strongest neurons on each token of a text (aligned with `tokens`)."""

    text: str
    tokens: list[str]
    top: list[list[LiveNeuronRef]]
    truncated: bool


class LiveNeuron(Struct):
    """One neuron's live activation on each token of a text, and its N2G prediction."""

    text: str
    neuron: CanonicalId
    tokens: list[str]
    activations: list[float | None]
    truncated: bool
    n2g_prediction: list[float] | None


class LogitEffect(Struct):
    """A token the neuron's output pushes up (effect > 0) or down."""

    token: str | None
    token_id: int
    effect: float


class LogitEffects(Struct):
    """The tokens a neuron's output promotes and suppresses most (w_out · W_U)."""

    id: CanonicalId
    promoted: list[LogitEffect]
    suppressed: list[LogitEffect]


class WeightNeighbours(Struct):
    """Neurons connected to this one by weights (similarity = the signed connection weight,
    ranked by its absolute value): later-layer neurons it writes to, earlier ones it reads."""

    downstream: list[SearchHit]
    upstream: list[SearchHit]


class SimilarNeurons(Struct, omit_defaults=True):
    """`neuronatlas similar --json`: every kind of neighbour available. by_weights and
    logit_effects come only when a model was given."""

    id: CanonicalId
    by_embedding: list[SearchHit]
    by_tokens: list[SearchHit]
    by_weights: WeightNeighbours | None = None
    logit_effects: LogitEffects | None = None


class LiveStatus(Struct):
    """Whether the live model is loaded, and why not when it cannot be."""

    spec: str | None
    loaded: bool
    error: str | None


class Health(Struct):
    """Liveness, the atlas's size, which stages are built and the live model's state."""

    ok: bool
    neurons: int
    layers: int
    explanations: int
    embeddings: int
    stages: list[str]
    model_id: str | None
    version: str
    live_model: LiveStatus
    not_built: list[str] = msgspec.field(default_factory=list)
    """For each stage whose data this atlas lacks: "NAME is not built yet for this atlas: run
    `COMMAND`" (from the stage objects the explorer was made with)."""


class ErrorDetail(Struct):
    code: str
    message: str


class ErrorBody(Struct):
    """The body of every error response."""

    error: ErrorDetail


#: Every Struct the API answers with, for the OpenAPI components.
RESPONSE_MODELS: tuple[type[Struct], ...] = (
    NeuronPage,
    RecordPage,
    Histogram,
    Similar,
    NeuronSummary,
    NeuronRef,
    NeuronGraph,
    SearchResult,
    MapData,
    MapClusters,
    LiveStrongest,
    LiveNeuron,
    LogitEffects,
    Health,
    ErrorBody,
)

encode = msgspec.json.Encoder().encode


def to_builtins(value: object) -> Any:
    """Plain dicts and lists (for callers that want them: `Atlas(...).neuron(id).to_dict()`)."""
    return msgspec.to_builtins(value)
