"""Benchmark: every neuron's 20 neighbours by shared peak tokens (the `similar-tokens` stage
right after `index`), each block's pair sums by sorting the pair keys (`np.unique`, what every
block did before) against a dense query × neuron table (`DENSE_PER_PAIR`), same token index,
same process, alternating, each measured in CPU seconds (the figure that stays comparable on a
busy machine). Checks that both give the same rows.

    PYTHONPATH=src .venv/bin/python bench/token_neighbours_bench.py --db COPY.db
"""

from __future__ import annotations

import argparse
import sqlite3
import time

from neuronatlas.relations import token_neighbours
from neuronatlas.store.search import token_shares

DEFAULT = token_neighbours.DENSE_PER_PAIR


def run(shares, dense: int, k: int) -> tuple[float, list]:
    """CPU seconds and rows of one pass with `DENSE_PER_PAIR = dense`."""
    token_neighbours.DENSE_PER_PAIR = dense
    try:
        started = time.process_time()
        rows = list(token_neighbours.all_token_neighbours(shares, k))
        return time.process_time() - started, rows
    finally:
        token_neighbours.DENSE_PER_PAIR = DEFAULT


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True, help="an atlas with a token index (read only)")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    conn = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    shares = token_shares(conn)
    conn.close()
    print(f"{len(set(shares.neuron_ids)):,} neurons, {len(shares.tokens):,} token rows")
    sorted_s, dense_s = [], []
    for _ in range(args.repeats):
        s, by_sort = run(shares, 0, args.k)
        d, by_table = run(shares, DEFAULT, args.k)
        sorted_s.append(s)
        dense_s.append(d)
        assert by_sort == by_table, "the dense table gave other rows"
        print(f"sorted keys {s:.1f} CPU s, dense table {d:.1f} CPU s: {s / d:.2f}x")
    print(
        f"best: sorted keys {min(sorted_s):.1f} s, dense table {min(dense_s):.1f} s, "
        f"{min(sorted_s) / min(dense_s):.2f}x; rows identical"
    )


if __name__ == "__main__":
    main()
