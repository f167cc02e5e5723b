"""The explorer in real Chromium (Debian's, driven by Playwright): map → click → neuron page.

Screenshots land in test-output/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from synthetic import build_synthetic_atlas

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent.parent / "test-output"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """uvicorn on a free loopback port in a thread, serving a small synthetic atlas."""
    import uvicorn

    from neuronatlas.web import create_app

    path = build_synthetic_atlas(
        tmp_path_factory.mktemp("browser") / "atlas.db",
        layers=4,
        per_layer=48,
        n_top=6,
        n_random=4,
        length=24,
    )
    port = free_port()
    config = uvicorn.Config(create_app(path), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM.exists(), (
        "Debian chromium is missing: `make test` installs it (apt-get install chromium)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = ctx.new_page()
    outside: list[str] = []
    errors: list[str] = []
    pg.on("request", lambda r: None if r.url.startswith(server) else outside.append(r.url))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    ctx.close()
    assert not outside, f"requests left the server: {outside}"
    assert not errors, f"JavaScript errors: {errors}"


def point_position(page, index: int) -> tuple[float, float]:
    """Client coordinates of point `index` of the map's first trace (from plotly's axes)."""
    return page.evaluate(
        """(i) => {
            const d = document.getElementById('map'), L = d._fullLayout;
            const t = d.data[0], box = d.getBoundingClientRect();
            return [box.left + L.margin.l + L.xaxis.l2p(t.x[i]),
                    box.top + L.margin.t + L.yaxis.l2p(t.y[i])];
        }""",
        index,
    )


def test_map_click_opens_the_neuron_with_heat_maps(page, server):
    SHOTS.mkdir(exist_ok=True)
    page.goto(server + "/")
    page.wait_for_selector("#map[data-ready='192']", timeout=30_000)
    assert "not built" in page.inner_text("#map-note")
    page.screenshot(path=str(SHOTS / "map.png"))
    x, y = point_position(page, 50)  # layer 1, neuron 2
    page.mouse.move(x, y)
    page.wait_for_selector("#tip:not([hidden])", timeout=5_000)
    assert "L01N0002" in page.inner_text("#tip")
    page.screenshot(path=str(SHOTS / "map-hover.png"))
    page.mouse.click(x, y)
    page.wait_for_url("**/neurons/L01N0002", timeout=10_000)
    assert page.inner_text("#neuron-id") == "L01N0002"
    assert page.locator("#records .na-tok").count() > 100
    assert page.locator("svg.hist rect").count() > 5
    page.screenshot(path=str(SHOTS / "neuron.png"), full_page=True)


def test_neuron_page_tabs_navigation_and_live_message(page, server):
    page.goto(server + "/neurons/L02N0010")
    visible = page.locator(".tab-body:not([hidden]) .na-heat")
    assert visible.count() == 6
    page.click(".tabs button[data-tab='random']")
    assert page.locator(".tab-body:not([hidden]) .na-heat").count() == 4
    tok = page.locator(".tab-body:not([hidden]) .na-tok").first
    assert float(tok.get_attribute("data-v")) == pytest.approx(float(tok.get_attribute("title")))
    assert "Live activations are unavailable" in page.inner_text("#live")
    page.keyboard.press("ArrowRight")
    page.wait_for_url("**/neurons/L02N0011")


def test_search_page_and_map_highlight(page, server):
    page.goto(server + "/search?q=river&mode=substring")
    n_results = page.locator("#results a.rid").count()
    assert n_results > 0
    page.screenshot(path=str(SHOTS / "search.png"), full_page=True)
    page.goto(server + "/")
    page.wait_for_selector("#map[data-ready]", timeout=30_000)
    page.fill("#map-q", "river")
    page.click("#map-search button[type=submit]")
    page.wait_for_function("document.getElementById('map-found').textContent.includes('match')")
    found = page.evaluate("document.getElementById('map').data[1].x.length")
    assert found == n_results
    page.screenshot(path=str(SHOTS / "map-search.png"))


def test_api_docs_render_offline(page, server):
    page.goto(server + "/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() >= 10
    page.screenshot(path=str(SHOTS / "docs.png"))


def test_dark_scheme_follows_the_system(browser, server):
    ctx = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme="dark")
    pg = ctx.new_page()
    pg.goto(server + "/neurons/L03N0007")
    bg = pg.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(20, 22, 27)"
    pg.screenshot(path=str(SHOTS / "neuron-dark.png"), full_page=True)
    pg.goto(server + "/")
    pg.wait_for_selector("#map[data-ready]", timeout=30_000)
    pg.screenshot(path=str(SHOTS / "map-dark.png"))
    ctx.close()
