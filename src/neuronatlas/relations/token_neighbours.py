"""Every neuron's k nearest neighbours by shared peak tokens, all at once, in bounded blocks.

The per-neuron way (`store.search.token_overlap`: a self-join of the token index for one
neuron) visits, for each neuron, every other neuron sharing one of its tokens; summed over
neurons that is Σ over tokens of (neurons on the token)², and the commonest peak tokens
(" the", ",", ".") sit on thousands of neurons each at GPT-2 XL's size, so the sum grows with
the square of the atlas. Here the index is read once, queries are grouped into blocks whose
(query, candidate) pairs stay under `PAIR_BUDGET`, and each block's weighted-Jaccard
numerators Σ min(share) are summed with numpy (`bincount` into a dense query × neuron
table when that is small, else `unique` + `bincount`). The work is the same
Σ (neurons on the token)², done at numpy's speed instead of SQLite's row by row, and memory is
bounded by the budget. The answer is `token_overlap`'s: same sums in the same order (each
query's tokens in token order), best first with ties by neuron id, same shared tokens.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from neuronatlas.store.search import TokenShares

#: (query, candidate) pairs one block may expand to: 2**20 pairs ≈ 100 MB of work arrays.
PAIR_BUDGET = 1 << 20

#: A block sums its pairs in a dense (query × neuron) table when the table has at most this
#: many cells per pair, else by sorting the pairs' keys (`np.unique`): at the demo's size the
#: table is a few MB and scanning it costs less than the sort; at GPT-2 XL's the sort wins.
DENSE_PER_PAIR = 8

#: (other neuron id, weighted Jaccard rounded to 6 places, up to 10 shared tokens, sorted)
Neighbour = tuple[str, float, list[str]]


def all_token_neighbours(
    index: TokenShares, k: int, budget: int = PAIR_BUDGET
) -> Iterator[tuple[str, list[Neighbour]]]:
    """(neuron id, its k best neighbours best first) for every neuron in the token index, in
    neuron id order; neurons that share no token with another get an empty list."""
    if not index.neuron_ids or k <= 0:
        return
    ids = sorted(set(index.neuron_ids))  # row order = neuron id order (the SQL tie-break)
    row_of = {nid: i for i, nid in enumerate(ids)}
    names = sorted(set(index.tokens))
    tok_of = {t: i for i, t in enumerate(names)}
    n = len(ids)
    nrow = np.fromiter((row_of[x] for x in index.neuron_ids), np.int64, len(index.neuron_ids))
    ntok = np.fromiter((tok_of[x] for x in index.tokens), np.int64, len(index.tokens))
    share = np.asarray(index.shares, dtype=np.float64)
    # postings by token (the rows come ordered by token, then neuron id)
    by_tok = np.lexsort((nrow, ntok))
    post_row, post_share = nrow[by_tok], share[by_tok]
    tok_start = np.searchsorted(ntok[by_tok], np.arange(len(names) + 1))
    tok_len = np.diff(tok_start)
    # entries by neuron, each neuron's tokens in token order (the SQL's summation order)
    by_row = np.lexsort((ntok, nrow))
    ent_tok, ent_share = ntok[by_row], share[by_row]
    row_start = np.searchsorted(nrow[by_row], np.arange(n + 1))
    tokens_of = [[names[t] for t in ent_tok[row_start[r] : row_start[r + 1]]] for r in range(n)]
    cost = np.add.reduceat(tok_len[ent_tok], row_start[:-1]) if len(ent_tok) else np.zeros(n)
    cost = np.where(np.diff(row_start) > 0, cost, 0)
    q0 = 0
    while q0 < n:
        q1, spent = q0 + 1, int(cost[q0])
        while q1 < n and spent + int(cost[q1]) <= budget:
            spent += int(cost[q1])
            q1 += 1
        yield from _block(
            q0, q1, n, ids, tokens_of, k, row_start, ent_tok, ent_share,
            tok_start, tok_len, post_row, post_share,
        )  # fmt: skip
        q0 = q1


def _block(
    q0: int,
    q1: int,
    n: int,
    ids: list[str],
    tokens_of: list[list[str]],
    k: int,
    row_start: np.ndarray,
    ent_tok: np.ndarray,
    ent_share: np.ndarray,
    tok_start: np.ndarray,
    tok_len: np.ndarray,
    post_row: np.ndarray,
    post_share: np.ndarray,
) -> Iterator[tuple[str, list[Neighbour]]]:
    lo, hi = row_start[q0], row_start[q1]
    width = q1 - q0
    counts = tok_len[ent_tok[lo:hi]]
    total = int(counts.sum())
    # every (entry, posting of its token) pair: the postings' positions, range by range
    first = np.repeat(tok_start[ent_tok[lo:hi]] - np.cumsum(counts) + counts, counts)
    at = first + np.arange(total)
    j = post_row[at]
    m = np.minimum(np.repeat(ent_share[lo:hi], counts), post_share[at])
    # (query, candidate) as one key, query-major: summing by key keeps each pair's terms in
    # entry order, the order the SQL sums them in
    entries = np.diff(row_start[q0 : q1 + 1])  # each query's index entries
    offset = np.repeat(np.arange(width, dtype=np.int64) * n, entries)
    key = np.repeat(offset, counts) + j
    if width * n <= DENSE_PER_PAIR * total:
        # a dense (query × neuron) table is cheaper than sorting the keys; the non-zero
        # cells, in cell order, are the distinct keys (every min(share) is positive)
        sums_all = np.bincount(key, weights=m, minlength=width * n)
        sums_all[np.arange(width) * n + np.arange(q0, q1)] = 0.0  # a neuron is not its own
        pairs = np.flatnonzero(sums_all)
        sums = sums_all[pairs]
    else:
        keep = j != np.repeat(np.repeat(np.arange(q0, q1), entries), counts)
        pairs, where = np.unique(key[keep], return_inverse=True)
        sums = np.bincount(where, weights=m[keep], minlength=len(pairs))
    pq, pj = pairs // n + q0, pairs % n
    order = np.lexsort((pj, -sums, pq))
    pq, pj, sums = pq[order], pj[order], sums[order]
    start = np.searchsorted(pq, np.arange(q0, q1 + 1))
    for r in range(q0, q1):
        if row_start[r] == row_start[r + 1]:
            continue  # not in the token index: no row, as the per-neuron query
        mine = set(tokens_of[r])
        out: list[Neighbour] = []
        for other, mass in zip(
            pj[start[r - q0] : min(start[r - q0] + k, start[r - q0 + 1])].tolist(),
            sums[start[r - q0] : min(start[r - q0] + k, start[r - q0 + 1])].tolist(),
            strict=True,
        ):
            shared = sorted(mine.intersection(tokens_of[other]))[:10]
            out.append((ids[other], round(mass / (2.0 - mass), 6), shared))
        yield ids[r], out
