"""Stage rows as `SearchHit`s, each naming what its `similarity` measures.

Search, similar neurons and weight relations all answer with hits whose similarity means
something different (a cosine, a token share, a bm25, a weight product); every surface turns
its rows into hits here so the measure's description (`views.MEASURES`) is always attached.
"""

from __future__ import annotations

from typing import Any

import msgspec

from neuronatlas.read.views import MEASURES, SearchHit


def hits(rows: Any, measure: str | None = None) -> list[SearchHit]:
    """Rows as hits, each naming what its `similarity` measures (a key of MEASURES)."""
    hits = msgspec.convert(list(rows), list[SearchHit], from_attributes=True)
    return measured(hits, measure)


def measured(hits: list[SearchHit], measure: str | None) -> list[SearchHit]:
    """The hits, each given the description of `measure` (None leaves them as they are)."""
    if measure is not None:
        described = MEASURES[measure].description
        for h in hits:
            h.similarity_measure = described
    return hits
