"""Browser timing of the neuron page: first contentful paint and everything loaded, in Debian's
Chromium (through Playwright), for the page people open (the first view, whose script fetches
the histogram, similar neurons and the rest of the top records after it is shown) against the
page rendered whole on the server (`?view=full`), in the same run on the same neurons.

Serves the atlas with `neuronatlas serve` (one process, loopback) and opens random neurons
one after another in one browser context (static files cached, as for a reader going from
neuron to neuron; a few unmeasured visits warm it). Per visit, from the page's own timings:
FCP (`first-contentful-paint`), the load event, and when the lazily fetched parts are all in
(the page sets `window.naLazyDoneAt`); "everything loaded" is the latest of the three.
Goals (issue 25): FCP ≤ 300 ms and everything loaded ≤ 1 s, judged on the 90th percentile.

    .venv/bin/python bench/page_bench.py --db /work/demo/atlas.db --visits 40
    .venv/bin/python bench/page_bench.py --quick        # a synthetic 12 × 256 atlas
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from serve_bench import build, free_port, stop, wait_up  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWS = {"first view (default)": "", "?view=full": "?view=full"}
TIMINGS = """async () => {
    // the paint entry is queued when the frame is presented, which can come after the
    // script's fetches are in: wait for it (buffered) rather than read it too early
    const fcp = await new Promise((resolve) => {
        const seen = performance.getEntriesByName("first-contentful-paint")[0];
        if (seen) return resolve(seen.startTime);
        new PerformanceObserver((list) => {
            const e = list.getEntriesByName("first-contentful-paint")[0];
            if (e) resolve(e.startTime);
        }).observe({type: "paint", buffered: true});
        setTimeout(() => resolve(null), 5000);
    });
    const nav = performance.getEntriesByType("navigation")[0];
    return {fcp: fcp, load: nav.loadEventEnd, lazy: window.naLazyDoneAt ?? null,
            bytes: nav.decodedBodySize};
}"""


def serve(db: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-c", "from neuronatlas.cli import main; main()", "serve"]
    cmd += ["--db", str(db), "--port", str(port), "--workers", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_up(base, proc)
    return proc, base


def visit(page, url: str) -> dict:
    """Open `url`, wait until its lazily fetched parts are in, return its timings (ms)."""
    page.goto(url, wait_until="load")
    page.wait_for_selector("html[data-lazy='done']", timeout=30_000)
    t = page.evaluate(TIMINGS)
    if t["fcp"] is None or t["lazy"] is None:
        raise RuntimeError(f"{url}: no paint timing or no lazy-done mark ({t})")
    t["all"] = max(t["fcp"], t["load"], t["lazy"])
    return t


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, help="an atlas (default: build a synthetic one)")
    ap.add_argument("--quick", action="store_true", help="a synthetic 12 × 256 atlas")
    ap.add_argument("--visits", type=int, default=40, help="neurons opened per view")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    args = ap.parse_args()
    db = args.db
    if db is None:
        per_layer = 256 if args.quick else 3072
        args.out.mkdir(parents=True, exist_ok=True)
        db = args.out / f"serve_bench_{12 * per_layer}.db"
        if not db.exists():
            build(db, per_layer)

    from playwright.sync_api import sync_playwright

    from neuronatlas.store import open_reader, reader

    conn = open_reader(db)
    ids = random.Random(0).sample(reader.neuron_ids(conn), args.visits + 3)
    conn.close()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    proc, base = serve(db)
    got: dict[str, list[dict]] = {name: [] for name in VIEWS}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
            for nid in ids[:3]:  # warm the cache of static files and the server; not measured
                for suffix in VIEWS.values():
                    visit(page, f"{base}/neurons/{nid}{suffix}")
            for i, nid in enumerate(ids[3:]):
                order = list(VIEWS.items())
                for name, suffix in order if i % 2 == 0 else order[::-1]:  # alternate first
                    got[name].append(visit(page, f"{base}/neurons/{nid}{suffix}"))
            version = browser.version
            browser.close()
    finally:
        stop(proc)
    print(
        f"Chromium {version}, {args.visits} neurons per view, {base}; load average after: "
        f"{os.getloadavg()[0]:.2f}"
    )
    for name, runs in got.items():
        fcp = [r["fcp"] for r in runs]
        done = [r["all"] for r in runs]
        kb = statistics.median(r["bytes"] for r in runs) / 1000
        print(
            f"{name:22s} HTML {kb:6.1f} kB  FCP median {statistics.median(fcp):6.1f} ms, "
            f"p90 {pct(fcp, 0.9):6.1f}, max {max(fcp):6.1f}  |  everything loaded median "
            f"{statistics.median(done):6.1f} ms, p90 {pct(done, 0.9):6.1f}, max {max(done):6.1f}"
        )
    first, full = got["first view (default)"], got["?view=full"]
    fcp90, done90 = pct([r["fcp"] for r in first], 0.9), pct([r["all"] for r in first], 0.9)
    ratio = statistics.median(r["fcp"] for r in first) / statistics.median(r["fcp"] for r in full)
    print(f"first view / full: FCP median {ratio:.2f}×")
    print(
        f"first view: FCP p90 {fcp90:.0f} ms (goal ≤ 300: {'met' if fcp90 <= 300 else 'NOT met'}),"
        f" everything loaded p90 {done90:.0f} ms (goal ≤ 1000: "
        f"{'met' if done90 <= 1000 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
