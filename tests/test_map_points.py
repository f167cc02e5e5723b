"""`/api/map/points` (the map as typed arrays) and `/api/map/clusters` (its labels first) say
what `/api/map` says, for a built map and for the layer grid."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from map_fixtures import direct_map_atlas
from neuronatlas.read.mapbin import NO_CLUSTER, decode_points
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
    clusters = spec["paths"]["/api/map/clusters"]["get"]["responses"]["200"]["content"]
    assert "MapClusters" in str(clusters)
