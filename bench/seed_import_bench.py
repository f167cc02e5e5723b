"""Benchmark: `import-seed` (the seed notebook's SQLite database) vs `import-openai` (the same
data as OpenAI files), same neurons, same run.

Generates GPT-2-small-shaped OpenAI data in the seed layout with `import_bench.py`'s generator
(20 top + 20 random records of 64 real GPT-2 tokens per neuron), builds the seed database with
`import_bench.py`'s reproduction of the notebook's import loop, then runs the notebook's
embedding step with stand-in vectors (768 random unit float32 numbers per neuron, rounded to 8
decimals, compact JSON: all-mpnet-base-v2's shape; the model itself would dominate the
build and is not what is measured). Then imports

1. the database: `neuronatlas import-seed seed.db --db A --silent` (one process);
2. the files: `neuronatlas import-openai DIR --db B --silent --model gpt2-small` (parallel
   parsers, `--workers`);

checks that both atlases hold the same records and neurons on 50 random neurons, times a rerun
of `import-seed` (nothing to do), and prints the speed ratio.

    .venv/bin/python bench/seed_import_bench.py            # one layer, 3,072 neurons
    .venv/bin/python bench/seed_import_bench.py --layers 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from import_bench import D_MLP, _f32, generate, seed_import

CLI = str(Path(sys.executable).parent / "neuronatlas")


def embedding_step(db: Path, seed: int = 0) -> None:
    """The notebook's embedding step (UPDATE neurons SET explanation_embedding per neuron,
    one commit per layer), with random unit vectors standing in for the model's."""
    rng = np.random.default_rng(seed)
    conn = sqlite3.connect(db)
    layers = [r[0] for r in conn.execute("SELECT DISTINCT layer_index FROM neurons ORDER BY 1")]
    for layer in layers:
        ids = [r[0] for r in conn.execute("SELECT id FROM neurons WHERE layer_index = ?", (layer,))]
        vecs = rng.standard_normal((len(ids), 768)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        for nid, vec in zip(ids, vecs, strict=True):
            text = json.dumps([round(x, 8) for x in vec.tolist()], separators=(",", ":"))
            conn.execute("UPDATE neurons SET explanation_embedding = ? WHERE id = ?", (text, nid))
        conn.commit()
    conn.close()


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its worker processes): on a shared
    machine the CPU time says more than the wall time."""
    t, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    took = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
    return took, _children_cpu() - cpu


def check_same(a: Path, b: Path, sample: int = 50) -> None:
    """Both atlases show the same neurons and records through the seed relations."""
    ca, cb = sqlite3.connect(a), sqlite3.connect(b)
    ids = [r[0] for r in ca.execute("SELECT id FROM neurons")]
    for nid in random.Random(0).sample(ids, min(sample, len(ids))):

        def rows(conn: sqlite3.Connection, nid: str = nid) -> list:
            got = conn.execute(
                "SELECT category, tokens, activation_values FROM activations WHERE neuron_id = ?",
                (nid,),
            )
            return [(c, json.loads(t), _f32(json.loads(v))) for c, t, v in got]

        if rows(ca) != rows(cb):
            raise SystemExit(f"{nid}: records differ between the two imports")
        sql = "SELECT * FROM neurons WHERE id = ?"
        if ca.execute(sql, (nid,)).fetchone()[:11] != cb.execute(sql, (nid,)).fetchone()[:11]:
            raise SystemExit(f"{nid}: neurons row differs between the two imports")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=1, help="layers of 3,072 neurons (default 1)")
    ap.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="neuronatlas-seedbench-"))
    data = work / "data" / "gpt2-small"
    if not (data / "activations" / str(args.layers - 1) / f"{D_MLP - 1}.json").exists():
        generate(data, args.layers, 1.0, args.workers)
    seed_db, from_seed, from_files = work / "seed.db", work / "a.db", work / "b.db"
    for p in (seed_db, from_seed, from_files):
        for q in (p, Path(f"{p}-wal"), Path(f"{p}-shm"), Path(f"{p}-journal")):
            q.unlink(missing_ok=True)
    seed_import(data, seed_db, args.layers)
    embedding_step(seed_db)
    n = args.layers * D_MLP
    print(f"seed database: {n:,} neurons, {seed_db.stat().st_size / 2**20:,.0f} MiB ({work})")

    t_seed = run([CLI, "import-seed", str(seed_db), "--db", str(from_seed), "--silent"])
    t_rerun = run([CLI, "import-seed", str(seed_db), "--db", str(from_seed), "--silent"])
    t_files = run(
        [
            CLI,
            "import-openai",
            str(work),
            "--db",
            str(from_files),
            "--silent",
            "--model",
            "gpt2-small",
            "--layers",
            f"0-{args.layers - 1}",
            "--workers",
            str(args.workers),
        ]
    )
    check_same(from_seed, from_files)
    vectors = sqlite3.connect(from_seed).execute("SELECT count(*) FROM embeddings").fetchone()[0]
    for name, (wall, cpu), note in (
        ("import-seed", t_seed, f"one process, {vectors:,} vectors"),
        ("  rerun", t_rerun, "nothing to do"),
        ("import-openai", t_files, f"{args.workers} parser processes, no vectors"),
    ):
        print(
            f"{name:15s}: {wall:7.1f} s wall  {cpu:7.1f} s CPU  "
            f"{n / wall:7,.0f} neurons/s  ({note})"
        )
    print(
        f"ratio          : import-seed takes {t_seed[0] / t_files[0]:.2f}x import-openai's wall "
        f"time, {t_seed[1] / t_files[1]:.2f}x its CPU time"
    )
    print(f"load average   : {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
