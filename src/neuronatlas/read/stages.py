"""The other stages' read functions the explorer shows, and whether this atlas has them.

The explorer serves any atlas: one fresh from an import has records and explanations but no
embeddings, map or N2G graphs yet. Each optional feature is found here by an explicit import
of the function that reads it; when that code is absent (a slim install) or its tables are
empty, callers get `StageNotBuilt` with the command that builds it, which the API turns into
a 409 and the pages into a "not built yet" panel.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from neuronatlas.errors import NeuronAtlasError, StageNotBuilt

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


def _semantic() -> Reader:
    from neuronatlas.search.semantic import semantic_search

    return semantic_search


def _tokens() -> Reader:
    from neuronatlas.search.token_search import token_search

    return token_search


def _fulltext() -> Reader:
    from neuronatlas.search.fulltext import fulltext_search

    return fulltext_search


def _similar_embedding() -> Reader:
    from neuronatlas.relations.similar import by_embedding

    return by_embedding


def _similar_tokens() -> Reader:
    from neuronatlas.relations.similar import by_tokens

    return by_tokens


def _map() -> Reader:
    from neuronatlas.store.embed import map_points

    return map_points


def _clusters() -> Reader:
    from neuronatlas.store.embed import cluster_labels

    return cluster_labels


def _coarse_clusters() -> Reader:
    from neuronatlas.store.embed import coarse_clusters

    return coarse_clusters


def _cluster_parents() -> Reader:
    from neuronatlas.store.embed import cluster_parents

    return cluster_parents


def _map_info() -> Reader:
    from neuronatlas.store.embed import map_info

    return map_info


def _map_coherence() -> Reader:
    from neuronatlas.store.embed import map_coherence

    return map_coherence


def _graph() -> Reader:
    from neuronatlas.n2g.api import neuron_graph

    return neuron_graph


def _graph_summary() -> Reader:
    from neuronatlas.n2g.api import graph_summary

    return graph_summary


def _predict() -> Reader:
    from neuronatlas.n2g.api import predict_text

    return predict_text


def _vectors() -> Reader:
    from neuronatlas.search.semantic import load_vectors

    return load_vectors


def _token_index() -> Reader:
    from neuronatlas.store.search import token_index_size

    return token_index_size


@dataclass(frozen=True)
class Stage:
    """Where a feature's read function comes from and the command that builds its data."""

    load: Callable[[], Reader]
    builds_it: str


_EMBED = "neuronatlas embed --db ATLAS"
_N2G = "neuronatlas n2g --db ATLAS --all"
STAGES: dict[Feature, Stage] = {
    "semantic": Stage(_semantic, _EMBED),
    "tokens": Stage(_tokens, "neuronatlas index --db ATLAS"),
    "fulltext": Stage(_fulltext, _EMBED),
    "similar_embedding": Stage(_similar_embedding, _EMBED),
    "similar_tokens": Stage(_similar_tokens, "neuronatlas index --db ATLAS"),
    "map": Stage(_map, "neuronatlas map --db ATLAS"),
    "clusters": Stage(_clusters, "neuronatlas map --db ATLAS"),
    "coarse_clusters": Stage(_coarse_clusters, "neuronatlas map --db ATLAS"),
    "cluster_parents": Stage(_cluster_parents, "neuronatlas map --db ATLAS"),
    "map_coherence": Stage(_map_coherence, "neuronatlas map --db ATLAS"),
    "map_info": Stage(_map_info, "neuronatlas map --db ATLAS"),
    "graph": Stage(_graph, _N2G),
    "graph_summary": Stage(_graph_summary, _N2G),
    "predict": Stage(_predict, _N2G),
    "vectors": Stage(_vectors, _EMBED),
    "token_index": Stage(_token_index, "neuronatlas index --db ATLAS"),
}


def lookup(feature: Feature) -> Reader | None:
    """The stage function for `feature`, or None when this installation lacks it."""
    try:
        return STAGES[feature].load()
    except ImportError as exc:
        log.debug("%s unavailable: %s", feature, exc)
        return None


def atlas_path(conn: sqlite3.Connection) -> str | None:
    """The file behind a connection (None for an in-memory database)."""
    for row in conn.execute("PRAGMA database_list").fetchall():
        if row[1] == "main":
            return str(row[2]) or None
    return None


def for_atlas(conn: sqlite3.Connection | None, command: str) -> str:
    """A command written with the placeholder `--db ATLAS`, with this atlas's real path
    (quoted for a shell), so that a message can be copied and run as it is."""
    path = None if conn is None else atlas_path(conn)
    if path is None:
        return command
    import shlex

    return command.replace("--db ATLAS", f"--db {shlex.quote(path)}")


def how_to_build(feature: Feature, conn: sqlite3.Connection | None = None) -> str:
    """The command that builds `feature`, for this atlas's file when `conn` is given."""
    return for_atlas(conn, STAGES[feature].builds_it)


def call(feature: Feature, conn: sqlite3.Connection, *args: Any, **kwargs: Any) -> Any:
    """Run a stage read; StageNotBuilt when the code or its tables are missing.

    A missing table ("no such table") is the state of an atlas the stage never ran on, not an
    error in the server, so it becomes StageNotBuilt too.
    """
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
            raise StageNotBuilt(
                f"{feature} is not built yet for this atlas: run `{how_to_build(feature, conn)}`"
            ) from exc
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
