"""Benchmark: the primary explanation of a neuron on a scored atlas, migration 007's view
against 011's, same data, same run.

Builds an atlas of the demo's size (36,864 neurons, two explanations each, every explanation
scored by the embedding scorer, as after `neuronatlas score --all` or `build --llm`) twice:
once with the migrations before 011 (the view 007 wrote), once with all of them. Then times,
through the plain `sqlite3` module, one neuron's primary explanation (--lookups random
neurons) and a scan of the `neurons` relation (which joins the view for every neuron; on the
old view it is capped at --scan-limit neurons and scaled up), and prints the ratios.

    .venv/bin/python bench/primary_bench.py [--neurons 36864] [--lookups 50]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from neuronatlas.store.migrations import MIGRATION_FUNCTIONS, available, migrate


def build(db: Path, neurons: int, below: int | None) -> None:
    """The schema (migrations < `below`, or all), then neurons with two scored explanations."""
    conn = sqlite3.connect(db, isolation_level=None)
    if below is None:
        migrate(conn)
    else:
        for fname, (nargs, fn) in MIGRATION_FUNCTIONS.items():
            conn.create_function(fname, nargs, fn)
        conn.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL)"
        )
        for version, name, sql in (m for m in available() if m[0] < below):
            conn.executescript(
                f"BEGIN; {sql}; INSERT INTO schema_version VALUES ({version}, '{name}', 'then');"
                " COMMIT;"
            )
    rng = random.Random(0)
    conn.execute("BEGIN")
    for i in range(neurons):
        nid = f"L{i // 2048:02d}N{i % 2048:04d}"
        conn.execute(
            "INSERT INTO neuron_info(id, layer, neuron, source) VALUES (?, ?, ?, 'scrape')",
            (nid, i // 2048, i % 2048),
        )
        for pos, source in enumerate(("top-tokens", "n2g")):
            cur = conn.execute(
                "INSERT INTO explanations(neuron_id, source, position, text, created_at)"
                " VALUES (?, ?, ?, ?, 'then')",
                (nid, source, pos, f"explanation {i} by {source}"),
            )
            conn.execute(
                "INSERT INTO explanation_scores VALUES (?, 'embedding', 'all-MiniLM-L6-v2', ?,"
                " '{}', NULL, 'then')",
                (cur.lastrowid, rng.random()),
            )
    conn.execute("COMMIT")
    conn.close()


def measure(db: Path, ids: list[str], scan_limit: int) -> tuple[float, float]:
    """(ms per primary-explanation lookup, s per full `neurons` scan, scaled from a prefix)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    q = "SELECT text FROM primary_explanations WHERE neuron_id = ?"
    conn.execute(q, (ids[0],)).fetchall()  # warm
    t0 = time.perf_counter()
    for nid in ids:
        conn.execute(q, (nid,)).fetchall()
    lookup_ms = (time.perf_counter() - t0) / len(ids) * 1e3
    total = conn.execute("SELECT count(*) FROM neuron_info").fetchone()[0]
    n = min(total, scan_limit)
    t0 = time.perf_counter()
    conn.execute(f"SELECT * FROM neurons LIMIT {n}").fetchall()
    scan_s = (time.perf_counter() - t0) * total / n
    conn.close()
    return lookup_ms, scan_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=36_864)
    ap.add_argument("--lookups", type=int, default=50)
    ap.add_argument("--scan-limit", type=int, default=500, help="neurons scanned on the old view")
    args = ap.parse_args()
    rng = random.Random(1)
    ids = [
        f"L{i // 2048:02d}N{i % 2048:04d}" for i in rng.sample(range(args.neurons), args.lookups)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        old, new = Path(tmp, "v10.db"), Path(tmp, "v11.db")
        build(old, args.neurons, below=11)
        build(new, args.neurons, below=None)
        o = measure(old, ids, args.scan_limit)
        n = measure(new, ids, args.neurons)
    print(f"{args.neurons:,} neurons, {2 * args.neurons:,} scored explanations")
    print(f"{'measure':<36} {'007 view':>10} {'011 view':>10} {'007 / 011':>10}")
    rows = [
        ("primary explanation of one neuron", f"{o[0]:.2f} ms", f"{n[0]:.3f} ms", o[0] / n[0]),
        ("scan of `neurons` (007: scaled)", f"{o[1]:.1f} s", f"{n[1]:.2f} s", o[1] / n[1]),
    ]
    for name, a, b, ratio in rows:
        print(f"{name:<36} {a:>10} {b:>10} {ratio:>10.0f}")


if __name__ == "__main__":
    main()
