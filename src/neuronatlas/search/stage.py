"""The index stage as a `Stage`: the token index (token search) and the excerpt full-text
index, rebuilt from the stored records when those changed since they were built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neuronatlas.stage import Progress, Report, Stage


@dataclass
class IndexSettings:
    excerpts: bool = True
    """Also (re)build the excerpt full-text index (slow: about as long as the import)."""
    force: bool = False
    """Rebuild even when the indexes are current (`neuronatlas index` always does)."""


def run(db: Path, settings: IndexSettings, progress: Progress) -> Report:
    """Rebuild the stale search indexes (all of them with `force`)."""
    from neuronatlas.store import AtlasWriter
    from neuronatlas.store.search import rebuild_search_indexes, stale_search_indexes

    with AtlasWriter(db) as writer:
        if not settings.force and not stale_search_indexes(writer.conn):
            return Report(STAGE.name, True, "token index and excerpt full text are current")
        counts = rebuild_search_indexes(writer.conn, excerpts=settings.excerpts)
    return Report(
        STAGE.name,
        False,
        f"{counts['token_rows']:,} token rows, "
        f"{counts.get('excerpt_documents', 0):,} excerpt documents",
        result=counts,
    )


STAGE: Stage[IndexSettings] = Stage(
    name="index",
    settings=IndexSettings,
    run=run,
    writes=("token_index",),
    command="neuronatlas index --db ATLAS",
    needs=("scrape",),
    weight=0.04,
    summary="the token index and the excerpt full-text index (token and text search)",
)
