"""The neuron page's fast path: `/neurons/{id}` as people open it is served by a plain
Starlette route with its body drawn in Python and its shell rendered once; every other request
to that path still goes through FastAPI's route, its checks, redirects and error pages."""

from __future__ import annotations

import re

import msgspec
import pytest
from starlette.testclient import TestClient

from neuronatlas.read.views import (
    ExplanationScore,
    Histogram,
    LiveStatus,
    N2GSummary,
    SearchHit,
    Similar,
)
from neuronatlas.web import steer_api, trace_api
from neuronatlas.web.app import create_app
from neuronatlas.web.neuron_html import neuron_main
from neuronatlas.web.pages import FirstViewRoute

HTML = {"accept": "text/html"}


@pytest.fixture(scope="module")
def app(synthetic_atlas):
    return create_app(synthetic_atlas("page", layers=2, per_layer=4, n_top=5, n_random=3))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


def route_of(app, path: str, query: bytes = b"") -> object:
    scope = {"type": "http", "method": "GET", "path": path, "query_string": query}
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match.name == "FULL":
            return route
    return None


def test_only_the_plain_first_view_takes_the_fast_route(app):
    assert isinstance(route_of(app, "/neurons/L01N0002"), FirstViewRoute)
    assert isinstance(route_of(app, "/neurons/L01N0002", b"view=first"), FirstViewRoute)
    for path, query in [
        ("/neurons/L1N2", b""),  # another spelling: redirected by FastAPI's route
        ("/neurons/1:2", b""),
        ("/neurons/L01N00002", b""),
        ("/neurons/L01N0002", b"view=full"),
        ("/neurons/L01N0002", b"view=bad"),
        ("/neurons/L01N0002", b"view=first&x=1"),
        ("/neurons/L01N0002/next", b""),
    ]:
        assert not isinstance(route_of(app, path, query), FirstViewRoute), (path, query)


def test_the_page_and_the_paths_around_it(client):
    page = client.get("/neurons/L01N0002", headers=HTML)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "<title>L01N0002 · neuronatlas" in text
    assert '<link rel="alternate" type="application/json" href="/api/neurons/L01N0002">' in text
    assert '<h1 id="neuron-id">L01N0002</h1>' in text
    assert 'href="/neurons/L01N0001" rel="prev"' in text and 'rel="next"' in text
    assert '<a href="/neurons/L01N0002?view=full">The full page</a>' in text
    assert text.count('class="na-heat"') == 5  # the first view's five records
    assert text.rstrip().endswith("</html>") and "\x00" not in text
    # the same page for the explicit default, a different one for another neuron
    assert client.get("/neurons/L01N0002?view=first", headers=HTML).text == text
    other = client.get("/neurons/L00N0003", headers=HTML).text
    assert '<h1 id="neuron-id">L00N0003</h1>' in other and "L01N0002</h1>" not in other

    full = client.get("/neurons/L01N0002?view=full", headers=HTML)
    assert full.status_code == 200 and "<noscript>" not in full.text
    assert 'href="/api/neurons/L01N0002?view=full&amp;records=50"' in full.text
    moved = client.get("/neurons/1:2?view=first", headers=HTML, follow_redirects=False)
    assert moved.status_code == 308
    assert moved.headers["location"] == "/neurons/L01N0002?view=first"
    assert client.get("/neurons/L01N0002?view=bad", headers=HTML).status_code in (400, 422)
    missing = client.get("/neurons/L09N0001", headers=HTML)
    assert missing.status_code == 404 and "L09N0001" in missing.text
    assert client.head("/neurons/L01N0002").status_code == 405
    assert client.post("/neurons/L01N0002").status_code == 405


def test_free_text_is_escaped_and_every_section_drawn(client):
    """neuron_main on a page with every optional section, its texts full of markup."""
    n = msgspec.json.decode(client.get("/api/neurons/L01N0002?view=full").content)
    from neuronatlas.read.views import NeuronPage

    n = msgspec.convert(n, NeuronPage)
    nasty = "a <x-evil>\"q\" & 's'"
    first = n.explanations[0]
    n = msgspec.structs.replace(
        n,
        source=nasty,
        explanations=[
            msgspec.structs.replace(
                first, text=nasty, scores=[ExplanationScore(nasty, nasty, 0.25)]
            )
        ],
        n2g=N2GSummary({"f1": 0.5, "recall": None}, nasty, True),
        similar=Similar(
            [SearchHit("L00N0001", 0, 1, nasty, None, 0.75, similarity_measure=nasty)], []
        ),
        histogram=Histogram([0.0, 1.0], [2]),
        stale={"map": f"{nasty}: run `neuronatlas map`"},
    )
    for live in (LiveStatus(nasty, False, None), LiveStatus(None, False, nasty)):
        html = neuron_main(
            n,
            full=True,
            page_size=50,
            max_text=2000,
            live=live,
            steer_limits=steer_api.LIMITS,
            trace_limits=trace_api.LIMITS,
        )
        assert "<x-evil>" not in html and "&lt;x-evil&gt;&#34;q&#34; &amp; &#39;s&#39;" in html
        assert "<b>0.500</b><span>F1</span>" in html and "<span>recall</span>" not in html
        assert '<span class="sim" title="a &lt;x-evil&gt;' in html and ">0.75</span>" in html
        assert "<code>neuronatlas map</code>" in html and "<svg" in html
        assert ("live-form" in html) == (live.error is None)
        # every tag that opens a section closes it
        assert len(re.findall("<section", html)) == len(re.findall("</section>", html)) == 8
