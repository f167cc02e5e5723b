"""Writing the scrape against its forward passes, in the same run (issue 25).

On a GPT-2-small-shaped model (12 layers × 3,072 = 36,864 neurons, random weights, the real
GPT-2 tokenizer) over `--tokens` tokens of the offline corpus:

1. forward: the model body over every batch, no hooks (what the scrape cannot avoid), and
   the scrape itself (`scrape_shard`: hooks and every statistic);
2. write: `scrape.output.write_atlas` of that state into a new atlas (everything after the
   forward passes: readout, `prepare`, the value encoder, the SQLite inserts, the token index),
   and the old write path (`bench/write_v1.py`, the code before this work) into another;
3. the two atlases compared row by row (records with their value texts, excerpts with their
   tokens and digests, neuron_info, token_index): they must be identical.

Prints write / forward for both paths. Times are wall clock and this process's CPU time; the
machine may be shared, so both are shown with the load average.

    PYTHONPATH=src .venv/bin/python bench/write_bench.py                  # 32,768 tokens
    PYTHONPATH=src .venv/bin/python bench/write_bench.py --tokens 4096 --profile new
    ... --state /tmp/s.npz   # keep the scraped state there and reuse it (forward still timed)
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sqlite3
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # scrape_bench (the model), write_v1 (the old path)


class Clock:
    """Wall and process-CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0

    def __str__(self) -> str:
        return f"{self.wall:7.1f} s wall, {self.cpu:7.1f} s CPU"


TABLES = {
    "records": "SELECT * FROM records ORDER BY neuron_id, category, rank",
    "excerpts": "SELECT digest, tokens FROM excerpts ORDER BY digest",
    "neuron_info": "SELECT * FROM neuron_info ORDER BY id",
    "token_index": "SELECT * FROM token_index ORDER BY token, neuron_id",
}


def compare(a: Path, b: Path) -> dict[str, int]:
    """Row counts of each table; raises at the first row that differs (exact values,
    including each stored text and float)."""
    counts = {}
    with closing(sqlite3.connect(a)) as ca, closing(sqlite3.connect(b)) as cb:
        for table, sql in TABLES.items():
            n = 0
            rows_b = cb.execute(sql)
            for row_a in ca.execute(sql):
                row_b = rows_b.fetchone()
                if row_a != row_b:
                    raise SystemExit(f"{table}: row {n} differs:\n  {row_a}\n  {row_b}")
                n += 1
            if rows_b.fetchone() is not None:
                raise SystemExit(f"{table}: {b} has more rows than {a}")
            counts[table] = n
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tokens", type=int, default=32768)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument(
        "--threads2",
        type=int,
        default=0,
        help="also time the forward passes with this many torch threads (e.g. 2: the demo's)",
    )
    ap.add_argument("--state", type=Path, help="reuse/keep the scraped state in this .npz")
    ap.add_argument("--old", choices=("yes", "no"), default="yes", help="time the old path")
    ap.add_argument("--profile", choices=("new", "old"), help="cProfile one write path")
    ap.add_argument("--dir", type=Path, help="where the atlases go (default: a temp folder)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import scrape_bench
    import torch
    import write_v1
    from transformers.utils import logging as hf_logging

    from neuronatlas.scrape import StatsConfig
    from neuronatlas.scrape.output import write_atlas
    from neuronatlas.scrape.state import load, save

    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()}; torch threads {args.threads}", flush=True)
    lm = scrape_bench.build_model()
    batches, policy = scrape_bench.batches_for(lm.tokenizer, args.tokens, args.batch_size)
    tokens = sum(b.tokens.size for b in batches)
    print(f"GPT-2-small-shaped, {lm.n_layers * lm.d_mlp:,} neurons, {tokens:,} tokens", flush=True)
    scrape_bench.bare(lm, batches[:1], policy)  # warm-up
    with Clock() as fwd:
        scrape_bench.bare(lm, batches, policy)
    print(f"forward passes (bare model body)  {fwd}", flush=True)
    fwd2 = None
    if args.threads2:
        torch.set_num_threads(args.threads2)
        with Clock() as fwd2:
            scrape_bench.bare(lm, batches, policy)
        torch.set_num_threads(args.threads)
        print(f"forward passes, {args.threads2} threads  {fwd2}", flush=True)
    scraped = None
    if args.state and args.state.exists():
        state = load(args.state)
        print(f"state loaded from {args.state} (scrape not timed)", flush=True)
    else:
        with Clock() as scraped:
            state = scrape_bench.scrape(lm, batches, policy, StatsConfig(context=64))[1]
        print(f"scrape_shard (forward + statistics) {scraped}", flush=True)
        if args.state:
            save(state, args.state)
    meta, run_config = {"bench": "write_bench"}, {"bench": "write_bench"}
    folder = args.dir or Path(tempfile.mkdtemp(prefix="write_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"new": folder / "new.db", "old": folder / "old.db"}
    for p in paths.values():
        for suffix in ("", "-wal", "-shm"):
            Path(str(p) + suffix).unlink(missing_ok=True)
    writers = {
        "new": lambda: write_atlas(state, lm, paths["new"], meta, run_config),
        "old": lambda: write_v1.write_atlas(state, lm, paths["old"], meta, run_config),
    }
    order = ["new"] + (["old"] if args.old == "yes" else [])
    times = {}
    for name in order:
        prof = cProfile.Profile() if args.profile == name else None
        with Clock() as t:
            if prof:
                prof.enable()
            n = writers[name]()
            if prof:
                prof.disable()
        times[name] = t
        print(f"write_atlas, {name} path: {n:,} neurons  {t}", flush=True)
        if prof:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    print(f"load average at end: {os.getloadavg()}")
    for name, t in times.items():
        line = f"{name} write / forward: {t.wall / fwd.wall:.2f} (wall) {t.cpu / fwd.cpu:.2f} (CPU)"
        if fwd2 is not None:
            line += f"; write / forward at {args.threads2} threads {t.wall / fwd2.wall:.2f} (wall)"
        if scraped is not None:
            line += f"; write / scrape_shard {t.wall / scraped.wall:.2f} (wall)"
        print(line)
    if "old" in times:
        o, w = times["old"], times["new"]
        print(f"new / old write: {w.wall / o.wall:.2f} (wall) {w.cpu / o.cpu:.2f} (CPU)")
        print("rows compared, identical:", compare(paths["old"], paths["new"]))
    print(f"atlases in {folder}")


if __name__ == "__main__":
    main()
