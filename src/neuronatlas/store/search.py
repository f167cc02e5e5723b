"""SQL of the search indexes: token → neurons, and full-text (FTS5) over explanations and
excerpts.

Importers call `rebuild_token_index(conn)` once at the end: one INSERT … SELECT that reads each
top record's peak token straight out of the excerpt JSON. The scraper, which holds every top
record's peak token and maximum in memory, makes the same rows with `token_index_rows` and
stores them with `write_token_index` (no JSON read back; bench/README.md, "Writing the scrape
against its forward passes"). The excerpt FTS (one
document per neuron) costs about as much as the import itself, so it is built by
`neuronatlas index` (`rebuild_search_indexes`). The explanation FTS needs no rebuild: triggers
keep it current.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import msgspec
import numpy as np

from neuronatlas.ids import format_id
from neuronatlas.store.browse import forget_similar
from neuronatlas.store.connection import transaction
from neuronatlas.store.writer import now

#: rowid of a neuron's excerpt document: layer * 2**20 + neuron.
NEURON_SHIFT = 20


def _fingerprint(conn: sqlite3.Connection) -> str:
    """Changes when top records are added, removed or re-scraped."""
    row = conn.execute(
        "SELECT count(*), total(max_activation), total(peak_index), total(excerpt_digest % 1000003)"
        " FROM records WHERE category = 'top'"
    ).fetchone()
    return ":".join(repr(v) for v in row)


def _mark_built(conn: sqlite3.Connection, name: str, fingerprint: str) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO search_index_state(name, fingerprint, built_at) VALUES (?, ?, ?)",
        (name, fingerprint, now()),
    )


def rebuild_token_index(conn: sqlite3.Connection) -> int:
    """Rebuild token → neuron rows from every neuron's top records; returns the row count.

    A record counts for the token at its peak (the first maximum); records whose peak is not
    positive are skipped. A peak on a later piece of a split character ("" in the record)
    counts for the character, the nearest non-empty token before it (`models.tokens`).
    `share` is the fraction of the neuron's positive top-record peak mass that lands on the
    token, so a neuron's shares sum to 1.
    """
    fingerprint = _fingerprint(conn)
    with transaction(conn):
        conn.execute("DELETE FROM token_index")
        forget_similar(conn, "tokens")  # the stored neighbours by tokens came from these rows
        conn.execute(
            "INSERT INTO token_index(token, neuron_id, activation, hits, share)"
            " SELECT token, neuron_id, max(act), count(*), sum(act) / max(mass) FROM ("
            "  SELECT CASE p.token WHEN '' THEN (SELECT j.value FROM json_each(p.tokens) j"
            "           WHERE j.key < p.peak AND j.value <> '' ORDER BY j.key DESC LIMIT 1)"
            "         ELSE p.token END AS token,"
            "         p.neuron_id AS neuron_id, p.act AS act,"
            "         sum(p.act) OVER (PARTITION BY p.neuron_id) AS mass"
            "  FROM (SELECT json_extract(x.tokens, '$[' || r.peak_index || ']') AS token,"
            "               x.tokens AS tokens, r.peak_index AS peak,"
            "               r.neuron_id AS neuron_id, r.max_activation AS act"
            "        FROM records r JOIN excerpts x ON x.digest = r.excerpt_digest"
            "        WHERE r.category = 'top' AND r.peak_index IS NOT NULL"
            "          AND r.max_activation > 0) p"
            " ) WHERE token IS NOT NULL GROUP BY token, neuron_id"
        )
        count = int(conn.execute("SELECT count(*) FROM token_index").fetchone()[0])
        _mark_built(conn, "token_index", fingerprint)
    return count


def token_index_rows(
    neuron_ids: Sequence[str], tokens: Sequence[str | None], activations: Sequence[float]
) -> list[tuple[str, str, float, int, float]]:
    """The rows `rebuild_token_index` makes, from the top records held in memory: one entry
    per top record with a peak and a positive maximum, in (neuron, rank) order — its neuron,
    the token it counts for (the peak's, or for a later piece of a split character the
    nearest non-empty token before it; None when there is none) and its maximum.

    The sums are taken in that order, one addition at a time, as SQLite's sum() takes them
    (np.bincount adds sequentially); a float32 maximum widened to a double has 24 significant
    bits, so a neuron's sum is exact, whatever the order, unless its peaks span more than
    ~2^24. Rows come sorted by (token, neuron id): the table's key order."""
    acts = np.asarray(activations, dtype=np.float64)
    if not (len(neuron_ids) == len(tokens) == len(acts)):
        raise ValueError("token_index_rows needs one neuron id and one token per activation")
    if not len(acts):
        return []
    neurons = sorted(set(neuron_ids))
    n_code = dict(zip(neurons, range(len(neurons)), strict=True))
    owner = np.fromiter((n_code[n] for n in neuron_ids), dtype=np.int64, count=len(acts))
    mass = np.bincount(owner, weights=acts, minlength=len(neurons))
    keep = np.fromiter((t is not None for t in tokens), dtype=bool, count=len(acts))
    names = sorted({t for t in tokens if t is not None})
    t_code = dict(zip(names, range(len(names)), strict=True))
    token = np.fromiter(
        (t_code[t] for t in tokens if t is not None), dtype=np.int64, count=int(keep.sum())
    )
    key = token * len(neurons) + owner[keep]
    groups, which = np.unique(key, return_inverse=True)
    kept = acts[keep]
    total = np.bincount(which, weights=kept, minlength=len(groups))
    hits = np.bincount(which, minlength=len(groups))
    top = np.full(len(groups), -np.inf)
    np.maximum.at(top, which, kept)
    share = total / mass[groups % len(neurons)]
    return list(
        zip(
            [names[t] for t in (groups // len(neurons)).tolist()],
            [neurons[n] for n in (groups % len(neurons)).tolist()],
            top.tolist(),
            hits.tolist(),
            share.tolist(),
            strict=True,
        )
    )


def write_token_index(
    conn: sqlite3.Connection, rows: Sequence[tuple[str, str, float, int, float]]
) -> int:
    """Replace the token index with `rows` (`token_index_rows`), as `rebuild_token_index`
    would; returns the row count."""
    fingerprint = _fingerprint(conn)
    with transaction(conn):
        conn.execute("DELETE FROM token_index")
        forget_similar(conn, "tokens")
        conn.executemany(
            "INSERT INTO token_index(token, neuron_id, activation, hits, share)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        _mark_built(conn, "token_index", fingerprint)
    return len(rows)


def _neuron_documents(conn: sqlite3.Connection) -> Iterator[tuple[int, str]]:
    """(rowid, text of the neuron's top records, one per line), streamed neuron by neuron.

    Joining tokens in Python (msgspec) is ~3x faster than json_each + group_concat in SQL.
    """
    decode = msgspec.json.Decoder(list[str]).decode
    rows = conn.execute(
        f"SELECT (n.layer << {NEURON_SHIFT}) + n.neuron, x.tokens FROM neuron_info n"
        " JOIN records r ON r.neuron_id = n.id AND r.category = 'top'"
        " JOIN excerpts x ON x.digest = r.excerpt_digest ORDER BY n.layer, n.neuron, r.rank"
    )
    current, lines = -1, list[str]()
    for rowid, tokens in rows:
        if rowid != current:
            if lines:
                yield current, "\n".join(lines)
            current, lines = rowid, []
        lines.append("".join(decode(tokens)))
    if lines:
        yield current, "\n".join(lines)


def rebuild_excerpt_fulltext(conn: sqlite3.Connection) -> int:
    """Rebuild the excerpt FTS: one document per neuron, the text of its top records.

    Costs about as much as writing the records did (FTS5 tokenises every excerpt token), so
    importers call only `rebuild_token_index`; `neuronatlas index` builds this too.
    """
    fingerprint = _fingerprint(conn)
    with transaction(conn):
        conn.execute("INSERT INTO excerpts_fts(excerpts_fts) VALUES ('delete-all')")
        cur = conn.executemany(
            "INSERT INTO excerpts_fts(rowid, text) VALUES (?, ?)", _neuron_documents(conn)
        )
        _mark_built(conn, "excerpts_fts", fingerprint)
    return cur.rowcount


def excerpt_fulltext_built(conn: sqlite3.Connection) -> bool:
    return (
        conn.execute("SELECT 1 FROM search_index_state WHERE name = 'excerpts_fts'").fetchone()
        is not None
    )


def rebuild_explanation_fulltext(conn: sqlite3.Connection) -> None:
    """Rebuild the explanation FTS from `explanations` (triggers normally keep it current)."""
    with transaction(conn):
        conn.execute("INSERT INTO explanations_fts(explanations_fts) VALUES ('rebuild')")


def rebuild_search_indexes(conn: sqlite3.Connection, excerpts: bool = True) -> dict[str, int]:
    """Token index and (with `excerpts`) the excerpt FTS from the stored records; the
    explanation FTS stays current by itself."""
    out = {"token_rows": rebuild_token_index(conn)}
    if excerpts:
        out["excerpt_documents"] = rebuild_excerpt_fulltext(conn)
    return out


def stale_search_indexes(conn: sqlite3.Connection) -> list[str]:
    """Names of the indexes whose records changed since they were built (or never built)."""
    fingerprint = _fingerprint(conn)
    built = dict(conn.execute("SELECT name, fingerprint FROM search_index_state"))
    return [name for name in ("token_index", "excerpts_fts") if built.get(name) != fingerprint]


def token_index_size(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM token_index").fetchone()[0])


# -- queries ---------------------------------------------------------------------------------


class TokenMatch(NamedTuple):
    """A neuron peaking on some of the query tokens (summed over them)."""

    neuron_id: str
    token: str
    """The best-sharing of the query tokens."""
    activation: float
    hits: int
    share: float
    """Summed share of the neuron's top-record peak mass on the query tokens."""


class TokenOverlap(NamedTuple):
    """A neuron sharing peak tokens with another one."""

    neuron_id: str
    shared_mass: float
    """Σ min(share) over the shared tokens (weighted Jaccard = m / (2 − m))."""
    tokens: str
    """The shared tokens joined by \\x1f."""


class ExplanationHit(NamedTuple):
    """A full-text match in explanation text (lower bm25 is better)."""

    explanation_id: int
    bm25: float


class ExcerptHit(NamedTuple):
    """A full-text match in a neuron's top-record text (lower bm25 is better)."""

    neuron_id: str
    bm25: float


def token_matches(conn: sqlite3.Connection, tokens: Sequence[str], limit: int) -> list[TokenMatch]:
    """(neuron id, token, activation, hits, share) rows for neurons peaking on any of `tokens`,
    summed per neuron over the tokens, strongest first: (neuron, best token, max activation,
    hits, summed share)."""
    toks = sorted(set(tokens))
    if not toks:
        return []
    marks = ",".join("?" * len(toks))
    rows = conn.execute(
        "SELECT neuron_id, token, max(activation), sum(hits), sum(share) FROM ("
        f" SELECT * FROM token_index WHERE token IN ({marks}) ORDER BY share DESC"
        ") GROUP BY neuron_id ORDER BY sum(share) DESC, max(activation) DESC, neuron_id"
        " LIMIT ?",
        (*toks, limit),
    )
    return [TokenMatch._make(r) for r in rows]


def neuron_tokens(conn: sqlite3.Connection, neuron_id: str) -> list[tuple[str, float, int]]:
    """(token, share, hits) of a neuron's peak tokens, largest share first."""
    return conn.execute(
        "SELECT token, share, hits FROM token_index WHERE neuron_id = ? ORDER BY share DESC",
        (neuron_id,),
    ).fetchall()


def token_overlap(conn: sqlite3.Connection, neuron_id: str, limit: int) -> list[TokenOverlap]:
    """(neuron id, weighted Jaccard, shared tokens joined by \\x1f) of neurons sharing peak
    tokens with `neuron_id`, best first.

    Weighted Jaccard of the share vectors: Σ min / Σ max. Every neuron's shares sum to 1
    (see `rebuild_token_index`), so Σ max = 2 − Σ min and one indexed join suffices.
    Symmetric by construction.
    """
    rows = conn.execute(
        "SELECT t.neuron_id, sum(min(t.share, a.share)) AS m, group_concat(t.token, char(31))"
        " FROM token_index a JOIN token_index t ON t.token = a.token AND t.neuron_id != a.neuron_id"
        " WHERE a.neuron_id = ? GROUP BY t.neuron_id"
        " ORDER BY m DESC, t.neuron_id LIMIT ?",
        (neuron_id, limit),
    )
    return [TokenOverlap._make(r) for r in rows]


class TokenShares(NamedTuple):
    """Every row of the token index, ordered by token then neuron id (aligned lists)."""

    tokens: list[str]
    neuron_ids: list[str]
    shares: list[float]


def token_shares(conn: sqlite3.Connection) -> TokenShares:
    """The whole token index in one scan of its primary key: what computing every neuron's
    token neighbours at once needs (`embed.token_neighbours`), instead of one self-join per
    neuron whose cost grows with the square of the commonest tokens' neuron counts."""
    rows = conn.execute(
        "SELECT token, neuron_id, share FROM token_index ORDER BY token, neuron_id"
    ).fetchall()
    return TokenShares([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


def fulltext_explanations(conn: sqlite3.Connection, match: str, limit: int) -> list[ExplanationHit]:
    """(explanation id, bm25) for an FTS5 MATCH expression over explanation text, best first."""
    rows = conn.execute(
        "SELECT rowid, bm25(explanations_fts) FROM explanations_fts"
        " WHERE explanations_fts MATCH ? ORDER BY rank LIMIT ?",
        (match, limit),
    )
    return [ExplanationHit._make(r) for r in rows]


def fulltext_excerpts(conn: sqlite3.Connection, match: str, limit: int) -> list[ExcerptHit]:
    """(neuron id, bm25) for an FTS5 MATCH expression over neurons' top-record text."""
    rows = conn.execute(
        "SELECT rowid, bm25(excerpts_fts) FROM excerpts_fts"
        " WHERE excerpts_fts MATCH ? ORDER BY rank LIMIT ?",
        (match, limit),
    ).fetchall()
    mask = (1 << NEURON_SHIFT) - 1
    return [
        ExcerptHit(format_id(rowid >> NEURON_SHIFT, rowid & mask), score) for rowid, score in rows
    ]
