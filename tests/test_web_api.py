"""The explorer's JSON API and pages, through FastAPI's test client, on a small atlas."""

from __future__ import annotations

import re
import sqlite3

import pytest
from fastapi.testclient import TestClient

from neuronatlas.errors import QueryTimeout
from neuronatlas.read import stages
from neuronatlas.store import browse, open_reader
from neuronatlas.store.embed import ClusterLabel, MapPoint
from neuronatlas.web import create_app
from synthetic import WORDS

HTML = {"accept": "text/html"}


@pytest.fixture(scope="module")
def atlas_path(synthetic_atlas):
    return synthetic_atlas("web", layers=2, per_layer=8, n_top=5, n_random=4, length=12)


@pytest.fixture(scope="module")
def client(atlas_path):
    with TestClient(create_app(atlas_path)) as c:
        yield c


def error_of(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    return body["error"]["message"]


def test_healthz_reports_size_and_stages(client):
    body = client.get("/healthz").json()
    assert body["ok"] is True
    assert (body["neurons"], body["layers"], body["explanations"]) == (16, 2, 32)
    assert body["stages"] == ["import"]
    assert body["live_model"]["loaded"] is False


def test_neuron_has_explanations_records_stats_and_nav(client):
    body = client.get("/api/neurons/L01N0002?view=full").json()
    word = WORDS[(1 * 7 + 2) % len(WORDS)]
    assert body["id"] == "L01N0002" and (body["layer"], body["neuron"]) == (1, 2)
    assert body["explanations"][0]["text"] == f'the word "{word}"'
    assert [len(body["records"][c]) for c in ("top", "random")] == [5, 4]
    assert body["record_counts"] == {"top": 5, "random": 4} and body["truncated"] is False
    top = body["records"]["top"][0]
    assert top["tokens"][top["peak_index"]] == " " + word
    assert sum(body["histogram"]["counts"]) == 9 * 12
    assert body["nav"] == {"prev": "L01N0001", "next": "L01N0003"}
    assert "n2g" in body["unavailable"] or body["n2g"] is not None


def test_records_cap_sets_truncated(client):
    body = client.get("/api/neurons/L00N0000?records=2&view=full").json()
    assert len(body["records"]["top"]) == 2 and body["truncated"] is True
    assert sum(body["histogram"]["counts"]) == 9 * 12  # every stored value, not only shown
    error_of(client.get("/api/neurons/L00N0000?records=51"), 422, "invalid")
    error_of(client.get("/api/neurons/L00N0000?view=all"), 422, "invalid")


def test_first_view_leaves_out_what_its_links_serve(client):
    """The default answer carries the top records only; following `more` gives exactly
    the rest of the full view: the histogram, similar neurons, the other categories."""
    first = client.get("/api/neurons/L01N0002?records=3").json()
    full = client.get("/api/neurons/L01N0002?view=full").json()
    assert list(first["records"]) == ["top"] and len(first["records"]["top"]) == 3
    assert first["records"]["top"] == full["records"]["top"][:3]
    assert first["record_counts"] == full["record_counts"] and first["truncated"] is True
    assert first["histogram"] is None and first["similar"] is None
    for key in ("id", "stats", "explanations", "nav", "n2g"):
        assert first[key] == full[key], key
    assert set(first["more"]) == {"histogram", "similar", "records.top", "records.random"}
    assert client.get(first["more"]["histogram"]).json() == full["histogram"]
    rest = client.get(first["more"]["records.random"]).json()
    assert (rest["category"], rest["offset"], rest["total"]) == ("random", 0, 4)
    assert rest["records"] == full["records"]["random"]
    tail = client.get(first["more"]["records.top"]).json()  # the top records not yet sent
    assert tail["offset"] == 3 and tail["records"] == full["records"]["top"][3:]
    assert full["more"] == {}
    default = client.get("/api/neurons/L01N0002").json()
    assert len(default["records"]["top"]) == 5 and "records.top" not in default["more"]


def test_records_endpoint_pages_and_names_stored_categories(client):
    whole = client.get("/api/neurons/L00N0000/records?category=top&limit=50").json()
    assert whole["total"] == 5 and len(whole["records"]) == 5
    page = client.get("/api/neurons/L00N0000/records?category=top&offset=3&limit=1").json()
    assert page["records"] == whole["records"][3:4]
    past = client.get("/api/neurons/L00N0000/records?category=top&offset=9").json()
    assert past["records"] == [] and past["total"] == 5
    missing = client.get("/api/neurons/L00N0000/records?category=quantile_7")
    msg = error_of(missing, 404, "not_found")
    assert "quantile_7" in msg and "random, top" in msg
    error_of(client.get("/api/neurons/L00N0000/records?category=a%20b"), 422, "invalid")
    error_of(client.get("/api/neurons/L00N0099/histogram"), 404, "not_found")


def test_short_ids_are_accepted(client):
    assert client.get("/api/neurons/0:5").json()["id"] == "L00N0005"
    assert client.get("/api/neurons/L1N3").json()["id"] == "L01N0003"


@pytest.mark.parametrize("bad", ["bad", "L", "L5N", "x:1", "L05N0123abc"])
def test_bad_ids_are_400(client, bad):
    assert "not a neuron id" in error_of(client.get(f"/api/neurons/{bad}"), 400, "bad_id")


def test_unknown_neurons_are_404(client):
    assert "L09N0001" in error_of(client.get("/api/neurons/L09N0001"), 404, "not_found")
    error_of(client.get("/api/neurons/L00N0099/next"), 404, "not_found")


@pytest.mark.parametrize(
    "query", ["q=dog&k=0", "q=dog&k=101", "q=&k=5", "k=5", "q=dog&mode=magic", "q=" + "x" * 501]
)
def test_search_parameters_are_bounded(client, query):
    error_of(client.get("/api/search?" + query), 422, "invalid")


def test_substring_search_finds_the_neuron(client):
    body = client.get("/api/search?q=river&mode=substring&k=5").json()
    assert body["mode"] == "substring"
    ids = [r["id"] for r in body["results"]]
    assert ids and all(
        set(r) >= {"id", "layer", "neuron", "explanation", "score", "similarity"}
        for r in body["results"]
    )
    for r in body["results"]:
        assert "river" in r["explanation"]
    assert len(ids) == len(set(ids))


def test_a_missing_stage_is_409_with_the_command(client, monkeypatch):
    monkeypatch.setattr(stages, "lookup", lambda feature: None)
    msg = error_of(client.get("/api/tokens?q=dog"), 409, "not_built")
    assert "token" in msg and "missing" in msg
    error_of(client.get("/api/neurons/L00N0001/graph"), 409, "not_built")
    error_of(client.get("/api/search?q=dog&mode=semantic"), 409, "not_built")


def test_token_search_before_the_token_index_is_409(client):
    assert stages.lookup("token_index") is not None, "the search stage must be installed"
    msg = error_of(client.get("/api/tokens?q=dog"), 409, "not_built")
    assert "neuronatlas index" in msg


def test_navigation_wraps_around(client):
    assert client.get("/api/neurons/L01N0007/next").json() == {"id": "L00N0000"}
    assert client.get("/api/neurons/L00N0000/prev").json() == {"id": "L01N0007"}
    ids = {client.get("/api/random").json()["id"] for _ in range(30)}
    assert len(ids) > 3 and all(re.fullmatch(r"L0[01]N000[0-7]", i) for i in ids)
    r = client.get("/neurons/L00N0003/next", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/neurons/L00N0004"


def test_map_without_embedding_stage_is_the_layer_grid(client, monkeypatch):
    monkeypatch.setattr(stages, "lookup", lambda feature: None)
    client.app.state.map_cache.clear()
    body = client.get("/api/map").json()
    client.app.state.map_cache.clear()
    assert body["built"] is False and "neuronatlas map" in body["message"]
    cols = body["columns"]
    assert body["count"] == 16 and all(len(v) == 16 for v in cols.values())
    assert cols["x"] == cols["neuron"] and cols["y"] == cols["layer"]
    assert cols["explanation"][0].startswith("the word")


def _fake_stage(feature):
    """Test doubles for the embed/n2g stages' read functions (their own tests cover them)."""

    def map_points(conn):
        return [MapPoint(f"L00N000{i}", 0, i, i * 0.5, -i, i % 2, f"e{i}", None) for i in range(3)]

    def cluster_labels(conn):
        return [ClusterLabel(0, "animals", 2, 0.0, 0.0, ["cat"])]

    def neuron_graph(conn, nid, svg=True):
        if nid != "L00N0001":
            return None
        return {
            "neuron_id": nid,
            "metrics": {"f1": 0.8, "baseline_token_f1": 0.5, "precision": 0.9, "recall": 0.7},
            "explanation": "cat",
            "graph": {"nodes": [], "edges": [], "truncated": False},
            "dot": "digraph {}",
            "svg": "<svg xmlns='http://www.w3.org/2000/svg'><text>cat</text></svg>"
            if svg
            else None,
            "settings": {},
            "mask_token": None,
            "stats": {},
            "a_max": 1.0,
            "model": None,
        }

    def by_embedding(conn, nid, k):
        hit = {"id": "L01N0001", "layer": 1, "neuron": 1, "explanation": "x", "score": None}
        return [{**hit, "similarity": 0.9}]

    def graph_summary(conn, nid):
        graph = neuron_graph(conn, nid)
        return None if graph is None else {k: graph[k] for k in ("metrics", "explanation")}

    return {
        "map": map_points,
        "clusters": cluster_labels,
        "graph": neuron_graph,
        "graph_summary": graph_summary,
        "similar_embedding": by_embedding,
        "similar_tokens": lambda conn, nid, k: [],
    }.get(feature)


def test_map_columns_and_sections_from_stage_functions(client, monkeypatch):
    monkeypatch.setattr(stages, "lookup", _fake_stage)
    client.app.state.map_cache.clear()
    body = client.get("/api/map").json()
    client.app.state.map_cache.clear()
    assert body["built"] is True and body["count"] == 3
    assert body["columns"]["x"] == [0.0, 0.5, 1.0] and body["columns"]["cluster"] == [0, 1, 0]
    assert body["clusters"][0]["label"] == "animals"
    graph = client.get("/api/neurons/L00N0001/graph").json()
    assert graph["metrics"]["f1"] == 0.8
    svg = client.get("/api/neurons/L00N0001/graph.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and "<text>cat" in svg.text
    assert "no N2G graph" in error_of(client.get("/api/neurons/L00N0002/graph"), 409, "not_built")
    detail = client.get("/api/neurons/L00N0001").json()
    assert detail["n2g"]["metrics"]["baseline_token_f1"] == 0.5
    similar = client.get(detail["more"]["similar"]).json()
    assert similar["by_embedding"][0]["id"] == "L01N0001"
    assert client.get("/api/neurons/L00N0001?view=full").json()["similar"] == similar
    page = client.get("/neurons/L00N0001", headers=HTML).text
    assert "0.800" in page and "0.500" in page and "/api/neurons/L00N0001/graph.svg" in page
    assert 'data-src="/api/neurons/L00N0001/similar"' in page  # fetched by the page's script
    full = client.get("/neurons/L00N0001?view=full", headers=HTML).text
    assert 'href="/neurons/L01N0001"' in full


def test_activate_without_a_model_is_503(client):
    msg = error_of(client.post("/api/activate", json={"text": "the cat"}), 503, "model_unavailable")
    assert "--model" in msg


@pytest.mark.parametrize(
    "body", [{"text": "x" * 2001}, {"text": ""}, {}, {"text": "a", "k": 0}, {"text": "a", "k": 101}]
)
def test_activate_input_is_bounded(client, body):
    error_of(client.post("/api/activate", json=body), 422, "invalid")


def test_openapi_and_local_docs(client):
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in [
        "/healthz",
        "/api/neurons/{neuron_id}",
        "/api/search",
        "/api/tokens",
        "/api/activate",
        "/api/neurons/{neuron_id}/graph",
        "/api/map",
    ]:
        assert path in spec["paths"], path
    docs = client.get("/docs").text
    assert "/vendor/swagger/swagger-ui-bundle.js" in docs
    assert client.get("/vendor/swagger/swagger-ui-bundle.js").status_code == 200


@pytest.mark.parametrize("url", ["/", "/neurons/L00N0001", "/search?q=river", "/docs"])
def test_pages_load_nothing_from_other_hosts(client, url):
    page = client.get(url, headers=HTML).text
    refs = re.findall(r'(?:src|href)=["\']([^"\']+)', page)
    assert refs and all(not r.startswith(("http:", "https:", "//")) for r in refs), refs


def test_pages_render_with_json_twins(client):
    home = client.get("/", headers=HTML).text
    assert '<script src="/static/map.js">' in home and 'href="/api/map"' in home
    assert client.get("/vendor/plotly.min.js").status_code == 200
    page = client.get("/neurons/L00N0001", headers=HTML).text
    # the first view: five top records as text with their values for the script to colour,
    # the rest named for the script to fetch
    assert len(re.findall(r'<div class="na-heat" data-f(?:32|64)="', page)) == 5
    assert page.count("<span>") + page.count('<span class="na-peak">') >= 5 * 12
    assert 'class="na-tok' not in page
    assert 'href="/api/neurons/L00N0001"' in page and 'rel="next"' in page
    assert 'data-src="/api/neurons/L00N0001/histogram"' in page and "<noscript>" in page
    assert 'href="/neurons/L00N0001?view=full"' in page
    full = client.get("/neurons/L00N0001?view=full", headers=HTML).text
    assert full.count('class="na-tok') == 9 * 12 and 'class="hist"' in full
    assert 'href="/api/neurons/L00N0001?view=full&amp;records=50"' in full
    assert "<noscript>" not in full and 'data-src="/api/neurons/L00N0001/histogram' not in full
    r = client.get("/neurons/0:1?view=full", headers=HTML, follow_redirects=False)
    assert r.headers["location"] == "/neurons/L00N0001?view=full"
    r = client.get("/neurons/0:1", headers=HTML, follow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == "/neurons/L00N0001"
    search = client.get("/search?q=river&mode=substring", headers=HTML).text
    assert 'class="rid" href="/neurons/' in search


def test_html_errors_are_pages_with_the_status(client):
    r = client.get("/neurons/L09N0009", headers=HTML)
    assert r.status_code == 404 and "<html" in r.text and "not in this atlas" in r.text
    r = client.get("/neurons/nope", headers=HTML)
    assert r.status_code == 400 and "not a neuron id" in r.text


def test_reads_are_read_only_and_time_limited(atlas_path):
    conn = open_reader(atlas_path)
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("DELETE FROM neuron_info")
    slow = (
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) "
        "SELECT count(*) FROM (SELECT i FROM c LIMIT 100000000)"
    )
    with pytest.raises(QueryTimeout), browse.time_limit(conn, 0.05) as c:
        c.execute(slow).fetchone()
    assert conn.execute("SELECT count(*) FROM neuron_info").fetchone()[0] == 16


def test_a_slow_request_is_503_not_a_hang(atlas_path, monkeypatch):
    app = create_app(atlas_path, time_limit_s=1e-6)
    monkeypatch.setattr(browse, "_PROGRESS_STEPS", 1)  # check the clock on every step
    with TestClient(app) as c:
        r = c.get("/api/neurons/L00N0001")
    assert "longer than" in error_of(r, 503, "timeout")
