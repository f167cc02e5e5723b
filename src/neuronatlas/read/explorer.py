"""What the explorer shows, assembled from the stages' reads: one function per page / endpoint.

The HTML pages, the JSON API, the CLI's `--json` and `neuronatlas.Atlas` all call these and
get the typed records of `read.models`, so a page and its JSON twin can never disagree.
Optional sections (N2G, similar neurons, map, semantic search) come from `stages`; when a
stage is not built the result says so under `unavailable` rather than failing the whole page.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any, Literal

import msgspec
import numpy as np

from neuronatlas.errors import BadInput, QueryTimeout, StageNotBuilt
from neuronatlas.ids import canonical
from neuronatlas.read import stages
from neuronatlas.read.live import LiveModel
from neuronatlas.read.models import (
    Cluster,
    CoarseCluster,
    Coherence,
    Explanation,
    Health,
    Histogram,
    LiveNeuron,
    LiveStatus,
    LiveStrongest,
    LogitEffects,
    MapColumns,
    MapData,
    N2GSummary,
    Nav,
    NeuronGraph,
    NeuronPage,
    NeuronRef,
    NeuronSummary,
    Record,
    SearchHit,
    SearchMode,
    SearchResult,
    Similar,
    SimilarNeurons,
    Stats,
)
from neuronatlas.read.render import histogram
from neuronatlas.store import browse, reader

UsedMode = Literal["semantic", "tokens", "fulltext", "substring"]
MAX_K = 100
MAX_RECORDS = 50
MAP_CAP = 2_000_000
MAP_TEXT_LIMIT = 60_000
#: Records per category a page sends first (the API's default; `records=` asks for up to 50).
DEFAULT_RECORDS = 10
DEFAULT_SIMILAR = 10


def neuron_detail(
    conn: sqlite3.Connection,
    neuron_id: str,
    records: int = DEFAULT_RECORDS,
    similar_k: int = DEFAULT_SIMILAR,
) -> NeuronPage:
    """Everything the neuron page shows: explanations, stats, the first `records` records of
    each category, the histogram of all stored values, N2G, similar neurons, navigation."""
    nid = canonical(neuron_id)
    head = reader.neuron_head(conn, nid)
    shown, counts, hist = _records(reader.record_rows(conn, nid), records)
    unavailable: dict[str, str] = {}
    return NeuronPage(
        id=head["id"],
        layer=head["layer"],
        neuron=head["neuron"],
        source=head["source"],
        stats=msgspec.convert(head["stats"], Stats),
        explanations=msgspec.convert(head["explanations"], list[Explanation]),
        records=shown,
        record_counts=counts,
        truncated=any(n > len(shown.get(c, ())) for c, n in counts.items()),
        histogram=hist,
        nav=Nav(prev=browse.neighbour(conn, nid, -1), next=browse.neighbour(conn, nid, +1)),
        n2g=_n2g_summary(conn, nid, unavailable),
        similar=_similar(conn, nid, similar_k, unavailable),
        unavailable=unavailable,
    )


_tokens = msgspec.json.Decoder(list[str]).decode
_floats = msgspec.json.Decoder(list[float]).decode
_floats_or_none = msgspec.json.Decoder(list[float | None]).decode


def _records(
    rows: list[tuple[Any, ...]], limit: int
) -> tuple[dict[str, list[Record]], dict[str, int], Histogram]:
    """The first `limit` records of each category, the count per category, and the histogram
    of every stored value. All the rows' value texts are parsed in one msgspec call (a
    neuron's ~60 records at once); shown records are sliced from that array, rounded back to
    float32 where stored as float32 spellings, exactly as `store.values.decode` reads them."""
    texts = [row[2] for row in rows]
    flat = _all_values(texts)
    shown: dict[str, list[Record]] = {}
    counts: dict[str, int] = {}
    at = 0
    for (cat, tokens, _, f32, top, peak), text in zip(rows, texts, strict=True):
        n = 0 if len(text) <= 2 else text.count(",") + 1  # a JSON array of numbers and nulls
        seen = counts.get(cat, 0)
        counts[cat] = seen + 1
        if seen < limit:
            part = flat[at : at + n]
            shown.setdefault(cat, []).append(Record(_tokens(tokens), _exact(part, f32), top, peak))
        at += n
    return shown, counts, histogram(flat)


def _all_values(texts: list[str]) -> np.ndarray:
    """Every value of the value texts (JSON arrays) as one float64 array, NaN for null."""
    joined = "[" + ",".join(t[1:-1] for t in texts if len(t) > 2) + "]"
    if "null" not in joined:
        return np.array(_floats(joined), dtype=np.float64)
    wide = [math.nan if v is None else v for v in _floats_or_none(joined)]
    return np.array(wide, dtype=np.float64)


def _exact(part: np.ndarray, f32: bool | int) -> list[float | None]:
    """One record's values as the library reads them: float32 spellings rounded back to
    their float32, NaN as None."""
    if f32:
        part = part.astype(np.float32).astype(np.float64)
    out: list[float | None] = part.tolist()
    if np.isnan(part).any():
        out = [None if math.isnan(v) else v for v in part.tolist()]
    return out


def summary(conn: sqlite3.Connection, neuron_id: str) -> NeuronSummary:
    """A stored neuron's id and primary explanation; BadNeuronId / NeuronNotFound."""
    nid = browse.require_neuron(conn, neuron_id)
    return NeuronSummary(**browse.summaries(conn, [nid])[nid])


def step(conn: sqlite3.Connection, neuron_id: str, by: int) -> NeuronRef:
    """The stored neuron after (by=+1) or before (by=-1) a stored one, wrapping around."""
    return NeuronRef(browse.neighbour(conn, browse.require_neuron(conn, neuron_id), by))


def random_neuron(conn: sqlite3.Connection) -> NeuronRef:
    return NeuronRef(browse.random_neuron(conn))


def health(conn: sqlite3.Connection, version: str, live: LiveStatus) -> Health:
    """The atlas's size, which stages have finished and the live model's state."""
    return Health(
        ok=True,
        **browse.counts(conn),
        stages=browse.finished_stages(conn),
        model_id=reader.meta(conn).get("model_id"),
        version=version,
        live_model=live,
    )


def _n2g_summary(
    conn: sqlite3.Connection, nid: str, unavailable: dict[str, str]
) -> N2GSummary | None:
    try:
        graph = stages.call("graph", conn, nid, svg=False)  # the drawing has its own route
    except StageNotBuilt as exc:
        unavailable["n2g"] = str(exc)
        return None
    if graph is None:
        unavailable["n2g"] = (
            f"no N2G graph stored for {nid}: run `neuronatlas n2g --db ATLAS --neurons {nid}`"
        )
        return None
    return N2GSummary(
        metrics=graph.get("metrics") or {},
        explanation=graph.get("explanation"),
        # drawable: the graph route renders its DOT to SVG on demand
        has_svg=bool(graph.get("dot") or graph.get("svg")),
    )


def _similar(
    conn: sqlite3.Connection, nid: str, k: int, unavailable: dict[str, str]
) -> Similar | None:
    """Similar neurons: the kinds precomputed at build time come from one index range read;
    the others are computed now (a vector search, a token-overlap join)."""
    built = browse.similar_built(conn)
    ready = [kind for kind in browse.SIMILAR_KINDS if built.get(kind, 0) >= k]
    stored = browse.stored_similar(conn, nid, k, ready)
    try:
        return Similar(
            by_embedding=_hits(
                stored["embedding"]
                if "embedding" in stored
                else stages.call("similar_embedding", conn, nid, k)
            ),
            by_tokens=_hits(
                stored["tokens"]
                if "tokens" in stored
                else stages.call("similar_tokens", conn, nid, k)
            ),
        )
    except StageNotBuilt as exc:
        unavailable["similar"] = str(exc)
    except QueryTimeout:
        # the section, not the page: the vector index may still be loading after start-up
        unavailable["similar"] = (
            "similar neurons took too long (the vector index may still "
            "be loading): reload the page in a moment"
        )
    return None


def similar_neurons(
    conn: sqlite3.Connection, neuron_id: str, k: int = 10, model: Any = None
) -> SimilarNeurons:
    """Every kind of similar neuron (with `model`, by weights and the logit effect too),
    computed now rather than read from the precomputed rows, so any k and model work."""
    from neuronatlas.embed.similar import similar_neurons as compute

    found = compute(conn, neuron_id, k, model)
    if "logit_effects" in found:
        found["logit_effects"] = {"id": found["id"], **found["logit_effects"]}
    return msgspec.convert(found, SimilarNeurons)


def _hits(rows: Any) -> list[SearchHit]:
    return msgspec.convert(list(rows), list[SearchHit])


def neuron_graph(conn: sqlite3.Connection, neuron_id: str) -> NeuronGraph:
    """The N2G graph of a neuron (nodes, edges, metrics, svg); StageNotBuilt when absent."""
    nid = browse.require_neuron(conn, neuron_id)
    graph = stages.call("graph", conn, nid)
    if graph is None:
        raise StageNotBuilt(
            f"no N2G graph stored for {nid}: run `neuronatlas n2g --db ATLAS --neurons {nid}`"
        )
    return msgspec.convert(graph, NeuronGraph)


def search(
    conn: sqlite3.Connection,
    query: str,
    k: int = 10,
    mode: SearchMode = "auto",
    embedder: str | None = None,
) -> SearchResult:
    """Neurons for a query: semantic (embeddings), tokens (stored records), fulltext or
    substring (explanation text). `auto` picks the best the atlas has. embedder: the query
    encoder of semantic search (default: the one the atlas was embedded with)."""
    query = query.strip()
    if not query:
        raise BadInput("the query is empty")
    if not 1 <= k <= MAX_K:
        raise BadInput(f"k={k}: choose 1 to {MAX_K}")
    used: UsedMode = _best_mode(conn) if mode == "auto" else mode
    if used == "substring":
        return SearchResult(query, used, k, _hits(browse.explanation_substring(conn, query, k)))
    if used == "tokens" and not stages.call("token_index", conn):
        raise StageNotBuilt(
            "token search needs the token index of the stored records: run "
            f"`{stages.how_to_build('token_index')}`"
        )
    if used == "semantic" and not browse.has_embeddings(conn):
        raise StageNotBuilt(
            "semantic search needs explanation embeddings: run `neuronatlas embed --db ATLAS`"
        )
    if used == "fulltext" and not _has_words(query):
        return SearchResult(query, used, k, [], message="the query has no words to search for")
    extra = (embedder,) if used == "semantic" and embedder else ()
    return SearchResult(query, used, k, _hits(stages.call(used, conn, query, k, *extra))[:k])


def _has_words(query: str) -> bool:
    """Whether full-text search finds anything to match in `query` (a query of only
    punctuation has no words: no hits, rather than an error)."""
    from neuronatlas.embed.fulltext import match_expressions

    try:
        match_expressions(query)
    except BadInput:
        return False
    return True


def _best_mode(conn: sqlite3.Connection) -> UsedMode:
    """semantic when embeddings exist and the code is there, else fulltext, else substring."""
    if browse.has_embeddings(conn) and stages.lookup("semantic") is not None:
        return "semantic"
    if stages.lookup("fulltext") is not None:
        try:
            stages.call("fulltext", conn, "probe", 1)
            return "fulltext"
        except StageNotBuilt:
            pass
    return "substring"


def _cluster_levels(
    conn: sqlite3.Connection,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[int, int]]:
    """(fine clusters, each with its `parent` and `coherence`; coarse clusters; fine cluster
    -> coarse cluster). A map made before the hierarchy has fine clusters only."""
    parents: dict[int, dict[str, Any]] = stages.call_or_none("cluster_parents", conn) or {}
    fine = [
        {**c, **parents.get(c["cluster"], {"parent": None, "coherence": None})}
        for c in stages.call_or_none("clusters", conn) or []
    ]
    coarse: list[dict[str, Any]] = stages.call_or_none("coarse_clusters", conn) or []
    return fine, coarse, {c: p["parent"] for c, p in parents.items()}


def map_data(
    conn: sqlite3.Connection, with_text: bool | None = None, limit: int = MAP_CAP
) -> MapData:
    """Every neuron as a point, in compact columns (one array per field, not one object per
    point) so 307,200 points stay a few MB. Falls back to a (layer, neuron) grid before
    `neuronatlas map` ran, and says so with `built: false`. with_text: the explanations too
    (default: when the atlas has at most MAP_TEXT_LIMIT neurons)."""
    if with_text is None:
        with_text = reader.neuron_count(conn) <= MAP_TEXT_LIMIT
    points = stages.call_or_none("map", conn)
    if points:
        truncated = len(points) > limit
        points = points[:limit]
        clusters, coarse, parent = _cluster_levels(conn)
        cols = MapColumns(
            layer=[p["layer"] for p in points],
            neuron=[p["neuron"] for p in points],
            x=[round(float(p["x"]), 4) for p in points],
            y=[round(float(p["y"]), 4) for p in points],
            cluster=[p.get("cluster") for p in points],
            coarse=[parent.get(p.get("cluster")) for p in points],
            explanation=[(p.get("explanation") or "")[:160] for p in points] if with_text else None,
        )
        return MapData(
            built=True,
            count=len(points),
            truncated=truncated,
            columns=cols,
            clusters=msgspec.convert(clusters, list[Cluster]),
            coarse=msgspec.convert(coarse, list[CoarseCluster]),
            coherence=msgspec.convert(
                stages.call_or_none("map_coherence", conn) or [], list[Coherence]
            ),
            message=None,
        )
    rows, truncated = browse.grid_points(conn, limit)
    cols = MapColumns(
        layer=[r[0] for r in rows],
        neuron=[r[1] for r in rows],
        x=[float(r[1]) for r in rows],
        y=[float(r[0]) for r in rows],
        cluster=[None] * len(rows),
        coarse=[None] * len(rows),
        explanation=[r[2][:160] for r in rows] if with_text else None,
    )
    return MapData(
        built=False,
        count=len(rows),
        truncated=truncated,
        columns=cols,
        clusters=[],
        coarse=[],
        coherence=[],
        message="The semantic map is not built for this atlas yet: neurons are laid "
        "out by layer (y) and index (x). Build it with "
        "`neuronatlas embed --db ATLAS` then `neuronatlas map --db ATLAS`.",
    )


def predict(conn: sqlite3.Connection, neuron_id: str, tokens: list[str]) -> list[float] | None:
    """The N2G graph's predicted activation per token, or None when there is no graph."""
    nid = canonical(neuron_id)
    if stages.call_or_none("graph", conn, nid, svg=False) is None:
        return None
    found: list[float] | None = stages.call_or_none("predict", conn, nid, tokens)
    return found


def live_strongest(conn: sqlite3.Connection, live: LiveModel, text: str, k: int) -> LiveStrongest:
    """The model's strongest neurons per token of `text`, with the atlas's explanations."""
    out = live.strongest(text, k)
    known = browse.summaries(conn, [n.id for top in out.top for n in top])
    for top in out.top:
        for n in top:
            found = known.get(n.id)
            n.explanation = None if found is None else found["explanation"]
    return out


def live_neuron(conn: sqlite3.Connection, live: LiveModel, text: str, neuron_id: str) -> LiveNeuron:
    """One stored neuron's live activation per token, and its N2G prediction when it has one."""
    nid = browse.require_neuron(conn, neuron_id)
    out = live.neuron(text, nid)
    out.n2g_prediction = predict(conn, nid, out.tokens)
    return out


def logit_effects(
    conn: sqlite3.Connection, live: LiveModel, neuron_id: str, k: int
) -> LogitEffects:
    """The tokens the neuron's output most promotes / suppresses (w_out · W_U), live model."""
    nid = browse.require_neuron(conn, neuron_id)
    model = live.get()
    try:
        from neuronatlas.embed.similar import logit_effects as effects
    except ImportError as exc:
        raise StageNotBuilt(
            f"logit effects need the embed stage, which is missing ({exc})"
        ) from exc
    with live.run_lock:
        return msgspec.convert({"id": nid, **effects(nid, model, k)}, LogitEffects)
