"""CPU time per request of the neuron page, its JSON first view and /healthz, in-process: the
ASGI app called directly (no socket, no load generator), so the figure holds on a loaded,
shared machine where the wall-clock ratios of `serve_bench.py` swing with the load.

Each request goes through the whole app as uvicorn calls it (middleware with gzip, routing,
parameter checks, the route, the template), for random neurons, warm; per endpoint the CPU
time of the process (`time.process_time`) over the requests, endpoints interleaved in rounds.
With `--src` twice (e.g. a checkout of the commit before a change, then this one), each runs
in its own interpreter, both at once (so the machine's other load weighs on both alike),
`--alternations` times, and the ratio is printed.

    PYTHONPATH=src .venv/bin/python bench/page_cpu_bench.py --db atlas.db
    PYTHONPATH=src .venv/bin/python bench/page_cpu_bench.py --db atlas.db \
        --src /tmp/before/src --src src             # before / after, same run
    PYTHONPATH=src .venv/bin/python bench/page_cpu_bench.py --db atlas.db --profile page
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ENDPOINTS = {
    "healthz": "/healthz",
    "json": "/api/neurons/{id}",
    "page": "/neurons/{id}",
}


def scope(path: str) -> dict:
    """An HTTP GET scope as uvicorn hands it to the app, from a browser that accepts gzip."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"accept-encoding", b"gzip, deflate")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def call(app, path: str) -> tuple[int, int]:
    """One request through the app: its status and body size (bytes sent)."""
    status, size = 0, 0

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))

    await app(scope(path), receive, send)
    return status, size


async def run(
    db: Path,
    n: int,
    rounds: int,
    profile: str | None,
    warm: int,
    gzip: bool = True,
    sort: str = "cumulative",
) -> dict:
    from neuronatlas.store import open_reader, reader
    from neuronatlas.web.app import create_app

    conn = open_reader(db)
    ids = reader.neuron_ids(conn)
    conn.close()
    app = create_app(db, compress=gzip)
    rng = random.Random(0)
    cpu: dict[str, list[float]] = {k: [] for k in ENDPOINTS}
    sizes: dict[str, list[int]] = {k: [] for k in ENDPOINTS}
    async with app.router.lifespan_context(app):
        # warm: a server's state after a while, its SQLite page cache full (its first
        # requests fill it, each taking fresh memory), templates compiled, statements cached
        for nid in rng.sample(ids, warm):
            await call(app, ENDPOINTS["json"].format(id=nid))
        for nid in rng.sample(ids, 50):
            for tmpl in ENDPOINTS.values():
                await call(app, tmpl.format(id=nid))
        if profile:
            import cProfile
            import pstats

            paths = [ENDPOINTS[profile].format(id=i) for i in rng.sample(ids, n)]
            prof = cProfile.Profile()
            prof.enable()
            for p in paths:
                await call(app, p)
            prof.disable()
            pstats.Stats(prof).sort_stats(sort).print_stats(45)
            return {}
        for _ in range(rounds):
            for name, tmpl in ENDPOINTS.items():
                paths = [tmpl.format(id=i) for i in rng.sample(ids, n)]
                t0 = time.process_time()
                for p in paths:
                    status, size = await call(app, p)
                    if status != 200:
                        raise SystemExit(f"{p}: status {status}")
                    sizes[name].append(size)
                cpu[name].append((time.process_time() - t0) / n * 1000)
    return {name: {"rounds": v, "bytes": statistics.median(sizes[name])} for name, v in cpu.items()}


def show(label: str, r: dict) -> None:
    """Per endpoint: the median and the least of its rounds' CPU per request (the load of a
    shared machine only ever adds to CPU time: the least is the steadiest figure)."""
    h = min(r["healthz"]["rounds"])
    for name, v in r.items():
        least = min(v["rounds"])
        print(
            f"{label:16s} {name:8s} median {statistics.median(v['rounds']):6.3f} ms/req, "
            f"least {least:6.3f}  {v['bytes'] / 1000:6.1f} kB sent  {least / h:5.2f}× /healthz"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, required=True, help="an atlas (opened read-only)")
    ap.add_argument("--requests", type=int, default=300, help="requests per endpoint per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warm", type=int, default=2000, help="neurons read before measuring")
    ap.add_argument("--src", action="append", help="a source tree to measure (twice: A/B)")
    ap.add_argument("--alternations", type=int, default=2, help="A/B runs of each --src")
    ap.add_argument("--profile", choices=sorted(ENDPOINTS), help="cProfile one endpoint")
    ap.add_argument("--sort", default="cumulative", help="the profile's order (tottime, ...)")
    ap.add_argument("--no-gzip", action="store_true", help="serve without compression")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # child mode
    args = ap.parse_args()
    if not args.src:
        r = asyncio.run(
            run(
                args.db,
                args.requests,
                args.rounds,
                args.profile,
                args.warm,
                not args.no_gzip,
                args.sort,
            )
        )
        if args.json:
            print(json.dumps(r))
        elif r:
            print(f"load average {os.getloadavg()[0]:.2f}")
            show("", r)
        return
    got: dict[str, list[dict]] = {s: [] for s in args.src}
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    cmd = [sys.executable, __file__, "--db", str(args.db), "--json"]
    cmd += ["--requests", str(args.requests), "--rounds", str(args.rounds)]
    cmd += ["--warm", str(args.warm)] + (["--no-gzip"] if args.no_gzip else [])
    for _ in range(args.alternations):
        # the trees side by side, at the same time: whatever else the machine runs weighs on
        # both alike (one after the other, a load that came and went decided the ratio)
        procs = {
            src: subprocess.Popen(
                cmd,
                env={**os.environ, "PYTHONPATH": src, "HF_HUB_OFFLINE": "1"},
                stdout=subprocess.PIPE,
                text=True,
            )
            for src in args.src
        }
        for src, proc in procs.items():
            out, _ = proc.communicate()
            if proc.returncode:
                raise SystemExit(f"{src}: the run failed (status {proc.returncode})")
            got[src].append(json.loads(out.splitlines()[-1]))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    pooled = {}
    for src, runs in got.items():  # every round of every alternation
        pooled[src] = {
            name: {
                "rounds": [x for r in runs for x in r[name]["rounds"]],
                "bytes": runs[0][name]["bytes"],
            }
            for name in ENDPOINTS
        }
        show(str(Path(src).resolve().parent.name), pooled[src])
    if len(args.src) == 2:
        a, b = (pooled[s] for s in args.src)
        for name in ENDPOINTS:
            ra, rb = a[name]["rounds"], b[name]["rounds"]
            print(
                f"{name:8s} second / first: least {min(rb) / min(ra):.2f}×, "
                f"median {statistics.median(rb) / statistics.median(ra):.2f}×"
            )


if __name__ == "__main__":
    main()
