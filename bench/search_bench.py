"""Benchmark: semantic-search latency (query encoding excluded) at GPT-2 XL scale.

Three ways to find the top 10 of N unit vectors (768-d) for a query vector, same data, same run:

1. the seed's way: read every neuron's embedding as JSON text from SQLite and decode it, each
   query (`json.loads`, then a numpy dot product) — measured on `--seed-n` rows (it is far too
   slow for N) and compared with (2) on the same rows;
2. exact: one float32 matrix in memory, `matrix @ q` + `argpartition` (neuronatlas below
   `NEURONATLAS_EXACT_MAX` vectors);
3. neuronatlas at N: `search.vector_index.build_index` — above the exact limit an HNSW graph
   (usearch, int8) asked for 4k candidates that are rescored exactly; recall@10 against (2).

p50/p99 over `--queries` queries. `--data random`: random unit vectors and random unit queries
(the brief's setting; the worst case for any index: no structure, every true neighbour is a
4-sigma outlier). `--data clustered`: vectors around 3,000 topic centres and queries near a
centre, which is how explanation embeddings and their queries behave.

    .venv/bin/python bench/search_bench.py --quick          # 30,720 vectors
    .venv/bin/python bench/search_bench.py                  # 307,200 vectors (GPT-2 XL)
    .venv/bin/python bench/search_bench.py --data clustered
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from neuronatlas.search.vector_index import build_index, exact_top_k


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_data(kind: str, n: int, d: int, queries: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    if kind == "random":
        return (
            unit(rng.standard_normal((n, d), dtype=np.float32)),
            unit(rng.standard_normal((queries, d), dtype=np.float32)),
        )
    centres = unit(rng.standard_normal((3000, d), dtype=np.float32))
    matrix = unit(
        centres[rng.integers(0, len(centres), n)]
        + rng.standard_normal((n, d), dtype=np.float32) / np.sqrt(d)
    )
    picked = centres[rng.integers(0, len(centres), queries)]
    return matrix, unit(
        picked + 1.3 * rng.standard_normal((queries, d), dtype=np.float32) / np.sqrt(d)
    )


def timed(fn, queries: np.ndarray) -> tuple[list, np.ndarray]:
    results, times = [], []
    for q in queries:
        t = time.perf_counter()
        results.append(fn(q))
        times.append(time.perf_counter() - t)
    return results, np.array(times) * 1e3


def p50(ms: np.ndarray) -> float:
    return float(np.percentile(ms, 50))


def describe(name: str, ms: np.ndarray) -> str:
    return f"{name:<44} p50 {np.percentile(ms, 50):9.2f} ms   p99 {np.percentile(ms, 99):9.2f} ms"


def seed_db(path: Path, matrix: np.ndarray) -> sqlite3.Connection:
    """The seed notebook's storage: compact JSON of floats rounded to 8 digits, one row each."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE neurons (id TEXT PRIMARY KEY, explanation_embedding TEXT)")
    conn.executemany(
        "INSERT INTO neurons VALUES (?, ?)",
        (
            (
                f"L{i // 6400:02d}N{i % 6400:04d}",
                json.dumps([round(float(x), 8) for x in row], separators=(",", ":")),
            )
            for i, row in enumerate(matrix)
        ),
    )
    conn.commit()
    return conn


def seed_search(conn: sqlite3.Connection, q: np.ndarray, k: int = 10) -> list[str]:
    rows = conn.execute("SELECT id, explanation_embedding FROM neurons").fetchall()
    mat = np.array([json.loads(e) for _, e in rows], dtype=np.float32)
    sims = mat @ q
    return [rows[i][0] for i in np.argsort(-sims)[:k]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=307_200)
    ap.add_argument("--quick", action="store_true", help="30,720 vectors")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seed-n", type=int, default=10_240, help="rows for the seed's way")
    ap.add_argument("--seed-queries", type=int, default=5)
    ap.add_argument("--data", choices=["random", "clustered"], default="random")
    args = ap.parse_args()
    n = 30_720 if args.quick else args.n
    matrix, queries = make_data(args.data, n, args.dim, args.queries)
    print(
        f"{n:,} unit vectors × {args.dim} ({matrix.nbytes / 1e6:.0f} MB float32), "
        f"{args.queries} {args.data} queries, k = 10"
    )

    exact, exact_ms = timed(lambda q: exact_top_k(matrix, q, 10)[0], queries)
    print(describe(f"exact numpy matmul+argpartition @ {n:,}", exact_ms))

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        index = build_index(matrix, cache=Path(tmp))
        build_s = time.perf_counter() - t
        found, ours_ms = timed(lambda q: index.search(q, 10)[0], queries)
    kind = "HNSW(int8)+exact rescoring" if index.approximate else "exact"
    recall = np.mean(
        [len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(found, exact, strict=False)]
    )
    print(
        describe(f"neuronatlas ({kind}) @ {n:,}", ours_ms)
        + f"   recall@10 {recall:.3f}   build {build_s:.1f} s"
    )

    small = matrix[: args.seed_n]
    sq = queries[: args.seed_queries]
    with tempfile.TemporaryDirectory() as tmp:
        conn = seed_db(Path(tmp) / "seed.db", small)
        _, seed_ms = timed(lambda q: seed_search(conn, q), sq)
        conn.close()
    _, small_ms = timed(lambda q: exact_top_k(small, q, 10)[0], sq)
    print(describe(f"seed: JSON from SQLite per query @ {len(small):,}", seed_ms))
    print(describe(f"exact numpy @ {len(small):,}", small_ms))
    print(f"ratio seed / exact @ {len(small):,}: {p50(seed_ms) / p50(small_ms):,.0f}x")
    print(
        f"seed extrapolated to {n:,} (linear): ~{p50(seed_ms) * n / len(small) / 1e3:,.1f} s "
        f"per query; ratio vs neuronatlas @ {n:,}: "
        f"~{p50(seed_ms) * n / len(small) / p50(ours_ms):,.0f}x"
    )
    print(
        f"ratio exact / neuronatlas @ {n:,}: {p50(exact_ms) / p50(ours_ms):.1f}x; "
        f"goal p50 <= 20 ms: {'met' if p50(ours_ms) <= 20 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
