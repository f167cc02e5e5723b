"""Benchmark: the map page in Chromium, before and after issue 27, same atlas, same server.

* old — the page as it was (`map.js` of commit BASE, served in place of today's by a
  Playwright route, after plotly.min.js, which the page then loaded): `/api/map` as JSON,
  drawn by plotly's scattergl, labels as plotly annotations;
* new — today's page: `/api/map/clusters` (JSON) and `/api/map/points` (typed arrays viewed
  in place), drawn by its own WebGL scatter, labels that never overlap as HTML.
 Atlases: `map_fixtures.direct_map_atlas` (points written
straight into the store, no import, no embedding) at the demo's size (12 × 3,072 = 36,864,
150 fine clusters in 12 coarse) and at GPT-2 XL's (48 × 6,400 = 307,200, 600 in 30).

Measured per page, `--runs` times (median): Chromium navigation start → points drawn (the
page's `data-ready`), and the frame times of 12 pan/zoom steps (each a `Plotly.relayout`
awaited plus two animation frames: what the user waits for per wheel step or drag).

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

BASE = "6496f97"  # the last commit before issue 27's map page
SIZES = {"demo": (12, 3072, 150, 12), "xl": (48, 6400, 600, 30)}
STEPS = """async () => {
  // one zoom or pan step through the page's own API: plotly's (old page) or naMap (new page)
  const d = document.getElementById('map'), times = [];
  const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const get = () => window.naMap ? naMap.view()
    : { x: d._fullLayout.xaxis.range.slice(), y: d._fullLayout.yaxis.range.slice() };
  const set = (x, y) => window.naMap ? naMap.setView(x[0], x[1], y[0], y[1])
    : Plotly.relayout(d, {'xaxis.range': x, 'yaxis.range': y});
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


def measure(page, url: str, n: int, old: str | None) -> tuple[float, list[float]]:
    page.unroute("**/static/map.js")
    if old is not None:
        page.route(
            "**/static/map.js",
            lambda route: route.fulfill(body=old, content_type="application/javascript"),
        )
    page.goto(url, wait_until="commit")
    page.wait_for_selector(f"#map[data-ready='{n}']", timeout=300_000)
    drawn = page.evaluate("performance.now()")  # ms since navigation start
    page.wait_for_timeout(300)
    return drawn, page.evaluate(STEPS)


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
                sizes = {
                    path: len(httpx.get(url + path, timeout=300).content)
                    for path in ("/api/map", "/api/map/clusters", "/api/map/points")
                }
                plotly = httpx.get(url + "/vendor/plotly.min.js", timeout=60).text
                browser = launch_chromium(pw)
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                results: dict[str, tuple[list[float], list[float]]] = {
                    "old": ([], []),
                    "new": ([], []),
                }
                for _ in range(a.runs):
                    for which in ("old", "new"):
                        script = plotly + "\n" + old if which == "old" else None
                        drawn, frames = measure(page, url + "/", n, script)
                        results[which][0].append(drawn)
                        results[which][1].extend(frames)
                browser.close()
        print(
            f"{name} ({n:,} points): bytes /api/map {sizes['/api/map'] / 1e6:.1f} MB | "
            f"/api/map/clusters {sizes['/api/map/clusters'] / 1e3:.0f} kB + /api/map/points "
            f"{sizes['/api/map/points'] / 1e6:.1f} MB"
        )
        for which in ("old", "new"):
            drawn, frames = results[which]
            print(
                f"  {which}: navigation → points drawn {statistics.median(drawn) / 1e3:.2f} s "
                f"(runs {', '.join(f'{d / 1e3:.2f}' for d in drawn)}); pan/zoom frame "
                f"median {statistics.median(frames):.0f} ms, max {max(frames):.0f} ms"
            )
        ratio = statistics.median(results["old"][0]) / statistics.median(results["new"][0])
        print(f"  first points drawn: new {ratio:.2f}× faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
