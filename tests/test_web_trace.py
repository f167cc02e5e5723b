"""The trace in the explorer: `POST /api/trace`, `POST /api/trace/neuronpedia` and the
`/trace` page, over a real atlas of the planted-circuit GPT-2 served with its model (on
" cat", L00N0011 feeds L01N0013, which makes " France" the next token; the fixture
`circuit_atlas_path` in tests/conftest.py)."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlparse

import jsonschema
import msgspec
import pytest
from fastapi.testclient import TestClient

from neuronatlas.models import load_model
from neuronatlas.trace import TraceGraph, schema, trace
from neuronatlas.web import create_app

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DETECTOR, WRITER = "L00N0011", "L01N0013"
TEXT = "I saw a cat"
CLUSTER = "cat → France"


@pytest.fixture(scope="module")
def client(circuit_atlas_path):
    with TestClient(create_app(circuit_atlas_path)) as c:
        yield c


def _graph(response) -> TraceGraph:
    assert response.status_code == 200, response.text
    return msgspec.json.decode(response.content, type=TraceGraph)


def _declared(client, path: str) -> dict:
    op = client.get("/openapi.json").json()["paths"][path]["post"]
    return op["responses"]["200"]["content"]["application/json"]["schema"]


def test_api_trace_is_the_library_trace_annotated(client, circuit_atlas_path):
    got = _graph(client.post("/api/trace", json={"text": TEXT, "target": " France"}))
    model = load_model(str(circuit_atlas_path.parent / "model"))
    want = trace(model, TEXT, target=" France", prepend_bos=True, max_nodes=200)
    assert [n.node_id for n in got.nodes] == [n.node_id for n in want.nodes]
    assert [n.value for n in got.nodes] == pytest.approx([n.value for n in want.nodes])
    assert [(k.source, k.target) for k in got.links] == [(k.source, k.target) for k in want.links]
    assert [n.neuron_id for n in got.neurons()] == [WRITER, DETECTOR]  # no distractor
    notes = [(n.token, n.explanation, n.cluster) for n in got.neurons()]
    assert notes == [(" cat", "says France next", CLUSTER), (" cat", "the word cat", CLUSTER)]
    assert got.supernodes == []  # no grouping asked for
    assert got.tokens[0] == "<|endoftext|>" and got.target == " France"


def test_alpha_reaches_the_graph(client):
    g = _graph(client.post("/api/trace", json={"text": TEXT, "alpha": 0.25}))
    assert g.settings.gated_alpha == 0.25
    assert _graph(client.post("/api/trace", json={"text": TEXT})).settings.gated_alpha == 1.0


def test_without_a_target_the_likeliest_tokens_are_explained(client):
    g = _graph(client.post("/api/trace", json={"text": TEXT}))
    logits = [n for n in g.nodes if n.kind == "logit"]
    assert g.target == " France" and len(logits) == len(g.targets) >= 2
    probs = [n.probability for n in logits]
    assert probs == sorted(probs, reverse=True) and probs[0] > 0.2
    assert [n.token for n in logits if n.is_target] == [" France"]


def test_cluster_supernodes_group_the_circuit(client):
    g = _graph(client.post("/api/trace", json={"text": TEXT, "group": "cluster"}))
    (group,) = g.supernodes  # the distractors' cluster has no node in the graph
    circuit = sorted(n.node_id for n in g.nodes if n.neuron_id in (DETECTOR, WRITER))
    assert group[0] == CLUSTER and sorted(group[1:]) == circuit and len(circuit) == 2


def test_responses_follow_their_declared_schemas(client):
    body = {"text": TEXT, "group": "cluster"}
    r = client.post("/api/trace", json=body)
    jsonschema.validate(r.json(), _declared(client, "/api/trace"))
    doc = client.post("/api/trace/neuronpedia", json=body)
    assert doc.status_code == 200, doc.text
    jsonschema.validate(doc.json(), _declared(client, "/api/trace/neuronpedia"))
    jsonschema.validate(doc.json(), schema())
    assert [n["node_id"] for n in doc.json()["nodes"]] == [n["node_id"] for n in r.json()["nodes"]]
    assert doc.json()["metadata"]["prompt"] == TEXT


def test_neuronpedia_json_of_a_traced_request_comes_from_the_cache(circuit_atlas_path):
    """The page's download after a trace answers without running the model again."""
    with TestClient(create_app(circuit_atlas_path)) as c:
        body = {"text": "a cat", "target": " France"}
        first = _graph(c.post("/api/trace", json=body))
        calls = []
        live = c.app.state.live
        real = live.trace
        live.trace = lambda *a, **k: calls.append(a) or real(*a, **k)
        doc = c.post("/api/trace/neuronpedia", json=body).json()
        assert calls == [] and len(doc["nodes"]) == len(first.nodes)
        c.post("/api/trace/neuronpedia", json={**body, "max_nodes": 10})  # another request
        assert len(calls) == 1


@pytest.mark.parametrize(
    ("payload", "status", "code", "says"),
    [
        ({"text": ""}, 422, "invalid", "text"),
        ({"text": "   "}, 422, "invalid", "text"),
        ({"text": "a" * 1001}, 422, "invalid", "at most 1000"),
        ({"text": "a " * 200}, 400, "bad_input", "at most 128"),
        ({"text": TEXT, "target": "France and more"}, 400, "bad_input", "not one"),
        ({"text": TEXT, "target": ""}, 422, "invalid", "target"),
        ({"text": TEXT, "max_nodes": 1001}, 422, "invalid", "max_nodes"),
        ({"text": TEXT, "max_nodes": "5"}, 422, "invalid", "max_nodes"),
        ({"text": TEXT, "node_threshold": 0}, 422, "invalid", "node_threshold"),
        ({"text": TEXT, "edge_threshold": 1.5}, 422, "invalid", "edge_threshold"),
        ({"text": TEXT, "group": "layer"}, 422, "invalid", "group"),
        ({"text": TEXT, "alpha": 1.5}, 422, "invalid", "alpha"),
        ({"text": TEXT, "alpha": "0.5"}, 422, "invalid", "alpha"),
        ({"target": " France"}, 422, "invalid", "text"),
    ],
)
def test_bad_requests(client, payload, status, code, says):
    for path in ("/api/trace", "/api/trace/neuronpedia"):
        r = client.post(path, json=payload)
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert error["code"] == code and says in error["message"], error


def test_without_a_model_is_503_and_the_page_says_why(circuit_atlas_path, tmp_path):
    app = create_app(circuit_atlas_path, model=str(tmp_path / "no-such-model"))
    with TestClient(app) as c:
        r = c.post("/api/trace", json={"text": TEXT})
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_unavailable"
        page = c.get("/trace?text=hi", headers={"accept": "text/html"}).text
    assert 'id="trace-unavailable"' in page and "--model SPEC" in page
    assert 'data-run="0"' in page


def test_page_is_prefilled_from_the_query_and_says_what_it_needs(client):
    page = client.get(
        "/trace", params={"text": "a <cat>", "target": " France", "focus": DETECTOR}
    ).text
    assert '<a href="/trace">Trace</a>' in page  # the header's nav
    assert "a &lt;cat&gt;</textarea>" in page and 'data-run="1"' in page
    assert '<option value=" France" selected>' in page and f'data-focus="{DETECTOR}"' in page
    assert "<noscript>" in page and "/api/trace" in page and "/static/trace.js" in page
    assert client.get("/static/trace.js").status_code == 200
    empty = client.get("/trace").text
    assert 'data-run="0"' in empty and "</textarea>" in empty


def test_neuron_page_links_a_trace_of_its_top_excerpt(client):
    page = client.get(f"/neurons/{DETECTOR}", headers={"accept": "text/html"}).text
    (href,) = re.findall(r'id="trace-link" href="([^"]+)"', page)
    query = parse_qs(urlparse(unescape(href)).query)
    assert query["focus"] == [DETECTOR]
    record = client.get(f"/api/neurons/{DETECTOR}/records?category=top&limit=1").json()
    (top,) = record["records"]
    assert query["text"] == ["".join(top["tokens"][: top["peak_index"] + 1])]
    assert query["text"][0].endswith(" cat")  # the detector's peak is the last token
