"""The map page in Chromium shows coarse labels zoomed out and fine labels zoomed in, and the
points take the colours of the level shown (a topical atlas: 6 fine clusters in 3 coarse)."""

from __future__ import annotations

import threading
import time

import pytest

from browser_fixtures import ARGS, CHROMIUM, SHOTS

pytestmark = pytest.mark.browser

ZOOM_TO_FINE = """(c) => {
  const v = naMap.view(), w = (v.x[1] - v.x[0]) / 5, h = (v.y[1] - v.y[0]) / 5;
  return naMap.setView(c.x - w, c.x + w, c.y - h, c.y + h);
}"""
LABELS = "Array.from(document.querySelectorAll('#map .annotation-text')).map((a) => a.textContent)"
COLOURS = "naMap.colourCount()"


@pytest.fixture(scope="module")
def server(tmp_path_factory, free_port):
    import uvicorn

    from map_fixtures import topical_atlas
    from neuronatlas.map.neuron_map import MapConfig, build_map
    from neuronatlas.web import create_app

    db, _ = topical_atlas(tmp_path_factory.mktemp("levels") / "atlas.db")
    build_map(db, MapConfig(neighbors=5, seed=3, n_clusters=6, n_coarse=3))
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def test_coarse_labels_zoomed_out_fine_labels_zoomed_in(server):
    assert CHROMIUM.exists(), "Debian chromium is missing: `make test` installs it"
    import httpx
    from playwright.sync_api import sync_playwright

    body = httpx.get(server + "/api/map").json()
    coarse = {c["label"] for c in body["coarse"]}
    fine = {c["label"]: c for c in body["clusters"]}
    assert len(coarse) == 3 and len(fine) == 6
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server + "/")
        page.wait_for_selector("#map[data-ready='60']", timeout=30_000)
        page.wait_for_selector("#map[data-level='coarse']")
        assert set(page.evaluate(LABELS)) == coarse
        assert page.evaluate(COLOURS) == 3  # coloured by coarse cluster from the start
        assert "3 coarse clusters" in page.inner_text("#map-level")
        target = max(fine.values(), key=lambda c: c["size"])
        page.evaluate(ZOOM_TO_FINE, {"x": target["x"], "y": target["y"]})
        page.wait_for_selector("#map[data-level='fine']")
        shown = page.evaluate(LABELS)
        assert target["label"] in shown and set(shown) <= set(fine)
        assert page.evaluate(COLOURS) == 6  # now coloured by fine cluster
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "map-fine.png"))
        page.evaluate("naMap.reset()")
        page.wait_for_selector("#map[data-level='coarse']")
        assert set(page.evaluate(LABELS)) == coarse
        browser.close()
    assert not errors, errors
