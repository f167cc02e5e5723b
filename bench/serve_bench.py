"""Load benchmark of the explorer: throughput and p50/p99 latency of neuron pages, search and
the map under 32 concurrent clients, against the /healthz baseline measured in the same run,
and (with --datasette) datasette serving the same neurons' `activations` rows from the same
file.

Builds a synthetic atlas of GPT-2-small's shape (12 layers × 3,072 neurons, 20 top + 20
random records of 64 tokens each) through the store writer, or takes one with --db; serves it
with `neuronatlas serve` (uvicorn) in a subprocess on loopback; then runs each phase for a
bounded time with N concurrent httpx clients; once per server process count (--workers, default
1 and 2) so the run also shows how it scales. Goals (issue 14): the neuron endpoint reaches
≥ 0.5 × /healthz's throughput with p99 ≤ 2 × /healthz's p99, and beats datasette; (issue 25)
the HTML neuron page people open reaches ≥ 0.4 × with p99 ≤ 2.5 ×. Every answer but a 200
(a refused or timed-out request too) counts as an error; a run with errors is no result and
exits with status 1.

    .venv/bin/python bench/serve_bench.py --quick          # 12 × 256 neurons, 5 s phases
    .venv/bin/python bench/serve_bench.py                  # 12 × 3,072 neurons, 10 s phases
    .venv/bin/python bench/serve_bench.py --db atlas.db --workers 1 \
        --datasette /path/to/benchvenv/bin/datasette       # the real atlas, and datasette
"""

from __future__ import annotations

import argparse
import math
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
                try:  # every answer but a 200 is an error, a refused or timed-out one too
                    ok = client.get(url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                mine.append((time.perf_counter() - t0) * 1000)
                if not ok:
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
    if kind == "page":  # the HTML page people open: its first view, the rest fetched by JS
        return f"/neurons/{rng.choice(ids)}"
    if kind == "page_full":  # the HTML page rendered whole on the server (no-script fallback)
        return f"/neurons/{rng.choice(ids)}?view=full"
    if kind.startswith("neuron:"):  # the first view with `?records=N`
        return f"/api/neurons/{rng.choice(ids)}?records={kind.split(':', 1)[1]}"
    if kind == "full":  # everything the page shows, in one answer
        return f"/api/neurons/{rng.choice(ids)}?view=full"
    if kind in ("histogram", "similar"):  # the first view's `more` endpoints
        return f"/api/neurons/{rng.choice(ids)}/{kind}"
    if kind == "records":
        return f"/api/neurons/{rng.choice(ids)}/records?category=random"
    if kind == "summary":  # one index seek: the floor for any per-neuron answer
        return f"/api/neurons/{rng.choice(ids)}/summary"
    if kind == "map":
        return "/api/map"
    if kind == "map_clusters":  # what the map page fetches first
        return "/api/map/clusters"
    if kind == "map_compact":  # then its points, 12 bytes each (sent gzip-compressed)
        return "/api/map/points/compact"
    if kind.startswith("datasette:"):  # datasette's JSON of the neuron's `activations` rows
        name = kind.split(":", 1)[1]
        return f"/{name}/activations.json?neuron_id={rng.choice(ids)}&_shape=array&_size=max"
    return f"/api/search?q={rng.choice(words)}&k=10&mode={kind.split(':', 1)[1]}"


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
    return {"lat": lat, "errors": errors, "seconds": seconds}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its child processes so far (Linux /proc):
    the server's own work, which other jobs on a shared machine do not inflate the way they
    inflate wall-clock throughput."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(c) for c in children.read_text().split()]
    ticks = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


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
    ap.add_argument(
        "--datasette",
        type=Path,
        help="a datasette executable (in its own venv): also serve the atlas with it and "
        "measure its JSON of one neuron's `activations` rows",
    )
    ap.add_argument(
        "--search-mode", default="auto", help="mode= of the search phase (auto, fulltext, ...)"
    )
    ap.add_argument(
        "--map",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure /api/map too (every point: MBs per answer on a large atlas)",
    )
    ap.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds of every phase (pooled)"
    )
    ap.add_argument(
        "--records",
        type=int,
        nargs="*",
        default=[],
        help="extra phases: the first view with ?records=N (how small a first answer must be)",
    )
    ap.add_argument(
        "--skip",
        nargs="*",
        default=[],
        help="phases to leave out, by kind: page page_full full histogram similar records "
        "summary search",
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
        e.text.split()[-1].strip('"')
        for e in (reader.explanations(conn, i)[0] for i in random.Random(0).sample(ids, 50))
        if e
    ] or ["the"]
    conn.close()

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    summary = {}
    for workers in args.workers:
        summary[workers] = measure(
            db,
            workers,
            ids,
            words,
            args.clients,
            seconds,
            args.datasette,
            args.rounds,
            args.map,
            args.search_mode,
            args.records,
            set(args.skip),
        )
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


def start_datasette(exe: Path, db: Path, port: int) -> subprocess.Popen:
    """datasette on the same file, immutable (read-only, no locking), one process."""
    cmd = [
        str(exe),
        "serve",
        "-i",
        str(db),
        "-p",
        str(port),
        "--setting",
        "sql_time_limit_ms",
        "10000",
        "--setting",
        "num_sql_threads",
        "3",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_datasette_server(exe: Path, db: Path) -> tuple[subprocess.Popen, str]:
    """datasette up on a free port, checked to answer the neuron query; (process, base)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_datasette(exe, db, port)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"datasette exited with {proc.returncode}")
        try:
            if httpx.get(base + "/-/versions.json", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("datasette did not come up")
        time.sleep(0.2)
    version = httpx.get(base + "/-/versions.json").json()["datasette"]["version"]
    url = make_url(f"datasette:{db.stem}", random.Random(0), [first_id(db)], [])
    rows = httpx.get(base + url, timeout=60)
    print(f"datasette {version}: {len(rows.json())} activations rows for one neuron")
    return proc, base


def first_id(db: Path) -> str:
    from neuronatlas.store import open_reader, reader

    conn = open_reader(db)
    try:
        return reader.neuron_ids(conn)[0]
    finally:
        conn.close()


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def merged(runs: list[dict]) -> dict:
    """One phase's rounds together: requests and errors summed, latencies pooled."""
    lat = [x for r in runs for x in r["lat"]]
    seconds = sum(r["seconds"] for r in runs)
    if not lat:  # a phase that got no answer at all (clients too slow to start) is no result
        return {
            "n": 0,
            "cpu_ms": math.nan,
            "errors": 1,
            "rps": math.nan,
            "p50": math.nan,
            "p99": math.nan,
        }
    return {
        "n": len(lat),
        "cpu_ms": 1000 * sum(r.get("cpu", math.nan) for r in runs) / max(len(lat), 1),
        "errors": sum(r["errors"] for r in runs),
        "rps": len(lat) / seconds,
        "p50": statistics.median(lat),
        "p99": percentile(lat, 0.99),
    }


def measure(
    db: Path,
    workers: int,
    ids: list[str],
    words: list[str],
    clients: int,
    seconds: float,
    datasette: Path | None = None,
    rounds: int = 1,
    with_map: bool = True,
    search_mode: str = "auto",
    extra_records: list[int] | None = None,
    skip: set[str] | None = None,
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
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
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
            "/neurons/{id} (HTML page)": "page",
            "/neurons/{id}?view=full (HTML)": "page_full",
            "/api/neurons/{id}?view=full": "full",
            "/api/neurons/{id}/histogram": "histogram",
            "/api/neurons/{id}/similar": "similar",
            "/api/neurons/{id}/records?category=random": "records",
            "/api/neurons/{id}/summary": "summary",
            f"/api/search ({search_mode})": f"search:{search_mode}",
        }
        for n in extra_records or []:
            phases[f"/api/neurons/{{id}}?records={n}"] = f"neuron:{n}"
        phases = {
            name: kind
            for name, kind in phases.items()
            if kind.split(":")[0] not in (skip or set()) or kind == "healthz"
        }
        if with_map:
            phases["/api/map"] = "map"
            phases["/api/map/clusters (the map page's first fetch)"] = "map_clusters"
            phases["/api/map/points/compact (the map page's points)"] = "map_compact"
        # warm every worker: the first search and map build caches; not measured
        for _ in range(4 * workers):
            httpx.get(base + f"/api/search?q={words[0]}&mode={search_mode}", timeout=120)
            if with_map:
                for path in ("/api/map", "/api/map/clusters", "/api/map/points/compact"):
                    httpx.get(base + path, timeout=300)
        first = len(httpx.get(base + f"/api/neurons/{ids[0]}").content)
        full = len(httpx.get(base + f"/api/neurons/{ids[0]}?view=full").content)
        print(f"one neuron's JSON: first view {first / 1000:.1f} kB, full {full / 1000:.1f} kB")
        html = len(httpx.get(base + f"/neurons/{ids[0]}").content)
        html_full = len(httpx.get(base + f"/neurons/{ids[0]}?view=full").content)
        print(f"one neuron's HTML page: {html / 1000:.1f} kB, ?view=full {html_full / 1000:.1f} kB")
        runs: dict[str, list[dict]] = {}
        ds = start_datasette_server(datasette, db) if datasette is not None else None
        try:
            # phases interleaved over `rounds` rounds: on a shared machine the load drifts,
            # and every phase should see the same drift
            for _ in range(rounds):
                for name, kind in phases.items():
                    cpu = cpu_seconds(proc.pid)
                    run = phase(base, kind, ids, words, clients, seconds)
                    run["cpu"] = cpu_seconds(proc.pid) - cpu
                    runs.setdefault(name, []).append(run)
                if ds is not None:
                    runs.setdefault("datasette activations", []).append(
                        phase(ds[1], f"datasette:{db.stem}", ids, words, clients, seconds)
                    )
        finally:
            if ds is not None:
                stop(ds[0])
        results = {name: merged(rs) for name, rs in runs.items()}
        for name, r in results.items():
            report(name, r)
        mode = httpx.get(base + f"/api/search?q={words[0]}&mode={search_mode}").json()["mode"]
        print(f"search mode: {mode}; load average after: {os.getloadavg()[0]:.2f}")
        verdicts(results)
        return results
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def report(name: str, r: dict) -> None:
    print(
        f"{name:44s} n={r['n']:6d}  {r['rps']:7.0f} req/s  p50 {r['p50']:7.2f} ms  "
        f"p99 {r['p99']:7.2f} ms  server CPU {r['cpu_ms']:5.2f} ms/req  errors {r['errors']}"
    )


# (phase, its name in the verdict, throughput goal, p99 goal), each against /healthz
GOALS = [
    ("/api/neurons/{id}", "neuron", 0.5, 2.0),  # issue 14
    ("/neurons/{id} (HTML page)", "page", 0.4, 2.5),  # issue 25
]


def verdicts(results: dict) -> None:
    """The ratios the goals are about, measured in this run. A run in which any answer was
    not a 200 is no result: it says so and the benchmark exits with status 1."""
    errors = sum(r["errors"] for r in results.values())
    if errors:
        print(f"{errors} answers were not 200: this run is NOT A RESULT")
    base_r = results["/healthz (baseline)"]
    for key, label, rps_goal, p99_goal in GOALS:
        if key not in results:
            continue
        r = results[key]
        rps, p99 = r["rps"] / base_r["rps"], r["p99"] / base_r["p99"]
        print(
            f"{label}/healthz: throughput {rps:.2f}× (goal ≥ {rps_goal:g}: "
            f"{'met' if rps >= rps_goal else 'NOT met'}), p99 {p99:.2f}× (goal ≤ {p99_goal:g}: "
            f"{'met' if p99 <= p99_goal else 'NOT met'}); by server CPU per request "
            f"{base_r['cpu_ms'] / r['cpu_ms']:.2f}×"
        )
    ds = results.get("datasette activations")
    if ds is None:
        return
    for name in ("/api/neurons/{id}", "/api/neurons/{id}?view=full"):
        if name not in results:
            continue
        ours = results[name]
        ratio = ours["rps"] / ds["rps"]
        print(
            f"{name} vs datasette's activations rows: throughput {ratio:.2f}×, "
            f"p99 {ours['p99']:.1f} vs {ds['p99']:.1f} ms "
            f"({'faster' if ratio > 1 and ours['p99'] < ds['p99'] else 'NOT faster'})"
        )


if __name__ == "__main__":
    main()
