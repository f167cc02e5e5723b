"""`/api/map/points` (the map as typed arrays), `/api/map/points/compact` (the page's
quantised, tiled rows) and `/api/map/clusters` (its labels first) say what `/api/map` says,
for a built map and for the layer grid."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from map_fixtures import direct_map_atlas
from neuronatlas.read.mapbin import NO_CLUSTER, decode_compact, decode_points
from neuronatlas.web import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    db = direct_map_atlas(tmp_path_factory.mktemp("points") / "atlas.db", 3, 70, 12, 4)
    with TestClient(create_app(db)) as c:
        yield c


def test_points_are_the_json_columns_as_typed_arrays(client):
    body = client.get("/api/map").json()
    r = client.get("/api/map/points")
    assert r.headers["content-type"] == "application/octet-stream"
    pts = decode_points(r.content)
    cols = body["columns"]
    assert pts.built and not pts.truncated and len(pts.x) == body["count"] == 210
    np.testing.assert_array_equal(pts.x, np.asarray(cols["x"], dtype=np.float32))
    np.testing.assert_array_equal(pts.y, np.asarray(cols["y"], dtype=np.float32))
    assert pts.layer.tolist() == cols["layer"] and pts.neuron.tolist() == cols["neuron"]
    assert pts.cluster.tolist() == cols["cluster"] and pts.coarse.tolist() == cols["coarse"]
    assert len(set(pts.coarse.tolist())) == 4


def test_clusters_first_are_the_maps_clusters(client):
    body = client.get("/api/map").json()
    first = client.get("/api/map/clusters").json()
    assert {k: first[k] for k in first} == {k: body[k] for k in first}
    assert first["built"] and first["count"] == 210 and len(first["clusters"]) == 12
    assert all(" · " in c["label"] for c in first["clusters"])


def test_the_grid_before_a_map(synthetic_atlas):
    with TestClient(create_app(synthetic_atlas("grid"))) as c:
        pts = decode_points(c.get("/api/map/points").content)
        first = c.get("/api/map/clusters").json()
    assert not pts.built and first["built"] is False and "neuronatlas map" in first["message"]
    assert first["count"] == len(pts.x) and first["clusters"] == []
    assert set(pts.cluster.tolist()) == {NO_CLUSTER} == set(pts.coarse.tolist())
    np.testing.assert_array_equal(pts.x, pts.neuron.astype(np.float32))


def test_a_buffer_that_is_not_a_map_is_refused(client):
    buf = client.get("/api/map/points").content
    with pytest.raises(ValueError, match="magic"):
        decode_points(b"X" + buf[1:])
    with pytest.raises(ValueError, match="210 points"):
        decode_points(buf[:-2])


def test_openapi_declares_the_binary_answer(client):
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/api/map/points"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["application/octet-stream"]
    compact = spec["paths"]["/api/map/points/compact"]["get"]["responses"]["200"]["content"]
    assert list(compact) == ["application/octet-stream"]
    clusters = spec["paths"]["/api/map/clusters"]["get"]["responses"]["200"]["content"]
    assert "MapClusters" in str(clusters)


def _by_id(pts) -> np.ndarray:
    return np.lexsort((pts.neuron, pts.layer))


def test_compact_points_are_the_json_columns_quantised(client):
    body = client.get("/api/map").json()
    cols = body["columns"]
    r = client.get("/api/map/points/compact", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-encoding"] == "gzip" and r.num_bytes_downloaded < len(r.content)
    got = decode_compact(r.content)
    pts = got.points
    assert pts.built and not pts.truncated and len(pts.x) == 210
    assert len(r.content) == 40 + 4 * (got.grid**2 + 1) + 12 * 210
    order = _by_id(pts)  # the buffer's order is the tiles'; by (layer, neuron) it is the JSON's
    assert pts.layer[order].tolist() == cols["layer"]
    assert pts.neuron[order].tolist() == cols["neuron"]
    assert pts.cluster[order].tolist() == cols["cluster"]
    assert pts.coarse[order].tolist() == cols["coarse"]
    x, y = np.asarray(cols["x"]), np.asarray(cols["y"])
    x0, x1, y0, y1 = got.box
    assert (x0, x1) == pytest.approx((x.min(), x.max())) and y0 == pytest.approx(y.min())
    # quantised to 1/65,535 of the box: within half a step
    assert np.abs(pts.x[order] - x).max() <= (x1 - x0) / 65535 * 0.51 + 1e-4
    assert np.abs(pts.y[order] - y).max() <= (y1 - y0) / 65535 * 0.51 + 1e-4
    plain = client.get("/api/map/points/compact", headers={"Accept-Encoding": "identity"})
    assert plain.headers["content-encoding"] == "identity" and plain.content == r.content


def test_compact_points_come_in_tiles(client):
    got = decode_compact(client.get("/api/map/points/compact").content)
    g, (x0, x1, y0, y1), starts = got.grid, got.box, got.tile_starts.astype(int)
    assert starts[0] == 0 and starts[-1] == 210 and np.all(np.diff(starts) >= 0)
    tile = np.repeat(np.arange(g * g), np.diff(starts))
    tx = np.minimum(((got.points.x - x0) / (x1 - x0) * g).astype(int), g - 1)
    ty = np.minimum(((got.points.y - y0) / (y1 - y0) * g).astype(int), g - 1)
    # the tile of each row holds its point (the box edges are shared by two tiles)
    assert np.all(np.abs(tile % g - tx) <= 1) and np.all(np.abs(tile // g - ty) <= 1)
    assert np.mean((tile % g == tx) & (tile // g == ty)) > 0.97
    assert len(set(tile.tolist())) > 10


def test_compact_points_of_the_grid_before_a_map(synthetic_atlas):
    with TestClient(create_app(synthetic_atlas("grid"))) as c:
        got = decode_compact(c.get("/api/map/points/compact").content)
        old = decode_points(c.get("/api/map/points").content)
    pts = got.points
    assert not pts.built and set(pts.cluster.tolist()) == {NO_CLUSTER} == set(pts.coarse.tolist())
    order = _by_id(pts)
    assert pts.layer[order].tolist() == old.layer.tolist()
    np.testing.assert_allclose(pts.x[order], old.x, atol=(got.box[1] - got.box[0]) / 65535)


def test_a_compact_buffer_that_is_not_a_map_is_refused(client):
    buf = client.get("/api/map/points/compact").content
    with pytest.raises(ValueError, match="magic"):
        decode_compact(b"X" + buf[1:])
    with pytest.raises(ValueError, match="210 points"):
        decode_compact(buf[:-12])


def test_the_server_prepares_the_map_before_anyone_asks(tmp_path):
    """At start a thread builds the clusters and the compact points (and their gzip), so the
    first visitor of a large map does not wait for every point to be read; what it built is
    what the route then serves."""
    import time

    db = direct_map_atlas(tmp_path / "atlas.db", 3, 70, 12, 4)
    app = create_app(db)
    with TestClient(app) as c:
        deadline = time.monotonic() + 30
        while len(app.state.map_cache) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        built = {what for what, _ in app.state.map_cache}
        assert built == {("clusters",), ("compact",), ("compact", "gzip")}
        raw = next(v for (what, _), v in app.state.map_cache.items() if what == ("compact",))
        got = c.get("/api/map/points/compact", headers={"accept-encoding": "identity"})
        assert got.status_code == 200 and got.content == raw
