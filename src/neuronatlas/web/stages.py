"""The other stages' read functions the explorer shows, and whether this atlas has them.

The explorer serves any atlas: one fresh from an import has records and explanations but no
embeddings, map or N2G graphs yet. Each optional feature is looked up here; when its code is
absent or its tables are empty, callers get `StageNotBuilt` with the command that builds it,
which the API turns into a 409 and the pages into a "not built yet" panel.
"""

from __future__ import annotations

import importlib
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from neuronatlas.errors import NeuronAtlasError, StageNotBuilt

log = logging.getLogger(__name__)

# feature → (module, function, the command that builds the data it reads)
FEATURES: dict[str, tuple[str, str, str]] = {
    "semantic": ("neuronatlas.embed.search", "semantic_search", "neuronatlas embed --db ATLAS"),
    "tokens": ("neuronatlas.embed.tokens", "token_search", "neuronatlas embed --db ATLAS"),
    "fulltext": ("neuronatlas.embed.fulltext", "fulltext_search", "neuronatlas embed --db ATLAS"),
    "similar": ("neuronatlas.embed.similar", "similar_neurons", "neuronatlas embed --db ATLAS"),
    "map": ("neuronatlas.store.embed", "map_points", "neuronatlas map --db ATLAS"),
    "clusters": ("neuronatlas.store.embed", "cluster_labels", "neuronatlas map --db ATLAS"),
    "coarse_clusters": ("neuronatlas.store.embed", "coarse_clusters", "neuronatlas map --db ATLAS"),
    "cluster_parents": ("neuronatlas.store.embed", "cluster_parents", "neuronatlas map --db ATLAS"),
    "map_coherence": ("neuronatlas.store.embed", "map_coherence", "neuronatlas map --db ATLAS"),
    "graph": ("neuronatlas.n2g.api", "neuron_graph", "neuronatlas n2g --db ATLAS --all"),
    "predict": ("neuronatlas.n2g.api", "predict_text", "neuronatlas n2g --db ATLAS --all"),
    "vectors": ("neuronatlas.embed.search", "load_vectors", "neuronatlas embed --db ATLAS"),
    "token_index": ("neuronatlas.store.search", "token_index_size", "neuronatlas index --db ATLAS"),
    "logit_effects": (
        "neuronatlas.embed.similar",
        "logit_effects",
        "neuronatlas serve --model SPEC",
    ),
}


def lookup(feature: str) -> Callable[..., Any] | None:
    """The stage function for `feature`, or None when this installation lacks it."""
    module, name, _ = FEATURES[feature]
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        log.debug("%s unavailable: %s", feature, exc)
        return None


def how_to_build(feature: str) -> str:
    return FEATURES[feature][2]


def call(feature: str, conn: sqlite3.Connection, *args: Any, **kwargs: Any) -> Any:
    """Run a stage read; StageNotBuilt when the code or its tables are missing.

    A missing table ("no such table") is the state of an atlas the stage never ran on, not an
    error in the server, so it becomes StageNotBuilt too.
    """
    fn = lookup(feature)
    if fn is None:
        raise StageNotBuilt(
            f"{feature} is not available in this installation of neuronatlas "
            f"({FEATURES[feature][0]} is missing)"
        )
    try:
        return fn(conn, *args, **kwargs)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc) or "no such column" in str(exc):
            raise StageNotBuilt(
                f"{feature} is not built yet for this atlas: run `{how_to_build(feature)}`"
            ) from exc
        raise


def call_or_none(feature: str, conn: sqlite3.Connection, *args: Any, **kwargs: Any) -> Any:
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
