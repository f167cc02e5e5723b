"""The search surface: neurons for a query, by the best mode the atlas has or the one asked.

`/search`, `/api/search`, `/api/tokens`, `neuronatlas search` / `tokens` and `Atlas.search`
all call `search`; the modes' code comes from `read.stages`, so an atlas without embeddings
or a token index gets StageNotBuilt with the command that builds it.
"""

from __future__ import annotations

import sqlite3
from typing import Literal

from neuronatlas.errors import BadInput, StageNotBuilt
from neuronatlas.read import stages
from neuronatlas.read.hits import hits
from neuronatlas.read.views import SearchMode, SearchResult
from neuronatlas.store import browse

UsedMode = Literal["semantic", "tokens", "fulltext", "substring"]
MAX_K = 100


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
        return SearchResult(query, used, k, hits(browse.explanation_substring(conn, query, k)))
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
    found = hits(stages.call(used, conn, query, k, *extra), used)
    return SearchResult(query, used, k, found[:k])


def _has_words(query: str) -> bool:
    """Whether full-text search finds anything to match in `query` (a query of only
    punctuation has no words: no hits, rather than an error)."""
    from neuronatlas.search.fulltext import match_expressions

    try:
        match_expressions(query)
    except BadInput:
        return False
    return True


def _best_mode(conn: sqlite3.Connection) -> UsedMode:
    """semantic when embeddings exist and the feature is provided, else fulltext, else
    substring."""
    if browse.has_embeddings(conn) and stages.lookup("semantic") is not None:
        return "semantic"
    if stages.lookup("fulltext") is not None:
        try:
            stages.call("fulltext", conn, "probe", 1)
            return "fulltext"
        except StageNotBuilt:
            pass
    return "substring"
