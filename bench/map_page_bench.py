"""Benchmark: the map page in Chromium, before and after issue 27's second step, same atlas,
same server.

* old — the page as it was at commit BASE (its `map.js`, served in place of today's by a
  Playwright route): `/api/map/clusters` (JSON) and `/api/map/points` (22 bytes a point as
  typed arrays, gzipped by the middleware per request), every point drawn in every frame by
  its own WebGL scatter, labels that never overlap as HTML;
* new — today's page: the same clusters, and `/api/map/points/compact` (12-byte rows:
  quantised coordinates in tiles, each tile in a random order; compressed once per atlas
  state), and a frame submits only the tiles in view, at most BUDGET points (an even sample
  of each tile when more are in view).

Atlases: `map_fixtures.direct_map_atlas` (points written
straight into the store, no import, no embedding) at the demo's size (12 × 3,072 = 36,864,
150 fine clusters in 12 coarse) and at GPT-2 XL's (48 × 6,400 = 307,200, 600 in 30).

Measured per page, `--runs` times (median): Chromium navigation start → points drawn (the
page's `data-ready`: first points drawn, labels placed, hover live), then the first
animation frame after it (the drawn frame reached the screen), and the frame times of 12
pan/zoom steps (each `naMap.setView` awaited plus two animation frames: what the user waits
for per wheel step or drag).

    .venv/bin/python bench/map_page_bench.py             # demo size and XL
    .venv/bin/python bench/map_page_bench.py --sizes demo
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the direct map atlas is a test fixture

BASE = "c990584"  # the map page before level of detail and the compact points
PATHS = ("/api/map", "/api/map/clusters", "/api/map/points", "/api/map/points/compact")
SIZES = {"demo": (12, 3072, 150, 12), "xl": (48, 6400, 600, 30)}
STEPS = """async () => {
  // one zoom or pan step through the page's own API
  const times = [];
  const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const get = () => naMap.view();
  const set = (x, y) => naMap.setView(x[0], x[1], y[0], y[1]);
  for (let i = 0; i < 12; i++) {
    const v = get(), x = v.x, y = v.y;
    const f = i < 6 ? 0.8 : 1.0, dx = i < 6 ? 0 : (x[1] - x[0]) * 0.1;
    const cx = (x[0] + x[1]) / 2 + dx, cy = (y[0] + y[1]) / 2;
    const w = (x[1] - x[0]) * f / 2, h = (y[1] - y[0]) * f / 2;
    const t0 = performance.now();
    await set([cx - w, cx + w], [cy - h, cy + h]);
    await frame();
    times.push(performance.now() - t0);
  }
  return times;
}"""


def old_script() -> str:
    proc = subprocess.run(
        ["git", "-C", str(HERE.parent), "show", f"{BASE}:src/neuronatlas/web/static/map.js"],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def measure(page, url: str, n: int, old: str | None) -> tuple[float, float, list[float]]:
    page.unroute("**/static/map.js")
    if old is not None:
        page.route(
            "**/static/map.js",
            lambda route: route.fulfill(body=old, content_type="application/javascript"),
        )
    page.goto(url, wait_until="commit")
    page.wait_for_selector(f"#map[data-ready='{n}']", timeout=300_000)
    drawn = page.evaluate("performance.now()")  # ms since navigation start
    shown = page.evaluate("new Promise((r) => requestAnimationFrame(() => r(performance.now())))")
    page.wait_for_timeout(300)
    return drawn, shown, page.evaluate(STEPS)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="demo,xl")
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    import httpx
    from playwright.sync_api import sync_playwright

    from browser_fixtures import launch_chromium, serve_in_thread
    from map_fixtures import direct_map_atlas
    from neuronatlas.web import create_app

    old = old_script()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    for name in a.sizes.split(","):
        layers, per_layer, n_fine, n_coarse = SIZES[name]
        n = layers * per_layer
        with tempfile.TemporaryDirectory() as tmp:
            db = direct_map_atlas(Path(tmp) / "atlas.db", layers, per_layer, n_fine, n_coarse)
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            with serve_in_thread(create_app(db), port) as url, sync_playwright() as pw:
                sizes, raw = {}, {}  # bytes on the wire (gzip accepted, as a browser) and raw
                for path in PATHS:
                    r = httpx.get(url + path, timeout=600)
                    sizes[path], raw[path] = r.num_bytes_downloaded, len(r.content)
                browser = launch_chromium(pw)
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                results: dict[str, tuple[list[float], list[float], list[float]]] = {
                    "old": ([], [], []),
                    "new": ([], [], []),
                }
                for _ in range(a.runs):
                    for which in ("old", "new"):
                        drawn, shown, frames = measure(
                            page, url + "/", n, old if which == "old" else None
                        )
                        results[which][0].append(drawn)
                        results[which][1].append(shown)
                        results[which][2].extend(frames)
                page.evaluate("naMap.reset()")  # the whole map in view, as the page opens
                per_frame = page.evaluate("naMap.drawn()")
                browser.close()
        print(f"{name} ({n:,} points); the new page's full view submits {per_frame:,} a frame")
        for path in PATHS:
            print(f"  {path}: {raw[path] / 1e6:.2f} MB, {sizes[path] / 1e6:.2f} MB on the wire")
        for which in ("old", "new"):
            drawn, shown, frames = results[which]
            print(
                f"  {which}: navigation → points drawn {statistics.median(drawn) / 1e3:.2f} s "
                f"(runs {', '.join(f'{d / 1e3:.2f}' for d in drawn)}), next frame "
                f"{statistics.median(shown) / 1e3:.2f} s; pan/zoom frame "
                f"median {statistics.median(frames):.0f} ms, max {max(frames):.0f} ms"
            )
        ratio = statistics.median(results["old"][0]) / statistics.median(results["new"][0])
        print(f"  first points drawn: new {ratio:.2f}× faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
