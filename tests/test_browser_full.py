"""The explorer in Chromium over an atlas with every stage built: N2G graphs (tiny detector
GPT-2), embeddings, the map with clusters, and the live model behind the test box."""

from __future__ import annotations

import pytest

from browser_fixtures import SHOTS, launch_chromium, serve_in_thread

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_gpt2_dir, free_port):
    import embed_fixtures  # noqa: F401  (registers the instant "test-hashing" embedder)
    from n2g_atlas import build_atlas
    from neuronatlas.embed.embed import EmbedConfig, embed_atlas
    from neuronatlas.map.neuron_map import MapConfig, build_map
    from neuronatlas.n2g.run import run_n2g
    from neuronatlas.web import create_app

    neurons = [(0, 3), (1, 5), (1, 7), (0, 1), (0, 2), (1, 1), (1, 2), (0, 4)]
    db = build_atlas(tmp_path_factory.mktemp("full") / "atlas.db", tiny_gpt2_dir, neurons)
    assert run_n2g(db, all_=True).failed == []
    embed_atlas(db, EmbedConfig(embedder="test-hashing"))
    build_map(db, MapConfig(neighbors=3, clusterer="kmeans", n_clusters=2, seed=1))
    with serve_in_thread(create_app(db, model=str(tiny_gpt2_dir)), free_port()) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        pg = browser.new_page(viewport={"width": 1280, "height": 860})
        pg.on("pageerror", lambda e: errors.append(str(e)))
        yield pg
        browser.close()
    assert not errors, errors


def test_built_map_colours_by_cluster_with_labels(page, server):
    SHOTS.mkdir(exist_ok=True)
    page.goto(server + "/")
    page.wait_for_selector("#map[data-ready='8']", timeout=30_000)
    assert page.locator("#map-note").is_hidden()
    page.click(".toggle button[data-colour='cluster']")
    colours = page.evaluate("naMap.colourCount()")
    assert colours == 2
    assert page.locator("#map .annotation").count() == 2
    page.screenshot(path=str(SHOTS / "map-clusters.png"))


def test_neuron_page_with_graph_and_live_test(page, server):
    page.goto(server + "/neurons/L00N0003")
    img = page.locator("#n2g .graph img")
    img.wait_for()
    page.wait_for_function("document.querySelector('#n2g .graph img').naturalWidth > 0")
    assert "F1" in page.inner_text("#n2g") and "baseline F1" in page.inner_text("#n2g")
    page.fill("#live-text", "my cat saw the dog and a cat")
    page.click("#live-form button[type=submit]")
    page.wait_for_selector("#live-out .na-heat >> nth=1", timeout=60_000)
    rows = page.locator("#live-out .na-heat")
    assert rows.count() == 2  # live activation, then the N2G prediction
    cats = rows.nth(0).locator(".na-tok", has_text="cat")
    assert cats.count() == 2 and float(cats.first.get_attribute("data-v")) > 5
    predicted = rows.nth(1).locator(".na-tok", has_text="cat")
    assert float(predicted.first.get_attribute("data-v")) > 5
    page.click("#logits-btn")
    page.wait_for_selector("#logits p", timeout=60_000)
    assert "promotes" in page.inner_text("#logits")
    page.screenshot(path=str(SHOTS / "neuron-n2g-live.png"), full_page=True)


def test_neuron_page_fetches_what_the_first_view_leaves_out(page, server):
    """The server renders the first view (five top records, no histogram, no similar
    neurons); the page's script fetches the rest after it is shown."""
    import httpx

    html = httpx.get(server + "/neurons/L01N0005").text
    assert html.count('class="na-row"') == 5 and "<svg" not in html
    page.goto(server + "/neurons/L01N0005")
    page.wait_for_selector("html[data-lazy='done']", timeout=10_000)
    assert page.locator("#hist svg.hist rect").count() == 40
    assert page.locator(".tab-body[data-body='top'] .na-row").count() == 12
    similar = page.locator("#similar-body li a")
    assert similar.count() > 0 and similar.first.get_attribute("href").startswith("/neurons/L")
    assert page.locator(".js .lazy").count() == 0
    page.click(".tabs button[data-tab='random']")
    page.wait_for_selector(".tab-body[data-body='random'][data-filled]", timeout=10_000)
    random_rows = page.locator(".tab-body[data-body='random'] .na-row")
    assert random_rows.count() == 12 and random_rows.first.locator(".na-tok").count() == 16
    # drawn like the server draws them: the full view's first random record, token by token
    full = httpx.get(server + "/api/neurons/L01N0005?view=full&records=1").json()
    first = full["records"]["random"][0]
    toks = random_rows.first.locator(".na-tok")
    assert [toks.nth(i).get_attribute("data-v") for i in range(16)] == [
        f"{v:.3f}" for v in first["activations"]
    ]
    page.screenshot(path=str(SHOTS / "neuron-lazy.png"), full_page=True)
