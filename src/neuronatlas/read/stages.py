"""The other stages' read functions the explorer shows, and whether this atlas has them.

The explorer serves any atlas: one fresh from an import has records and explanations but no
embeddings, map or N2G graphs yet. Each optional feature is its read function (imported
explicitly) and the `Stage` object that writes its tables; when those tables are missing,
callers get `StageNotBuilt` with the stage's own command (`Stage.command`, for this atlas's
path), which the API turns into a 409 and the pages into a "not built yet" panel.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from neuronatlas.embed.stage import STAGE as EMBED
from neuronatlas.errors import NeuronAtlasError, StageNotBuilt
from neuronatlas.map.stage import STAGE as MAP
from neuronatlas.n2g.api import graph_summary, neuron_graph, predict_text
from neuronatlas.n2g.stage import STAGE as N2G
from neuronatlas.relations.similar import by_embedding, by_tokens
from neuronatlas.relations.stage import SIMILAR_TOKENS
from neuronatlas.search.fulltext import fulltext_search
from neuronatlas.search.semantic import load_vectors, semantic_search
from neuronatlas.search.stage import STAGE as INDEX
from neuronatlas.search.token_search import token_search
from neuronatlas.stage import Stage, with_atlas
from neuronatlas.store.embed import (
    cluster_labels,
    cluster_parents,
    coarse_clusters,
    map_coherence,
    map_info,
    map_points,
)
from neuronatlas.store.search import token_index_size

log = logging.getLogger(__name__)

Feature = Literal[
    "semantic",
    "tokens",
    "fulltext",
    "similar_embedding",
    "similar_tokens",
    "map",
    "clusters",
    "coarse_clusters",
    "cluster_parents",
    "map_coherence",
    "map_info",
    "graph",
    "graph_summary",
    "predict",
    "vectors",
    "token_index",
]
Reader = Callable[..., Any]


@dataclass(frozen=True)
class Source:
    """A feature's read function and the stage whose tables it reads (whose command builds
    them, and names them in the "not built yet" message)."""

    read: Reader
    stage: Stage[Any]


SOURCES: dict[Feature, Source] = {
    "semantic": Source(semantic_search, EMBED),
    "tokens": Source(token_search, INDEX),
    "fulltext": Source(fulltext_search, EMBED),
    "similar_embedding": Source(by_embedding, EMBED),
    "similar_tokens": Source(by_tokens, SIMILAR_TOKENS),
    "map": Source(map_points, MAP),
    "clusters": Source(cluster_labels, MAP),
    "coarse_clusters": Source(coarse_clusters, MAP),
    "cluster_parents": Source(cluster_parents, MAP),
    "map_coherence": Source(map_coherence, MAP),
    "map_info": Source(map_info, MAP),
    "graph": Source(neuron_graph, N2G),
    "graph_summary": Source(graph_summary, N2G),
    "predict": Source(predict_text, N2G),
    "vectors": Source(load_vectors, EMBED),
    "token_index": Source(token_index_size, INDEX),
}


def lookup(feature: Feature) -> Reader | None:
    """The read function of `feature`; None when it is not provided. Every feature of
    `SOURCES` is (they are imported above); this one function is where the explorer asks, so
    that a test or an embedder can serve fakes or leave a feature out."""
    source = SOURCES.get(feature)
    return None if source is None else source.read


def atlas_path(conn: sqlite3.Connection) -> str | None:
    """The file behind a connection (None for an in-memory database)."""
    for row in conn.execute("PRAGMA database_list").fetchall():
        if row[1] == "main":
            return str(row[2]) or None
    return None


def for_atlas(conn: sqlite3.Connection | None, command: str) -> str:
    """A command written with the placeholder `--db ATLAS`, with this atlas's real path
    (quoted for a shell), so that a message can be copied and run as it is."""
    return with_atlas(command, None if conn is None else atlas_path(conn))


def how_to_build(feature: Feature, conn: sqlite3.Connection | None = None) -> str:
    """The command that builds `feature`, for this atlas's file when `conn` is given."""
    return for_atlas(conn, SOURCES[feature].stage.command)


def not_built(stage: Stage[Any], conn: sqlite3.Connection | None, what: str = "") -> str:
    """The explorer's "not built yet" line for a stage's data: the command from the stage."""
    return (
        f"{what or stage.name} is not built yet for this atlas: run "
        f"`{for_atlas(conn, stage.command)}`"
    )


def stage_states(
    conn: sqlite3.Connection, stages: Sequence[Stage[Any]]
) -> list[tuple[Stage[Any], bool]]:
    """Each stage with whether this atlas holds its data (`Stage.built`)."""
    return [(stage, stage.built(conn)) for stage in stages]


def call(feature: Feature, conn: sqlite3.Connection, *args: Any, **kwargs: Any) -> Any:
    """Run a stage read; StageNotBuilt when the code or its tables are missing.

    A missing table ("no such table") is the state of an atlas the stage never ran on, not an
    error in the server, so it becomes StageNotBuilt too.
    """
    source = SOURCES[feature]
    fn = lookup(feature)
    if fn is None:
        raise StageNotBuilt(
            f"{feature} is not available: its code is missing from this installation of "
            "neuronatlas (install neuronatlas[all])"
        )
    try:
        return fn(conn, *args, **kwargs)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc) or "no such column" in str(exc):
            raise StageNotBuilt(not_built(source.stage, conn, feature)) from exc
        raise


def call_or_none(feature: Feature, conn: sqlite3.Connection, *args: Any, **kwargs: Any) -> Any:
    """Like `call`, but None when the stage is not built (for optional page sections)."""
    try:
        return call(feature, conn, *args, **kwargs)
    except StageNotBuilt:
        return None


def warm(path: str, has_embeddings: bool) -> None:
    """Load the explanation vectors (and their search index) into this process's cache, so the
    first neuron page or search does not pay for it. Runs in a background thread at start-up
    with its own connection and no time limit; a failure is logged, and the requests that need
    the vectors will report it themselves."""
    if not has_embeddings or lookup("vectors") is None:
        return
    from neuronatlas.store import open_reader

    conn = open_reader(path)
    try:
        call("vectors", conn)
        log.info("explanation vectors loaded")
    except (NeuronAtlasError, sqlite3.Error, OSError, ValueError, RuntimeError) as exc:
        # logged, not raised: nobody waits on this thread; requests report their own errors
        log.warning("could not preload explanation vectors: %s", exc)
    finally:
        conn.close()
