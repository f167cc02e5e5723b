"""What the explorer shows, assembled from the stages' reads: one function per page / endpoint.

The HTML pages, the JSON API, the CLI's `--json` and `neuronatlas.Atlas` all call these and
get the typed records of `read.models`, so a page and its JSON twin can never disagree.
Optional sections (N2G, similar neurons, map, semantic search) come from `stages`; when a
stage is not built the result says so under `unavailable` rather than failing the whole page.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from typing import Any, Literal

import msgspec
import numpy as np

from neuronatlas.errors import BadInput, NeuronNotFound, QueryTimeout, StageNotBuilt
from neuronatlas.ids import canonical
from neuronatlas.read import stages
from neuronatlas.read.live import LiveModel
from neuronatlas.read.models import (
    MEASURES,
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
    MapClusters,
    MapColumns,
    MapData,
    N2GSummary,
    Nav,
    NeuronGraph,
    NeuronPage,
    NeuronRef,
    NeuronSummary,
    Record,
    RecordPage,
    SearchHit,
    SearchMode,
    SearchResult,
    Similar,
    SimilarNeurons,
    Stats,
)
from neuronatlas.read.render import histogram
from neuronatlas.store import browse, derived, reader
from neuronatlas.store import embed as store_embed

UsedMode = Literal["semantic", "tokens", "fulltext", "substring"]
MAX_K = 100
MAX_RECORDS = 50
MAP_CAP = 2_000_000
MAP_TEXT_LIMIT = 60_000
#: Records per category of the full view (`records=` asks for up to 50).
DEFAULT_RECORDS = 10
#: Top records of the first view: what a page shows before anyone scrolls or switches tabs.
FIRST_RECORDS = 5
DEFAULT_SIMILAR = 10


def neuron_detail(
    conn: sqlite3.Connection,
    neuron_id: str,
    records: int = DEFAULT_RECORDS,
    similar_k: int = DEFAULT_SIMILAR,
) -> NeuronPage:
    """Everything the neuron page shows (the full view): explanations, stats, the first
    `records` records of each category, the histogram of all stored values, N2G, similar
    neurons, navigation."""
    nid = canonical(neuron_id)
    head = reader.neuron_head(conn, nid)
    shown, counts, hist = _records(reader.record_rows(conn, nid), records)
    unavailable: dict[str, str] = {}
    return _page(
        conn,
        head,
        shown,
        counts,
        histogram=hist,
        similar=_similar_or_reason(conn, nid, similar_k, unavailable),
        unavailable=unavailable,
        more={},
    )


def neuron_first(
    conn: sqlite3.Connection, neuron_id: str, records: int = FIRST_RECORDS
) -> NeuronPage:
    """What the neuron page shows first, in a few index seeks and one bounded range read:
    explanations, stats, N2G, navigation, the count of each category and the first
    `records` records of the first category (`top` when stored).

    The sections that need every stored record or a join (the histogram, similar neurons,
    the other categories' records) are left out, each named under `more` with the endpoint
    that serves it: a first answer that reads ~60 records to draw one histogram costs five
    times one that does not (bench/README.md, "Explorer at the demo's size")."""
    nid = canonical(neuron_id)
    head = reader.neuron_head(conn, nid)
    counts = reader.record_counts(conn, nid)
    first = _first_category(counts)
    shown: dict[str, list[Record]] = {}
    if first is not None and records:
        shown[first] = _decoded(reader.category_rows(conn, nid, first, 0, records))
    base = f"/api/neurons/{nid}"
    more = {"histogram": f"{base}/histogram", "similar": f"{base}/similar"}
    for cat, n in counts.items():
        sent = len(shown.get(cat, ()))
        if n > sent:
            more[f"records.{cat}"] = f"{base}/records?category={cat}" + (
                f"&offset={sent}" if sent else ""
            )
    return _page(conn, head, shown, counts, histogram=None, similar=None, unavailable={}, more=more)


def _first_category(counts: dict[str, int]) -> str | None:
    """The category a page shows first: `top` when stored, else the first by name."""
    if "top" in counts:
        return "top"
    return min(counts) if counts else None


def _page(
    conn: sqlite3.Connection,
    head: reader.NeuronHead,
    shown: dict[str, list[Record]],
    counts: dict[str, int],
    *,
    histogram: Histogram | None,
    similar: Similar | None,
    unavailable: dict[str, str],
    more: dict[str, str],
) -> NeuronPage:
    """A NeuronPage from its parts; N2G and navigation are read here (two seeks each)."""
    nid = head.id
    return NeuronPage(
        id=nid,
        layer=head.layer,
        neuron=head.neuron,
        source=head.source,
        stats=msgspec.convert(head.stats, Stats, from_attributes=True),
        explanations=msgspec.convert(head.explanations, list[Explanation], from_attributes=True),
        records=shown,
        record_counts=counts,
        truncated=any(n > len(shown.get(c, ())) for c, n in counts.items()),
        histogram=histogram,
        nav=Nav(prev=browse.neighbour(conn, nid, -1), next=browse.neighbour(conn, nid, +1)),
        n2g=_n2g_summary(conn, nid, unavailable),
        similar=similar,
        unavailable=unavailable,
        more=more,
        stale=derived.stale_parts(conn, nid, store_embed.database_path(conn) or ":memory:"),
    )


def neuron_records(
    conn: sqlite3.Connection,
    neuron_id: str,
    category: str,
    offset: int = 0,
    limit: int = DEFAULT_RECORDS,
) -> RecordPage:
    """`limit` stored records of one category of a neuron from rank `offset` on. A category
    the neuron does not have is NeuronNotFound, naming the ones it has."""
    nid = browse.require_neuron(conn, neuron_id)
    counts = reader.record_counts(conn, nid)
    if category not in counts:
        stored = ", ".join(sorted(counts)) or "none"
        raise NeuronNotFound(f"{nid} has no {category!r} records (stored categories: {stored})")
    rows = reader.category_rows(conn, nid, category, offset, limit)
    return RecordPage(nid, category, offset, counts[category], _decoded(rows))


def neuron_histogram(conn: sqlite3.Connection, neuron_id: str) -> Histogram:
    """The histogram of every stored activation of a neuron (the value texts only, in one
    parse; no tokens are read)."""
    nid = browse.require_neuron(conn, neuron_id)
    return histogram(_all_values(reader.value_texts(conn, nid)))


def neuron_similar(conn: sqlite3.Connection, neuron_id: str, k: int = DEFAULT_SIMILAR) -> Similar:
    """The page's similar neurons (precomputed kinds read, the others computed now);
    StageNotBuilt or QueryTimeout when they cannot be had."""
    return _similar(conn, browse.require_neuron(conn, neuron_id), k)


_tokens = msgspec.json.Decoder(list[str]).decode
_floats = msgspec.json.Decoder(list[float]).decode
_floats_or_none = msgspec.json.Decoder(list[float | None]).decode


def _records(
    rows: list[tuple[Any, ...]], limit: int
) -> tuple[dict[str, list[Record]], dict[str, int], Histogram]:
    """The first `limit` records of each category, the count per category, and the histogram
    of every stored value. All the rows' value texts are parsed in one msgspec call (a
    neuron's ~60 records at once); shown records are sliced from that array."""
    flat = _all_values([row[2] for row in rows])
    keep: list[int] = []
    counts: dict[str, int] = {}
    for i, row in enumerate(rows):
        seen = counts.get(row[0], 0)
        counts[row[0]] = seen + 1
        if seen < limit:
            keep.append(i)
    shown: dict[str, list[Record]] = {}
    for i, record in zip(keep, _built(rows, flat, keep), strict=True):
        shown.setdefault(rows[i][0], []).append(record)
    return shown, counts, histogram(flat)


def _decoded(rows: list[tuple[Any, ...]]) -> list[Record]:
    """Every row as a Record, their value texts parsed in one call."""
    return _built(rows, _all_values([row[2] for row in rows]), range(len(rows)))


def _built(rows: list[tuple[Any, ...]], flat: np.ndarray, keep: Iterable[int]) -> list[Record]:
    """Records of the rows at `keep`, their values sliced from `flat` (the values of all
    `rows` in order) and read as the library reads them (`store.values.decode`): float32
    spellings rounded back to their float32, NaN as None. The rounding and NaN test run once
    over all values, not per record."""
    # a JSON array of numbers and nulls: one value more than its commas, none in "[]"
    sizes = [0 if len(r[2]) <= 2 else r[2].count(",") + 1 for r in rows]
    starts = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    f32 = [bool(r[3]) for r in rows]
    if all(f32):
        flat = flat.astype(np.float32).astype(np.float64)
    elif any(f32):  # rows of exact doubles stay as they are (they may not fit a float32)
        mask = np.repeat(np.array(f32), sizes)
        flat = flat.copy()
        flat[mask] = flat[mask].astype(np.float32)
    nan = bool(np.isnan(flat).any())
    out = []
    for i in keep:
        _, tokens, _, _, top, peak = rows[i]
        values: list[float | None] = flat[starts[i] : starts[i + 1]].tolist()
        if nan:
            values = [None if v != v else v for v in values]  # NaN is the only value != itself
        out.append(Record(_tokens(tokens), values, top, peak))
    return out


def _all_values(texts: list[str]) -> np.ndarray:
    """Every value of the value texts (JSON arrays) as one float64 array, NaN for null."""
    joined = "[" + ",".join(t[1:-1] for t in texts if len(t) > 2) + "]"
    if "null" not in joined:
        return np.array(_floats(joined), dtype=np.float64)
    wide = [math.nan if v is None else v for v in _floats_or_none(joined)]
    return np.array(wide, dtype=np.float64)


def summary(conn: sqlite3.Connection, neuron_id: str) -> NeuronSummary:
    """A stored neuron's id and primary explanation; BadNeuronId / NeuronNotFound."""
    nid = browse.require_neuron(conn, neuron_id)
    return msgspec.convert(browse.summaries(conn, [nid])[nid], NeuronSummary, from_attributes=True)


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
        graph = stages.call("graph_summary", conn, nid)  # the drawing has its own route
    except StageNotBuilt as exc:
        unavailable["n2g"] = str(exc)
        return None
    if graph is None:
        unavailable["n2g"] = stages.for_atlas(
            conn, f"no N2G graph stored for {nid}: run `neuronatlas n2g --db ATLAS --neurons {nid}`"
        )
        return None
    # every stored graph is drawable: the graph route renders its DOT to SVG on demand
    return N2GSummary(metrics=graph["metrics"], explanation=graph["explanation"], has_svg=True)


def _similar_or_reason(
    conn: sqlite3.Connection, nid: str, k: int, unavailable: dict[str, str]
) -> Similar | None:
    """The page's similar neurons, or None with the reason under `unavailable`: a missing
    section, not a failed page."""
    try:
        return _similar(conn, nid, k)
    except StageNotBuilt as exc:
        unavailable["similar"] = str(exc)
    except QueryTimeout:
        # the section, not the page: the vector index may still be loading after start-up
        unavailable["similar"] = (
            "similar neurons took too long (the vector index may still "
            "be loading): reload the page in a moment"
        )
    return None


def _similar(conn: sqlite3.Connection, nid: str, k: int) -> Similar:
    """Similar neurons: the kinds precomputed at build time come from one index range read;
    the others are computed now (a vector search, a token-overlap join)."""
    built = browse.similar_built(conn)
    ready = [kind for kind in browse.SIMILAR_KINDS if built.get(kind, 0) >= k]
    stored = browse.stored_similar(conn, nid, k, ready)
    return Similar(
        by_embedding=_hits(
            stored["embedding"]
            if "embedding" in stored
            else stages.call("similar_embedding", conn, nid, k),
            "embedding",
        ),
        by_tokens=_hits(
            stored["tokens"] if "tokens" in stored else stages.call("similar_tokens", conn, nid, k),
            "shared_tokens",
        ),
    )


def similar_neurons(
    conn: sqlite3.Connection, neuron_id: str, k: int = 10, model: Any = None
) -> SimilarNeurons:
    """Every kind of similar neuron (with `model`, by weights and the logit effect too),
    computed now rather than read from the precomputed rows, so any k and model work."""
    from neuronatlas.embed.similar import similar_neurons as compute

    found = compute(conn, neuron_id, k, model)
    if "logit_effects" in found:
        found["logit_effects"] = {"id": found["id"], **found["logit_effects"]}
    data = msgspec.convert(found, SimilarNeurons)
    _measured(data.by_embedding, "embedding")
    _measured(data.by_tokens, "shared_tokens")
    if data.by_weights is not None:
        _measured(data.by_weights.downstream, "weights")
        _measured(data.by_weights.upstream, "weights")
    return data


def _hits(rows: Any, measure: str | None = None) -> list[SearchHit]:
    """Rows as hits, each naming what its `similarity` measures (a key of MEASURES)."""
    hits = msgspec.convert(list(rows), list[SearchHit], from_attributes=True)
    return _measured(hits, measure)


def _measured(hits: list[SearchHit], measure: str | None) -> list[SearchHit]:
    if measure is not None:
        described = MEASURES[measure].description
        for h in hits:
            h.similarity_measure = described
    return hits


def neuron_graph(conn: sqlite3.Connection, neuron_id: str) -> NeuronGraph:
    """The N2G graph of a neuron (nodes, edges, metrics, svg); StageNotBuilt when absent."""
    nid = browse.require_neuron(conn, neuron_id)
    graph = stages.call("graph", conn, nid)
    if graph is None:
        raise StageNotBuilt(
            stages.for_atlas(
                conn,
                f"no N2G graph stored for {nid}: run `neuronatlas n2g --db ATLAS --neurons {nid}`",
            )
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
            f"`{stages.how_to_build('token_index', conn)}`"
        )
    if used == "semantic" and not browse.has_embeddings(conn):
        raise StageNotBuilt(
            stages.for_atlas(
                conn,
                "semantic search needs explanation embeddings: run `neuronatlas embed --db ATLAS`",
            )
        )
    if used == "fulltext" and not _has_words(query):
        return SearchResult(query, used, k, [], message="the query has no words to search for")
    extra = (embedder,) if used == "semantic" and embedder else ()
    hits = _hits(stages.call(used, conn, query, k, *extra), used)
    return SearchResult(query, used, k, hits[:k])


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
    parents: dict[int, store_embed.ClusterParent] = (
        stages.call_or_none("cluster_parents", conn) or {}
    )
    no_parent = {"parent": None, "coherence": None}
    fine = [
        msgspec.structs.asdict(c)
        | (msgspec.structs.asdict(parents[c.cluster]) if c.cluster in parents else no_parent)
        for c in stages.call_or_none("clusters", conn) or []
    ]
    coarse = [msgspec.structs.asdict(c) for c in stages.call_or_none("coarse_clusters", conn) or []]
    return fine, coarse, {c: p.parent for c, p in parents.items()}


NO_MAP_MESSAGE = (
    "The semantic map is not built for this atlas yet: neurons are laid "
    "out by layer (y) and index (x). Build it with "
    "`neuronatlas embed --db ATLAS` then `neuronatlas map --db ATLAS`."
)


def map_clusters(conn: sqlite3.Connection, limit: int = MAP_CAP) -> MapClusters:
    """The map's clusters and counts without reading its points: a few small reads, so the
    page can label the map while the points (`map_data`, `read.mapbin`) are on their way."""
    info = stages.call_or_none("map_info", conn)
    if info:
        clusters, coarse, _ = _cluster_levels(conn)
        count = int(info.n_points)
        return MapClusters(
            built=True,
            count=min(count, limit),
            truncated=count > limit,
            clusters=msgspec.convert(clusters, list[Cluster]),
            coarse=msgspec.convert(coarse, list[CoarseCluster]),
            coherence=msgspec.convert(
                stages.call_or_none("map_coherence", conn) or [],
                list[Coherence],
                from_attributes=True,
            ),
            message=None,
        )
    count = reader.neuron_count(conn)
    return MapClusters(
        False, min(count, limit), count > limit, [], [], [], stages.for_atlas(conn, NO_MAP_MESSAGE)
    )


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
            layer=[p.layer for p in points],
            neuron=[p.neuron for p in points],
            x=[round(float(p.x), 4) for p in points],
            y=[round(float(p.y), 4) for p in points],
            cluster=[p.cluster for p in points],
            coarse=[parent.get(p.cluster) for p in points],
            explanation=[(p.explanation or "")[:160] for p in points] if with_text else None,
        )
        return MapData(
            built=True,
            count=len(points),
            truncated=truncated,
            columns=cols,
            clusters=msgspec.convert(clusters, list[Cluster]),
            coarse=msgspec.convert(coarse, list[CoarseCluster]),
            coherence=msgspec.convert(
                stages.call_or_none("map_coherence", conn) or [],
                list[Coherence],
                from_attributes=True,
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
        message=stages.for_atlas(conn, NO_MAP_MESSAGE),
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
            n.explanation = None if found is None else found.explanation
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
