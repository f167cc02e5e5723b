"""The explorer in real Chromium (Debian's, driven by Playwright): map → click → neuron page.

Screenshots land in test-output/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import pytest

from browser_fixtures import SHOTS, launch_chromium, serve_in_thread

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(synthetic_atlas, free_port):
    """uvicorn on a free loopback port in a thread, serving a small synthetic atlas."""
    from neuronatlas.web import create_app

    path = synthetic_atlas("browser", layers=4, per_layer=48, n_top=6, n_random=4, length=24)
    with serve_in_thread(create_app(path), free_port()) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
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


def point_position(page, neuron_id: str) -> tuple[float, float]:
    """Client coordinates of a neuron's point on the map (from the page's view)."""
    return page.evaluate("(id) => naMap.toScreen(id)", neuron_id)


def test_map_click_opens_the_neuron_with_heat_maps(page, server):
    SHOTS.mkdir(exist_ok=True)
    page.goto(server + "/")
    page.wait_for_selector("#map[data-ready='192']", timeout=30_000)
    assert "not built" in page.inner_text("#map-note")
    page.screenshot(path=str(SHOTS / "map.png"))
    x, y = point_position(page, "L01N0002")
    page.mouse.move(x, y)
    page.wait_for_selector("#tip:not([hidden])", timeout=5_000)
    assert "L01N0002" in page.inner_text("#tip")
    page.screenshot(path=str(SHOTS / "map-hover.png"))
    page.mouse.click(x, y)
    page.wait_for_url("**/neurons/L01N0002", timeout=10_000)
    assert page.inner_text("#neuron-id") == "L01N0002"
    page.wait_for_selector("html[data-lazy='done']", timeout=10_000)  # histogram, all top records
    assert page.locator("#records .na-tok").count() > 100
    assert page.locator("svg.hist rect").count() > 5
    page.screenshot(path=str(SHOTS / "neuron.png"), full_page=True)


def test_neuron_page_tabs_navigation_and_live_message(page, server):
    page.goto(server + "/neurons/L02N0010")
    page.wait_for_selector("html[data-lazy='done']", timeout=10_000)
    visible = page.locator(".tab-body:not([hidden]) .na-heat")
    assert visible.count() == 6  # five in the first view, the sixth fetched after it
    page.click(".tabs button[data-tab='random']")
    page.wait_for_selector(".tab-body[data-body='random'][data-filled]", timeout=10_000)
    assert page.locator(".tab-body:not([hidden]) .na-heat").count() == 4
    tok = page.locator(".tab-body:not([hidden]) .na-tok").first
    assert float(tok.get_attribute("data-v")) == pytest.approx(float(tok.get_attribute("title")))
    assert "Live activations are unavailable" in page.inner_text("#live")
    page.keyboard.press("ArrowRight")
    page.wait_for_url("**/neurons/L02N0011")


SPANS = """() => [...document.querySelectorAll(".tab-body[data-body='top'] .na-heat")]
  .slice(0, 5).map((box) => [...box.children].map((s) => [s.className,
    getComputedStyle(s).backgroundColor, s.dataset.v, s.title, s.textContent]))"""


def test_first_view_records_are_painted_as_the_full_page_draws_them(page, server):
    """The first view's five excerpts, coloured in the browser from their `data-f32`, are
    the full page's server-drawn heat-maps: classes, colours, labels and text, span by span."""
    page.goto(server + "/neurons/L03N0007?view=full")
    drawn = page.evaluate(SPANS)
    page.goto(server + "/neurons/L03N0007")
    page.wait_for_selector("html[data-lazy='done']", timeout=10_000)
    painted = page.evaluate(SPANS)
    assert len(drawn) == 5 and sum(len(r) for r in drawn) == 5 * 24
    assert painted == drawn
    assert page.locator(".na-heat[data-f32], .na-heat[data-f64]").count() == 0  # all painted
    assert any(cls == "na-tok na-peak" for row in painted for cls, *_ in row)


def test_neuron_page_reads_without_javascript(browser, server):
    """No script: the first view says where the rest is, and `?view=full` has it all."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 860}, java_script_enabled=False)
    pg = ctx.new_page()
    pg.goto(server + "/neurons/L02N0010")
    assert "The full page" in pg.inner_text("main")
    assert pg.locator(".tab-body[data-body='top'] .na-heat").count() == 5
    assert pg.locator("svg.hist").count() == 0
    pg.locator("a[href$='?view=full']").first.click()
    pg.wait_for_url("**/neurons/L02N0010?view=full")
    assert pg.locator("svg.hist rect").count() > 5
    assert pg.locator(".tab-body[data-body='top'] .na-heat").count() == 6
    assert pg.locator(".tab-body[data-body='random'] .na-heat").count() == 4
    assert "neuronatlas embed" in pg.inner_text("#similar")  # why there are none, not a link
    ctx.close()


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
    found = page.evaluate("naMap.highlighted()")
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
