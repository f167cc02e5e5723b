"""The SQL of the whole-characters repair: find excerpts whose tokens hold U+FFFD, point their
records at re-decoded excerpts, and count what still holds U+FFFD.

Atlases written before whole characters stored each byte piece of a split character as
U+FFFD (`models.tokens`); the repair (`scrape.characters`) re-derives those excerpts' token
ids and hands the new token lists here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import NamedTuple

from neuronatlas.store.connection import transaction
from neuronatlas.store.rows import excerpt_digest

REPLACEMENT = "\ufffd"


class ReplacementCounts(NamedTuple):
    """How much of an atlas shows U+FFFD."""

    excerpts: int
    records: int
    explanations: int
    primary_explanations: int
    by_source: dict[str, int]
    """Explanations holding U+FFFD, per source ('top-tokens', 'n2g', 'openai', …)."""


def excerpts_with_replacement(conn: sqlite3.Connection) -> dict[str, int]:
    """tokens JSON → digest of every excerpt whose tokens hold U+FFFD."""
    rows = conn.execute(
        "SELECT tokens, digest FROM excerpts WHERE instr(tokens, ?) > 0", (REPLACEMENT,)
    )
    return {tokens: int(digest) for tokens, digest in rows}


def replace_excerpts(conn: sqlite3.Connection, pairs: Iterable[tuple[int, str]]) -> set[str]:
    """Give each excerpt `old digest` the token list `new tokens JSON` (same length), in one
    transaction; returns the ids of the neurons whose records changed.

    The new list gets its own content address (a writer that later stores the same tokens
    finds it); records move to it in one pass over `records`, and the old rows go.
    """
    rows = [(old, excerpt_digest(new), new) for old, new in pairs]
    if not rows:
        return set()
    with transaction(conn):
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS excerpt_moves(old INTEGER PRIMARY KEY, new)")
        conn.execute("DELETE FROM excerpt_moves")
        conn.executemany(
            "INSERT INTO excerpt_moves(old, new) VALUES (?, ?)", [(o, n) for o, n, _ in rows]
        )
        conn.executemany(
            "INSERT OR IGNORE INTO excerpts(digest, tokens) VALUES (?, ?)",
            [(n, t) for _, n, t in rows],
        )
        neurons = {
            nid
            for (nid,) in conn.execute(
                "SELECT DISTINCT neuron_id FROM records"
                " WHERE excerpt_digest IN (SELECT old FROM excerpt_moves)"
            )
        }
        conn.execute(
            "UPDATE records SET excerpt_digest ="
            " (SELECT m.new FROM excerpt_moves m WHERE m.old = records.excerpt_digest)"
            " WHERE excerpt_digest IN (SELECT old FROM excerpt_moves)"
        )
        conn.execute(
            "DELETE FROM excerpts WHERE digest IN (SELECT old FROM excerpt_moves)"
            " AND digest NOT IN (SELECT new FROM excerpt_moves)"
        )
        conn.execute("DROP TABLE excerpt_moves")
    return neurons


def count_replacement(conn: sqlite3.Connection) -> ReplacementCounts:
    """Excerpts, records and explanations (all, and each neuron's primary) with U+FFFD."""
    c = REPLACEMENT
    excerpts = conn.execute("SELECT count(*) FROM excerpts WHERE instr(tokens, ?) > 0", (c,))
    records = conn.execute(
        "SELECT count(*) FROM records r JOIN excerpts x ON x.digest = r.excerpt_digest"
        " WHERE instr(x.tokens, ?) > 0",
        (c,),
    )
    by_source = dict(
        conn.execute(
            "SELECT source, count(*) FROM explanations WHERE instr(text, ?) > 0 GROUP BY source",
            (c,),
        )
    )
    primary = conn.execute(
        "SELECT count(*) FROM neurons WHERE instr(explanation_text, ?) > 0", (c,)
    )
    return ReplacementCounts(
        excerpts=int(excerpts.fetchone()[0]),
        records=int(records.fetchone()[0]),
        explanations=sum(by_source.values()),
        primary_explanations=int(primary.fetchone()[0]),
        by_source={str(k): int(v) for k, v in by_source.items()},
    )
