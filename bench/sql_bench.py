"""Benchmark: the seed's plain `neurons`/`activations` tables vs an atlas's relations, same data.

From every neuron and record of ATLAS it builds the two tables the seed notebook's inserts imply
(bench/import_bench.py's SEED_SCHEMA, `sqlite3.connect` defaults), filled as the notebook fills
them: compact `json.dumps` of the tokens and of the values as doubles, one row per record in
the notebook's order, the embedding as compact JSON rounded to 8 digits. Then, in the same run
and through the plain `sqlite3` module (no custom functions, read-only), the same statements on
both, each timed `--repeat` times (best kept: a warm page cache for both):

- `SELECT count(*) FROM activations`
- a full read of every column of `activations` (per record)
- one neuron's records, `WHERE neuron_id = ?` (`--lookups` random neurons; the seed's table has
  no index, so only 3 there)
- a `WHERE category = 'top'` scan and a `GROUP BY neuron_id` aggregate
- a full read of `neurons`
- file size (main file + WAL)

and prints each ratio (ours / seed). `--migrate` first opens ATLAS with the library's writer,
which applies any missing migration in place, and reports how long that took.

    .venv/bin/python bench/sql_bench.py ATLAS [--migrate] [--seed-db PATH] [--lookups 50]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_bench import SEED_SCHEMA

from neuronatlas.store import AtlasWriter, open_reader, reader

_tokens = msgspec.json.Decoder(list[str]).decode


def compact_json_encode(obj):  # the seed notebook's encoder
    return json.dumps(obj, separators=(",", ":"))


def build_seed(atlas: Path, seed_db: Path, batch: int = 20_000) -> float:
    """The seed's tables holding ATLAS's data; returns the seconds it took."""
    t0 = time.perf_counter()
    seed_db.unlink(missing_ok=True)
    out = sqlite3.connect(seed_db)
    out.executescript(SEED_SCHEMA)
    src = open_reader(atlas)
    cols = (
        "id, layer_index, neuron_index, explanation_text, explanation_ev_correlation_score,"
        " explanation_rsquared_score, explanation_absolute_dev_explained_score, activation_mean,"
        " activation_variance, activation_skewness, activation_kurtosis"
    )
    rows = []
    for r in src.execute(f"SELECT {cols}, explanation_embedding FROM neurons ORDER BY id"):
        emb = r[11]
        if emb is not None:
            emb = compact_json_encode([round(v, 8) for v in json.loads(emb)])
        rows.append((*tuple(r)[:11], emb))
    out.executemany(
        f"INSERT INTO neurons ({cols}, explanation_embedding) VALUES ({','.join('?' * 12)})", rows
    )
    out.commit()
    pending = []
    insert = (
        "INSERT INTO activations (neuron_id, category, tokens, activation_values)"
        " VALUES (?, ?, ?, ?)"
    )
    for nid, cat, _rank, tokens, acts in reader.iter_record_rows(src):
        pending.append((nid, cat, compact_json_encode(_tokens(tokens)), compact_json_encode(acts)))
        if len(pending) == batch:
            out.executemany(insert, pending)
            out.commit()
            pending = []
    out.executemany(insert, pending)
    out.commit()
    out.close()
    src.close()
    return time.perf_counter() - t0


def file_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def best(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    """(best seconds, rows) of `repeat` runs."""
    times, n = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t0)
    return min(times), n


def drain(conn: sqlite3.Connection, sql: str, params: tuple = ()) -> int:
    n = 0
    for _ in conn.execute(sql, params):
        n += 1
    return n


FULL = "SELECT neuron_id, category, tokens, activation_values FROM activations"
TOP = "SELECT neuron_id, tokens, activation_values FROM activations WHERE category = 'top'"
GROUP = (
    "SELECT neuron_id, count(*), sum(length(activation_values)) FROM activations GROUP BY neuron_id"
)
LOOKUP = FULL + " WHERE neuron_id = ?"
NEURONS = "SELECT * FROM neurons"


def measure(db: Path, ids: list[str], repeat: int) -> dict[str, tuple[float, int]]:
    conn = sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True)
    out = {
        "count": best(
            lambda: conn.execute("SELECT count(*) FROM activations").fetchone()[0], repeat
        ),
        "full": best(lambda: drain(conn, FULL), repeat),
        "top": best(lambda: drain(conn, TOP), repeat),
        "group": best(lambda: drain(conn, GROUP), repeat),
        "neurons": best(lambda: drain(conn, NEURONS), repeat),
    }
    times = []
    for nid in ids:
        t, n = best(lambda nid=nid: drain(conn, LOOKUP, (nid,)), repeat)
        times.append((t, n))
    out["lookup"] = (
        statistics.median(t for t, _ in times),
        round(statistics.mean(n for _, n in times)),
    )
    out["lookup_max"] = (max(t for t, _ in times), 0)
    conn.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("atlas", type=Path)
    ap.add_argument(
        "--seed-db", type=Path, help="where to build the seed's tables (default: beside ATLAS)"
    )
    ap.add_argument("--reuse-seed", action="store_true", help="keep an existing --seed-db")
    ap.add_argument(
        "--migrate", action="store_true", help="apply missing migrations to ATLAS first"
    )
    ap.add_argument("--lookups", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    atlas: Path = args.atlas
    seed_db: Path = args.seed_db or atlas.with_name(atlas.stem + ".seed.db")
    print(f"load average before: {os.getloadavg()}")
    if args.migrate:
        before = file_size(atlas)
        t0 = time.perf_counter()
        with AtlasWriter(atlas) as w:
            w.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        took, after = time.perf_counter() - t0, file_size(atlas)
        print(f"migration: {took:.1f} s ({before / 2**20:,.0f} → {after / 2**20:,.0f} MiB)")
    if not (args.reuse_seed and seed_db.exists()):
        print(f"seed tables built in {build_seed(atlas, seed_db):.1f} s: {seed_db}")
    with open_reader(atlas) as conn:
        ids = reader.neuron_ids(conn)
    picks = random.Random(0).sample(ids, min(args.lookups, len(ids)))
    ours = measure(atlas, picks, args.repeat)
    seed = measure(seed_db, picks[:3], args.repeat)
    n = ours["full"][1]
    assert seed["full"][1] == n and seed["count"][1] == ours["count"][1] == n, "row counts differ"
    print(f"\n{n:,} records, {len(ids):,} neurons; load average after: {os.getloadavg()}")
    print(f"{'measure':<34} {'seed':>12} {'ours':>12} {'ours/seed':>10}")

    def line(name: str, s: float, o: float, unit: str = "s") -> None:
        print(f"{name:<34} {s:>11.4g}{unit} {o:>11.4g}{unit} {o / s:>10.3f}")

    line("count(*)", seed["count"][0], ours["count"][0])
    per = 1e6 / n
    line("full read, µs a record", seed["full"][0] * per, ours["full"][0] * per, "")
    line("full read, total", seed["full"][0], ours["full"][0])
    line(
        f"one neuron (median, ~{ours['lookup'][1]} rows), ms",
        seed["lookup"][0] * 1e3,
        ours["lookup"][0] * 1e3,
        "",
    )
    slowest = f"  ours, slowest of {len(picks)}"
    print(f"{slowest:<34} {'':>12} {ours['lookup_max'][0] * 1e3:>11.4g}ms")
    line(f"category='top' scan ({ours['top'][1]:,} rows)", seed["top"][0], ours["top"][0])
    line(f"GROUP BY neuron_id ({ours['group'][1]:,} groups)", seed["group"][0], ours["group"][0])
    line(f"neurons, full read ({ours['neurons'][1]:,})", seed["neurons"][0], ours["neurons"][0])
    line("file size, MiB", file_size(seed_db) / 2**20, file_size(atlas) / 2**20, "")


if __name__ == "__main__":
    main()
