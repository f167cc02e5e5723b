"""The whole atlas in one call: scrape → top-token explanations → [LLM explanations → scores]
→ N2G → embed → map.

`build_atlas` runs the stages in order; each stage skips what is already done, so running it
again resumes an interrupted build and finishes a complete one in seconds. `neuronatlas demo`
is `build_atlas` with the offline defaults followed by `serve`; `neuronatlas build` is the same
with the user's model and corpus.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from neuronatlas.ids import parse_id
from neuronatlas.store import AtlasWriter, open_reader, probe_atlas, reader
from neuronatlas.store.rows import encode_json

log = logging.getLogger(__name__)

#: meta key recording the N2G time budget a build spent (see `_n2g`).
_N2G_BUDGET_KEY = "build_n2g_budget"

#: Tokens the demo scrapes: ~7 minutes of Gemma-3-270M on 2 CPU cores.
DEMO_TOKENS = 262_144


@dataclass
class BuildSettings:
    """What `build_atlas` builds (saved with each stage's run)."""

    model: str = "default"
    """`default` (offline Gemma-3-270M), a hub id or a local folder."""
    corpus: str = "default"
    """`default` (offline Wikipedia extracts), a file, or `hf:NAME[:SPLIT]`."""
    tokens: int = DEMO_TOKENS
    """Scraped tokens (rounded down to whole windows)."""
    context: int = 64
    top_k: int = 20
    random_k: int = 20
    batch_size: int = 16
    dtype: Literal["float32", "bfloat16"] = "float32"
    device: str = "auto"
    """Where the model runs for the scrape and N2G: auto (CUDA when available), cpu, cuda[:N]."""
    n2g_per_layer: int = 8
    """N2G graphs for this many neurons per layer: those with the highest max activation."""
    n2g_seconds: float = 240.0
    """Stop starting new N2G batches after this many seconds (the rest stays to do)."""
    embedder: str = "all-MiniLM-L6-v2"
    """Sentence embedder for the map and search. MiniLM embeds the demo's 36,864 explanations
    ~5x faster than the seed's all-mpnet-base-v2 (~40 texts/s on 2 cores, 15 minutes);
    pass `--embedder all-mpnet-base-v2` for the seed's model."""
    llm: str | None = None
    """LLM that writes explanations in words (`--llm SPEC`, see `neuronatlas.llm`); None keeps
    the atlas LLM-free."""
    llm_per_layer: int = 8
    """LLM explanations for this many neurons per layer (the strongest); 0 = every neuron."""
    stages: tuple[str, ...] = field(
        default=("scrape", "index", "explain", "llm", "score", "n2g", "embed", "map")
    )


StageProgress = Callable[[str, float, str], None]
"""progress(stage, fraction done in [0, 1], detail)."""


@dataclass
class StageResult:
    stage: str
    skipped: bool
    seconds: float
    detail: str


def _scrape(db: Path, s: BuildSettings, progress: StageProgress) -> tuple[bool, str]:
    from neuronatlas.scrape import ScrapeSettings, run_scrape

    wanted = {
        "model": s.model,
        "corpus": s.corpus,
        "tokens": s.tokens,
        "context": s.context,
        "top_k": s.top_k,
        "random_k": s.random_k,
    }
    if probe_atlas(db).kind == "atlas":
        conn = open_reader(db)
        last = reader.last_run(conn, "scrape")
        count = reader.neuron_count(conn)
        conn.close()
        if (
            last is not None
            and last.status == "done"
            and count
            and all(last.config.get(k) == v for k, v in wanted.items())
        ):
            return True, f"{count:,} neurons already scraped"
    settings = ScrapeSettings(
        model=s.model,
        corpus=s.corpus,
        tokens=s.tokens,
        context=s.context,
        top_k=s.top_k,
        random_k=s.random_k,
        batch_size=s.batch_size,
        dtype=s.dtype,
        device=s.device,
    )

    def on_event(ev) -> None:
        if ev.total:
            # scraping is ~95% of this stage's time, writing the rest
            frac = ev.done / ev.total
            frac = 0.95 * frac if ev.phase == "scrape" else 0.95 + 0.05 * frac
            progress("scrape", frac, f"{ev.phase} {ev.done:,}/{ev.total:,}")

    result = run_scrape(settings, db, on_event)
    return False, f"{result.neurons:,} neurons from {result.tokens:,} tokens"


def _index(db: Path, s: BuildSettings, progress: StageProgress) -> tuple[bool, str]:
    from neuronatlas.store.search import rebuild_search_indexes, stale_search_indexes

    with AtlasWriter(db) as writer:
        stale = stale_search_indexes(writer.conn)
        if not stale:
            return True, "token index and excerpt full text are current"
        counts = rebuild_search_indexes(writer.conn)
        similar = _similar_by_tokens(writer.conn)
    return False, (
        f"{counts['token_rows']:,} token rows, "
        f"{counts.get('excerpt_documents', 0):,} excerpt documents, "
        f"{similar:,} similar-neuron rows"
    )


def _similar_by_tokens(conn) -> int:
    """Every neuron's neighbours by shared peak tokens, stored for the explorer's pages."""
    from neuronatlas.relations.similar import precompute_similar

    return precompute_similar(conn, ["tokens"])["tokens"]


def _explain(db: Path, s: BuildSettings, progress: StageProgress) -> tuple[bool, str]:
    from neuronatlas.explain.top_tokens import explain_atlas

    n = explain_atlas(db, progress=lambda d, t: progress("explain", d / max(t, 1), f"{d:,}/{t:,}"))
    return n == 0, f"{n:,} top-token explanations written"


def _llm_targets(db: Path, s: BuildSettings) -> list[str]:
    conn = open_reader(db)
    try:
        if s.llm_per_layer > 0:
            return reader.strongest_neurons(conn, s.llm_per_layer)
        return reader.neuron_ids(conn)
    finally:
        conn.close()


def _llm(db: Path, s: BuildSettings, progress: StageProgress) -> tuple[bool, str]:
    """LLM explanations (source llm:<model>) for the chosen neurons; failures stay to do."""
    from neuronatlas.explain.llm_explainer import explain_neurons
    from neuronatlas.llm import open_client
    from neuronatlas.store.llm import ResponseCache

    cache = ResponseCache(db)
    assert s.llm is not None  # the stage runs only when --llm is given
    client = open_client(s.llm, cache)
    try:
        report = explain_neurons(
            db,
            client,
            neurons=_llm_targets(db, s),
            progress=lambda nid, d, t: progress("llm", d / max(t, 1), f"{d:,}/{t:,} {nid}"),
        )
    finally:
        client.close()
        cache.close()
    for nid, why in report.failed:
        log.warning("LLM explanation of %s failed (left for the next build): %s", nid, why)
    detail = f"{len(report.done):,} written, {len(report.already):,} already"
    if report.failed:
        detail += f", {len(report.failed)} failed (rerun to retry)"
    return not report.done and not report.failed, detail


def _score(db: Path, s: BuildSettings, progress: StageProgress) -> tuple[bool, str]:
    """Embedding scores of every explanation of the LLM-explained neurons, so each of them
    shows (and maps) its best-scored explanation."""
    from neuronatlas.score import get_scorer, score_neurons

    report = score_neurons(
        db,
        get_scorer("embedding", embedder=s.embedder),
        neurons=_llm_targets(db, s),
        progress=lambda nid, d, t: progress("score", d / max(t, 1), f"{d:,}/{t:,}"),
    )
    detail = f"{len(report.scored):,} scored, {report.already:,} already"
    if report.failed:
        detail += f", {len(report.failed)} without a score"
    return not report.scored, detail


def _n2g(db: Path, s: BuildSettings, progress: StageProgress) -> tuple[bool, str]:
    from neuronatlas.n2g.run import open_session, run_n2g
    from neuronatlas.store import n2g as n2g_store

    conn = open_reader(db)
    targets = reader.strongest_neurons(conn, s.n2g_per_layer)
    have = n2g_store.graph_ids(conn)
    spent = reader.meta(conn).get(_N2G_BUDGET_KEY)
    conn.close()
    todo = [t for t in targets if t not in have]
    if not todo:
        return True, f"{len(targets):,} graphs already built"
    budget = encode_json({"per_layer": s.n2g_per_layer, "seconds": s.n2g_seconds})
    if spent == budget:
        # An earlier build spent this very budget: a rerun serves at once instead of spending
        # it again. `neuronatlas n2g` (or a larger --n2g-seconds) builds the rest.
        return True, f"{len(targets) - len(todo):,} graphs (time budget spent earlier)"
    started = time.monotonic()
    built = failed = 0
    by_layer: dict[int, list[str]] = {}
    for nid in todo:
        by_layer.setdefault(parse_id(nid)[0], []).append(nid)
    session = open_session(db, s.model, device=s.device)
    for i, (_layer, ids) in enumerate(sorted(by_layer.items())):
        if time.monotonic() - started > s.n2g_seconds:
            log.info(
                "N2G time budget of %.0f s reached; %d layers left",
                s.n2g_seconds,
                len(by_layer) - i,
            )
            break
        report = run_n2g(db, neurons=ids, session=session)
        built += len(report.done)
        failed += len(report.failed)
        progress("n2g", (i + 1) / len(by_layer), f"{built} graphs")
    else:
        return False, f"{built} graphs built" + (f", {failed} failed" if failed else "")
    with AtlasWriter(db) as writer:
        writer.set_meta({_N2G_BUDGET_KEY: budget})
    return False, f"{built} graphs built within {s.n2g_seconds:.0f} s, {len(todo) - built} left"


def _embed(db: Path, s: BuildSettings, progress: StageProgress) -> tuple[bool, str]:
    from neuronatlas.embed.embed import EmbedConfig, embed_atlas

    res = embed_atlas(
        db,
        EmbedConfig(embedder=s.embedder),
        progress=lambda d, t: progress("embed", d / max(t, 1), f"{d:,}/{t:,}"),
    )
    return res.embedded == 0, f"{res.embedded:,} embedded, {res.unchanged:,} unchanged"


def _map(db: Path, s: BuildSettings, progress: StageProgress) -> tuple[bool, str]:
    from neuronatlas.map.neuron_map import build_map

    conn = open_reader(db)
    last_map, last_embed = reader.last_run(conn, "map"), reader.last_run(conn, "embed")
    conn.close()
    if (
        last_map is not None
        and last_map.status == "done"
        and (last_embed is None or last_map.id > last_embed.id)
    ):
        return True, "map is up to date"
    progress("map", 0.1, "UMAP")
    res = build_map(db)
    return False, f"{res.points:,} points, {res.coarse} coarse clusters of {res.clusters} fine"


STAGES: dict[
    str, tuple[Callable[[Path, BuildSettings, StageProgress], tuple[bool, str]], float]
] = {
    # name: (function, share of a fresh demo's time, for the overall progress bar)
    "scrape": (_scrape, 0.51),
    "index": (_index, 0.04),
    "explain": (_explain, 0.05),
    "llm": (_llm, 0.0),
    "score": (_score, 0.0),
    "n2g": (_n2g, 0.20),
    "embed": (_embed, 0.12),
    "map": (_map, 0.08),
}


#: Stages that run only when `BuildSettings.llm` names an LLM.
LLM_STAGES = ("llm", "score")


def stage_weight(name: str, settings: BuildSettings) -> float:
    """A stage's share of the overall progress bar (the LLM stages count only with --llm)."""
    if name in LLM_STAGES:
        return {"llm": 0.30, "score": 0.05}[name] if settings.llm else 0.0
    return STAGES[name][1]


def build_atlas(
    db: str | Path, settings: BuildSettings | None = None, progress: StageProgress | None = None
) -> list[StageResult]:
    """Run every stage of `settings.stages` on `db`, skipping work already done."""
    settings = settings or BuildSettings()
    db = Path(db)
    notify = progress or (lambda *_: None)
    unknown = [s for s in settings.stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; known: {list(STAGES)}")
    log.info("building %s with %s", db, asdict(settings))
    results = []
    for name in settings.stages:
        if name in LLM_STAGES and not settings.llm:
            continue  # an LLM-free build: these stages do not exist for it
        fn, _ = STAGES[name]
        started = time.monotonic()
        notify(name, 0.0, "starting")
        skipped, detail = fn(db, settings, notify)
        notify(name, 1.0, detail)
        results.append(StageResult(name, skipped, time.monotonic() - started, detail))
    return results
