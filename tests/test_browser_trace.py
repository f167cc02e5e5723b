"""The /trace page in Chromium, over a real atlas of the planted-circuit GPT-2 served with its
model (on " cat", L00N0011 feeds L01N0013, which makes " France" the next token; both in map
cluster "cat → France"; fixture `circuit_atlas_path` in tests/conftest.py)."""

from __future__ import annotations

import json

import pytest

from browser_fixtures import SHOTS, launch_chromium, serve_in_thread

pytestmark = pytest.mark.browser

DETECTOR, WRITER = "L00N0011", "L01N0013"


@pytest.fixture(scope="module")
def server(circuit_atlas_path, free_port):
    from neuronatlas.web import create_app

    with serve_in_thread(create_app(circuit_atlas_path), free_port()) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    errors: list[str] = []
    pg = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    pg.close()
    assert not errors, errors


def trace_prompt(page, server, text: str) -> None:
    page.goto(server + "/trace")
    page.fill("#trace-text", text)
    page.click("#trace-form button[type=submit]")
    page.wait_for_selector("#trace-svg .node.neuron", timeout=60_000)


def drawn_neurons(page) -> set[str]:
    nodes = page.locator("#trace-svg .node.neuron")
    return {nodes.nth(i).get_attribute("data-neuron") for i in range(nodes.count())}


def test_trace_draws_the_circuit_and_hover_explains_it(page, server):
    SHOTS.mkdir(exist_ok=True)
    trace_prompt(page, server, "I saw a cat")
    assert drawn_neurons(page) == {DETECTOR, WRITER}  # and no distractor
    assert page.locator("#trace-svg .edge").count() >= 3  # embedding → detector → writer → logit
    # the target picker holds the explained next tokens, " France" first
    options = page.locator("#trace-target option")
    assert options.nth(1).get_attribute("value") == " France"
    assert page.locator("#trace-svg .node.logit.target").count() == 1
    page.hover(f'#trace-svg .node.neuron[data-neuron="{WRITER}"]')
    tip = page.locator("#trace-tip")
    tip.wait_for(state="visible")
    assert WRITER in tip.inner_text() and "says France next" in tip.inner_text()
    assert "activation" in tip.inner_text() and "cat → France" in tip.inner_text()
    assert "text=I+saw+a+cat" in page.url  # shareable
    page.screenshot(path=str(SHOTS / "trace.png"), full_page=True)
    page.click(f'#trace-svg .node.neuron[data-neuron="{DETECTOR}"]')
    page.wait_for_url(f"**/neurons/{DETECTOR}")
    assert page.inner_text("#neuron-id") == DETECTOR


def test_steering_the_supernode_takes_france_away(page, server):
    trace_prompt(page, server, "I saw a cat")
    group = page.locator("#trace-groups .sn")
    assert group.count() == 1 and "cat → France" in group.inner_text()
    assert DETECTOR in group.inner_text() and WRITER in group.inner_text()
    group.locator(".sn-steer").click()
    line = group.locator(".sn-target")
    line.wait_for(timeout=60_000)
    text = line.inner_text()
    before, after = (float(x) for x in text.split("p ")[1].split(" (")[0].split(" → "))
    assert '" France"' in text and before > 0.2 and after < 0.001 and "rank 1 → " in text
    assert "France" in group.locator(".sn-before").inner_text()
    assert "France" not in group.locator(".sn-after").inner_text()
    # collapsed, the supernode is one node standing for both neurons; clicked, it opens again
    group.locator(".sn-toggle").click()
    assert drawn_neurons(page) == set()
    node = page.locator("#trace-svg .node.supernode")
    assert node.count() == 1
    node.hover()
    assert "2 nodes" in page.inner_text("#trace-tip")
    node.click()
    assert drawn_neurons(page) == {DETECTOR, WRITER}
    assert page.locator("#trace-svg .sn-box").count() == 1
    assert "rank 1 → " in group.locator(".sn-target").inner_text()  # kept across redraws
    page.screenshot(path=str(SHOTS / "trace-steer.png"), full_page=True)


def test_picking_another_target_and_downloading_for_neuronpedia(page, server, tmp_path):
    trace_prompt(page, server, "I saw a cat")
    other = page.locator("#trace-target option").nth(2).get_attribute("value")
    assert other and other != " France"
    page.select_option("#trace-target", other)
    page.wait_for_function(
        "document.getElementById('trace-msg').textContent.includes('explain ' + "
        f"{json.dumps(json.dumps(other))})",
        timeout=60_000,
    )
    assert page.locator("#trace-svg .node.logit").count() == 1
    assert page.input_value("#trace-target") == other
    with page.expect_download() as download:
        page.click("#trace-download")
    saved = tmp_path / "graph.json"
    download.value.save_as(saved)
    doc = json.loads(saved.read_text())
    assert doc["metadata"]["prompt"] == "I saw a cat"
    (logit,) = [n for n in doc["nodes"] if n["feature_type"] == "logit"]
    assert logit["is_target_logit"] and logit["clerp"].startswith(f'Output "{other}"')


def test_neuron_page_traces_its_top_excerpt(page, server):
    page.goto(server + f"/neurons/{DETECTOR}")
    page.click("#trace-link")
    page.wait_for_selector("#trace-svg .node.neuron", timeout=60_000)
    assert page.input_value("#trace-text").endswith(" cat")
    focus = page.locator("#trace-svg .node.neuron.focus")
    assert focus.count() >= 1 and focus.first.get_attribute("data-neuron") == DETECTOR


def test_bad_target_is_reported_on_the_page(page, server):
    page.goto(server + "/trace?" + "text=I+saw+a+cat&target=+Eiffel+Tower")
    page.wait_for_function(
        "document.getElementById('trace-msg').textContent.includes('not one')", timeout=60_000
    )
    assert page.locator("#trace-svg").count() == 0
