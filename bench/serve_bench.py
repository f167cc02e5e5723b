"""Load benchmark of the explorer: p50/p99 latency of neuron pages and search under 32
concurrent clients, against the /healthz baseline measured in the same run.

Builds a synthetic atlas of GPT-2-small's shape (12 layers × 3,072 neurons, 20 top + 20
random records of 64 tokens each) through the store writer, or takes one with --db; serves it
with `neuronatlas serve` (uvicorn) in a subprocess on loopback; then runs each phase for a
bounded time with N concurrent httpx clients; once per server process count (--workers, default
1 and 2) so the run also shows how it scales. Goal: p99 ≤ 50 ms for /api/neurons/{id}.

    .venv/bin/python bench/serve_bench.py --quick          # 12 × 256 neurons, 5 s phases
    .venv/bin/python bench/serve_bench.py                  # 12 × 3,072 neurons, 10 s phases
    .venv/bin/python bench/serve_bench.py --db atlas.db    # an existing atlas
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(path: Path, per_layer: int) -> None:
    sys.path.insert(0, str(HERE.parent / "tests"))  # the synthetic atlas is a test fixture
    from synthetic import build_synthetic_atlas

    t0 = time.perf_counter()
    build_synthetic_atlas(
        path,
        layers=12,
        per_layer=per_layer,
        n_top=20,
        n_random=20,
        length=64,
        model_id=None,
        batch=512,
    )
    size = path.stat().st_size / 1e6
    print(
        f"built {12 * per_layer:,} neurons in {time.perf_counter() - t0:.1f} s "
        f"({size:,.0f} MB): {path}"
    )


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _client_process(
    base: str,
    kind: str,
    ids: list[str],
    words: list[str],
    threads: int,
    seconds: float,
    seed: int,
    out,
) -> None:
    """One load process: `threads` threads, each with its own keep-alive httpx.Client,
    sending requests back to back until the deadline; latencies (ms) go to `out`."""
    stop = time.perf_counter() + seconds
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        mine = []
        with httpx.Client(base_url=base, timeout=30) as client:
            while time.perf_counter() < stop:
                url = make_url(kind, rng, ids, words)
                t0 = time.perf_counter()
                r = client.get(url)
                mine.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    with lock:
                        errors[0] += 1
        with lock:
            lat.extend(mine)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((lat, errors[0]))


def make_url(kind: str, rng: random.Random, ids: list[str], words: list[str]) -> str:
    if kind == "healthz":
        return "/healthz"
    if kind == "neuron":
        return f"/api/neurons/{rng.choice(ids)}"
    return f"/api/search?q={rng.choice(words)}&k=10"


def phase(
    base: str,
    kind: str,
    ids: list[str],
    words: list[str],
    clients: int,
    seconds: float,
    processes: int = 4,
) -> dict:
    """`clients` concurrent clients (threads spread over `processes` processes, so the load
    generator is not the bottleneck) sending requests back to back for `seconds`."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    per = [clients // processes + (i < clients % processes) for i in range(processes)]
    procs = [
        ctx.Process(target=_client_process, args=(base, kind, ids, words, n, seconds, i, out))
        for i, n in enumerate(per)
        if n
    ]
    for p in procs:
        p.start()
    lat: list[float] = []
    errors = 0
    for _ in procs:
        got, err = out.get()
        lat.extend(got)
        errors += err
    for p in procs:
        p.join()
    return {
        "n": len(lat),
        "errors": errors,
        "rps": len(lat) / seconds,
        "p50": statistics.median(lat),
        "p99": percentile(lat, 0.99),
    }


def wait_up(base: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("server did not come up")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, help="an existing atlas (default: build a synthetic one)")
    ap.add_argument("--quick", action="store_true", help="12 × 256 neurons, 5 s phases")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, help="length of each phase (default 10, quick 5)")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="server process counts to measure, one serve per count",
    )
    args = ap.parse_args()
    seconds = args.seconds or (5.0 if args.quick else 10.0)
    db = args.db
    if db is None:
        per_layer = 256 if args.quick else 3072
        args.out.mkdir(parents=True, exist_ok=True)
        db = args.out / f"serve_bench_{12 * per_layer}.db"
        if not db.exists():
            build(db, per_layer)
        else:
            print(f"reusing {db}")

    from neuronatlas.store import open_reader, reader

    conn = open_reader(db)
    ids = reader.neuron_ids(conn)
    words = [
        e["text"].split()[-1].strip('"')
        for e in (reader.explanations(conn, i)[0] for i in random.Random(0).sample(ids, 50))
        if e
    ] or ["the"]
    conn.close()

    summary = {}
    for workers in args.workers:
        summary[workers] = measure(db, workers, ids, words, args.clients, seconds)
    if len(summary) > 1:
        key = "/api/neurons/{id}"
        one = summary[min(summary)][key]
        for w, runs in summary.items():
            if w != min(summary):
                r = runs[key]
                print(
                    f"{w} workers vs {min(summary)}: neuron p99 {r['p99']:.1f} vs "
                    f"{one['p99']:.1f} ms ({one['p99'] / r['p99']:.2f}× speed-up), "
                    f"throughput {r['rps'] / one['rps']:.2f}×"
                )


def measure(
    db: Path, workers: int, ids: list[str], words: list[str], clients: int, seconds: float
) -> dict:
    """Serve `db` with `workers` processes, run every phase, print and return the figures."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # `neuronatlas serve`, exactly as a user runs it
    cmd = [
        sys.executable,
        "-c",
        "from neuronatlas.cli import main; main()",
        "serve",
        "--db",
        str(db),
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(base, proc)
        print(
            f"-- {workers} worker(s): {len(ids):,} neurons at {base}; {clients} clients, "
            f"{seconds:g} s per phase"
        )
        phases = {
            "/healthz (baseline)": "healthz",
            "/api/neurons/{id}": "neuron",
            "/api/search?q=": "search",
        }
        # warm every worker: the first search may build caches; not part of the measurement
        for _ in range(4 * workers):
            httpx.get(base + f"/api/search?q={words[0]}", timeout=120)
        results = {}
        for name, kind in phases.items():
            results[name] = r = phase(base, kind, ids, words, clients, seconds)
            print(
                f"{name:22s} n={r['n']:6d}  {r['rps']:7.0f} req/s  p50 {r['p50']:7.2f} ms  "
                f"p99 {r['p99']:7.2f} ms  errors {r['errors']}"
            )
        mode = httpx.get(base + f"/api/search?q={words[0]}").json()["mode"]
        base_r, neuron_r = results["/healthz (baseline)"], results["/api/neurons/{id}"]
        print(f"search mode: {mode}")
        print(
            f"ratio neuron/healthz: p50 {neuron_r['p50'] / base_r['p50']:.2f}×, "
            f"p99 {neuron_r['p99'] / base_r['p99']:.2f}×"
        )
        goal = "met" if neuron_r["p99"] <= 50 else "NOT met"
        print(f"goal p99 ≤ 50 ms for /api/neurons/{{id}}: {goal} ({neuron_r['p99']:.1f} ms)")
        return results
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
