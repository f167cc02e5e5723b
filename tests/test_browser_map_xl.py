"""The map page at GPT-2 XL's size (48 × 6,400 = 307,200 points, written straight into the
atlas by `map_fixtures.direct_map_atlas`): points drawn, labels shown without overlapping,
hover shows a neuron and a click opens its page; a frame submits at most the page's budget of
points, zoomed out an even sample of the map, zoomed in every point in view. Timings:
bench/map_page_bench.py."""

from __future__ import annotations

import re

import pytest

from browser_fixtures import SHOTS, launch_chromium, serve_in_thread
from map_fixtures import direct_map_atlas

pytestmark = pytest.mark.browser

N = 48 * 6400
BUDGET = 60_000  # map.js's BUDGET
IN_VIEW = """() => {  // the points inside the current view, counted from the page's own arrays
  const v = naMap.view();
  return naMap.count((x, y) => x >= v.x[0] && x <= v.x[1] && y >= v.y[0] && y <= v.y[1]);
}"""
BOXES = """() => Array.from(document.querySelectorAll('#map .annotation')).map((a) => {
  const r = a.getBoundingClientRect(); return [a.textContent, r.left, r.top, r.right, r.bottom];
})"""
ZOOM = """(f) => {
  const v = naMap.view(), w = (v.x[1] - v.x[0]) * f / 2, h = (v.y[1] - v.y[0]) * f / 2;
  const cx = (v.x[0] + v.x[1]) / 2, cy = (v.y[0] + v.y[1]) / 2;
  return naMap.setView(cx - w, cx + w, cy - h, cy + h);
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, free_port):
    from neuronatlas.web import create_app

    db = direct_map_atlas(tmp_path_factory.mktemp("xl") / "atlas.db", 48, 6400, 600, 30)
    with serve_in_thread(create_app(db), free_port()) as url:
        yield url


def no_overlap(boxes: list) -> bool:
    return not any(
        a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5 and a[2] < b[4] - 0.5 and b[2] < a[4] - 0.5
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
    )


def test_the_xl_map_is_interactive(server):
    import httpx
    from playwright.sync_api import sync_playwright

    body = httpx.get(server + "/api/map/clusters", timeout=120).json()
    coarse = {c["label"] for c in body["coarse"]}
    fine = {c["label"] for c in body["clusters"]}
    errors: list[str] = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server + "/")
        page.wait_for_selector(f"#map[data-ready='{N}']", timeout=120_000)
        page.wait_for_selector("#map[data-level='coarse']")
        shown = page.evaluate(BOXES)
        assert len(shown) >= 5 and {s[0] for s in shown} <= coarse
        assert no_overlap(shown)
        drawn = page.evaluate("naMap.drawn()")  # zoomed out: a sample, within the budget
        assert BUDGET / 2 < drawn <= BUDGET
        page.evaluate(ZOOM, 0.3)
        page.wait_for_selector("#map[data-level='fine']")
        shown = page.evaluate(BOXES)
        assert shown and {s[0] for s in shown} <= fine and no_overlap(shown)
        page.evaluate(ZOOM, 0.5)  # zoomed in: every point in view is drawn
        assert page.evaluate("naMap.drawn()") >= page.evaluate(IN_VIEW) > 1000
        page.evaluate(ZOOM, 2.0)
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "map-xl-fine.png"))
        box = page.locator("#map-canvas").bounding_box()
        assert box is not None
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        for dx in range(0, 200, 8):  # find a spot over a point
            page.mouse.move(x + dx, y)
            if page.locator("#tip:not([hidden])").count():
                break
        page.wait_for_selector("#tip:not([hidden])", timeout=10_000)
        page.wait_for_function("document.getElementById('tip').textContent.includes(' and ')")
        hovered = re.match(r"L\d\dN\d{4}", page.inner_text("#tip"))
        assert hovered is not None
        page.mouse.click(x + dx, y)
        page.wait_for_url(re.compile(r".*/neurons/L\d\dN\d{4}$"), timeout=30_000)
        assert page.url.endswith(hovered.group(0))
        browser.close()
    assert not errors, errors
