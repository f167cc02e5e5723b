"""Full-text search (SQLite FTS5) over explanation text and the text of neurons' top records.

A plain query is cut into words, each quoted (so "C++" or "don't" cannot be FTS syntax errors)
and all must match; when nothing matches all words, any word may. `raw=True` passes FTS5 query
syntax through (phrases, NEAR, prefix*). Explanation matches come first (they describe the
neuron), then neurons whose top excerpts match; similarity is −bm25 (higher is better; bm25 of
the two indexes is not on one scale, hence the fixed order). The excerpt index exists once
`neuronatlas index` has run; until then `field="both"` searches explanations only.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Literal

from msgspec.structs import asdict

from neuronatlas.errors import BadInput
from neuronatlas.store import embed as store_embed
from neuronatlas.store import search as store

_WORD = re.compile(r"\w+", re.UNICODE)

Field = Literal["both", "explanations", "excerpts"]


def match_expressions(query: str) -> list[str]:
    """FTS5 MATCH expressions for a plain query: all words, then any word."""
    words = _WORD.findall(query)
    if not words:
        raise BadInput(f"no searchable words in {query!r}")
    quoted = ['"' + w.replace('"', '""') + '"' for w in words]
    forms = [" AND ".join(quoted)]
    if len(quoted) > 1:
        forms.append(" OR ".join(quoted))
    return forms


def _run(conn: sqlite3.Connection, fn, expressions: list[str], limit: int) -> list[tuple]:
    for expr in expressions:
        try:
            rows = fn(conn, expr, limit)
        except sqlite3.OperationalError as exc:
            raise BadInput(f"full-text query {expr!r}: {exc}") from exc
        if rows:
            return rows
    return []


def fulltext_search(
    conn: sqlite3.Connection,
    query: str,
    k: int = 10,
    field: Field = "both",
    raw: bool = False,
) -> list[dict]:
    """Neurons whose explanation or top-record text contains the query's words.

    Each result: id, layer, neuron, explanation, score, similarity (−bm25) and `field`
    ('explanation' or 'excerpts'). A neuron appears once.
    """
    if field not in ("both", "explanations", "excerpts"):
        raise BadInput(f"field must be both, explanations or excerpts, not {field!r}")
    expressions = [query] if raw else match_expressions(query)
    out: dict[str, dict] = {}
    if field in ("both", "explanations"):
        hits = _run(conn, store.fulltext_explanations, expressions, k * 3)
        info = store_embed.describe_explanations(conn, [eid for eid, _ in hits])
        for eid, bm25 in hits:
            row = info.get(eid)
            if row is not None and row.id not in out:
                out[row.id] = asdict(row) | {"similarity": -bm25, "field": "explanation"}
    if field == "excerpts" and not store.excerpt_fulltext_built(conn):
        raise BadInput(
            "the excerpt full-text index is not built: run `neuronatlas index --db PATH`"
        )
    if field in ("both", "excerpts") and len(out) < k and store.excerpt_fulltext_built(conn):
        hits = _run(conn, store.fulltext_excerpts, expressions, k * 2)
        neurons = store_embed.describe_neurons(conn, [nid for nid, _ in hits])
        for nid, bm25 in hits:
            if nid in neurons and nid not in out:
                out[nid] = asdict(neurons[nid]) | {"similarity": -bm25, "field": "excerpts"}
    return list(out.values())[:k]
