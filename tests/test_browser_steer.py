"""The neuron page's steering panel in Chromium, over a real atlas of the steering GPT-2
(L00N0009 fires on " Paris" and makes " France" the next token; see tests/tiny_models.py)."""

from __future__ import annotations

import threading
import time

import pytest

from browser_fixtures import ARGS, CHROMIUM, SHOTS

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(steer_atlas_path, free_port):
    import uvicorn

    from neuronatlas.web import create_app

    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(
            create_app(steer_atlas_path), host="127.0.0.1", port=port, log_level="warning"
        )
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


@pytest.fixture(scope="module")
def page(server):
    assert CHROMIUM.exists(), (
        "Debian chromium is missing: `make test` installs it (apt-get install chromium)"
    )
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.on("pageerror", lambda e: errors.append(str(e)))
        yield pg
        browser.close()
    assert not errors, errors


def run_panel(page, text: str, mode: str, value: str | None = None) -> None:
    page.fill("#steer-text", text)
    page.select_option("#steer-mode", mode)
    if value is not None:
        page.fill("#steer-value", value)
    page.evaluate("document.getElementById('steer-out').innerHTML = ''")
    page.click("#steer-form button[type=submit]")
    page.wait_for_selector("#steer-out .steer-kl .na-tok", timeout=60_000)


def kl_by_token(page) -> list[tuple[str, float]]:
    spans = page.locator("#steer-out .steer-kl .na-tok")
    return [
        (spans.nth(i).inner_text(), float(spans.nth(i).get_attribute("data-v")))
        for i in range(spans.count())
    ]


def test_ablation_shows_kl_where_paris_is_and_both_continuations(page, server):
    SHOTS.mkdir(exist_ok=True)
    page.goto(server + "/neurons/L00N0009")
    assert page.locator("#steer-value").is_disabled()  # ablate takes no value
    run_panel(page, "We flew from Rome to Paris", "ablate")
    kl = kl_by_token(page)
    assert [t for t, _ in kl] == ["We", " flew", " from", " Rome", " to", " Paris"]
    assert kl[-1][1] > 1.0 and all(v == 0 for _, v in kl[:-1])
    # the largest KL is picked first: its table shows " France" losing its probability
    assert page.locator("#steer-out .steer-kl .na-tok.on").inner_text() == " Paris"
    row = page.locator("#steer-changes tr", has_text='" France"')
    cells = row.locator("td")
    assert float(cells.nth(1).inner_text()) > 0.5 and float(cells.nth(3).inner_text()) < -0.5
    assert page.inner_text("#steer-before").startswith(" France")
    assert "France" not in page.inner_text("#steer-after")
    assert "largest KL" in page.inner_text("#steer-msg")
    page.screenshot(path=str(SHOTS / "neuron-steer.png"), full_page=True)


def test_clamp_fills_the_neuron_max_and_a_picked_token_shows_its_changes(page, server):
    page.goto(server + "/neurons/L00N0009")
    page.select_option("#steer-mode", "clamp")
    suggested = float(page.input_value("#steer-value"))
    assert suggested > 5  # the stored max activation of the Paris detector
    run_panel(page, "A cat sat on the mat", "clamp")
    kl = kl_by_token(page)
    assert len(kl) == 6 and min(v for _, v in kl) > 1.0  # clamped at every position
    assert "France France" in page.inner_text("#steer-after")
    page.click("#steer-out .steer-kl .na-tok >> nth=1")
    assert "' cat'" in page.inner_text("#steer-changes") or '" cat"' in page.inner_text(
        "#steer-changes"
    )
    first = page.locator("#steer-changes tbody tr").first.locator("td")
    assert first.nth(0).inner_text() == '" France"'


def test_bad_value_is_reported_in_the_panel(page, server):
    page.goto(server + "/neurons/L00N0009")
    run_panel(page, "Paris", "scale", "1")  # a valid run first: output present
    page.fill("#steer-text", "1 " * 200)
    page.click("#steer-form button[type=submit]")
    page.wait_for_function(
        "document.getElementById('steer-msg').textContent.includes('at most')", timeout=60_000
    )
    assert page.locator("#steer-out").inner_text() == ""


def test_a_group_with_a_target_shows_the_answers_probability(page, server):
    """Other ids typed next to the page's neuron make one group; a target token shows its
    probability before and after (the detector's " France" falls from rank 1)."""
    SHOTS.mkdir(exist_ok=True)
    page.goto(server + "/neurons/L00N0009")
    page.fill("#steer-also", "L00N0001, 1:2")
    page.fill("#steer-target", " France")
    run_panel(page, "We flew from Rome to Paris", "ablate")
    assert "L00N0009, L00N0001, L01N0002 ablate" in page.inner_text("#steer-out")
    line = page.inner_text("#steer-target-out")
    assert '" France"' in line and "rank 1 → " in line
    before, after = (float(x) for x in line.split("p ")[1].split(" (")[0].split(" → "))
    assert before > 0.5 and after < 0.01
    page.screenshot(path=str(SHOTS / "neuron-steer-group.png"), full_page=True)
    page.fill("#steer-also", "L01N0100")  # not in the atlas
    page.click("#steer-form button[type=submit]")
    page.wait_for_function(
        "document.getElementById('steer-msg').textContent.includes('not in this atlas')",
        timeout=60_000,
    )
    assert page.locator("#steer-out").inner_text() == ""
