"""The map surface: every neuron as a point and the map's clusters, for `/map`,
`/api/map`, `/api/map/clusters` and `/api/map/points` (binary, `read.mapbin`).

Before `neuronatlas map` ran, the points are a (layer, neuron) grid and the answer says so
with `built: false` and the commands that build the map.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from neuronatlas.read import stages
from neuronatlas.read.views import (
    Cluster,
    CoarseCluster,
    Coherence,
    MapClusters,
    MapColumns,
    MapData,
)
from neuronatlas.store import browse, reader
from neuronatlas.store import embed as store_embed

MAP_CAP = 2_000_000
MAP_TEXT_LIMIT = 60_000


def _cluster_levels(
    conn: sqlite3.Connection,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[int, int]]:
    """(fine clusters, each with its `parent` and `coherence`; coarse clusters; fine cluster
    -> coarse cluster). A map made before the hierarchy has fine clusters only."""
    parents: dict[int, store_embed.ClusterParent] = (
        stages.call_or_none("cluster_parents", conn) or {}
    )
    no_parent = {"parent": None, "coherence": None}
    fine = [
        msgspec.structs.asdict(c)
        | (msgspec.structs.asdict(parents[c.cluster]) if c.cluster in parents else no_parent)
        for c in stages.call_or_none("clusters", conn) or []
    ]
    coarse = [msgspec.structs.asdict(c) for c in stages.call_or_none("coarse_clusters", conn) or []]
    return fine, coarse, {c: p.parent for c, p in parents.items()}


NO_MAP_MESSAGE = (
    "The semantic map is not built for this atlas yet: neurons are laid "
    "out by layer (y) and index (x). Build it with "
    "`neuronatlas embed --db ATLAS` then `neuronatlas map --db ATLAS`."
)


def _coherence(conn: sqlite3.Connection) -> list[Coherence]:
    """The map's coherence rows (empty for a map made before coherence was measured)."""
    rows = stages.call_or_none("map_coherence", conn) or []
    return msgspec.convert(rows, list[Coherence], from_attributes=True)


def map_clusters(conn: sqlite3.Connection, limit: int = MAP_CAP) -> MapClusters:
    """The map's clusters and counts without reading its points: a few small reads, so the
    page can label the map while the points (`map_data`, `read.mapbin`) are on their way."""
    info = stages.call_or_none("map_info", conn)
    if info:
        clusters, coarse, _ = _cluster_levels(conn)
        count = int(info.n_points)
        return MapClusters(
            built=True,
            count=min(count, limit),
            truncated=count > limit,
            clusters=msgspec.convert(clusters, list[Cluster]),
            coarse=msgspec.convert(coarse, list[CoarseCluster]),
            coherence=_coherence(conn),
            message=None,
        )
    count = reader.neuron_count(conn)
    return MapClusters(
        False, min(count, limit), count > limit, [], [], [], stages.for_atlas(conn, NO_MAP_MESSAGE)
    )


def map_data(
    conn: sqlite3.Connection, with_text: bool | None = None, limit: int = MAP_CAP
) -> MapData:
    """Every neuron as a point, in compact columns (one array per field, not one object per
    point) so 307,200 points stay a few MB. Falls back to a (layer, neuron) grid before
    `neuronatlas map` ran, and says so with `built: false`. with_text: the explanations too
    (default: when the atlas has at most MAP_TEXT_LIMIT neurons)."""
    if with_text is None:
        with_text = reader.neuron_count(conn) <= MAP_TEXT_LIMIT
    points = stages.call_or_none("map", conn)
    if points:
        truncated = len(points) > limit
        points = points[:limit]
        clusters, coarse, parent = _cluster_levels(conn)
        cols = MapColumns(
            layer=[p.layer for p in points],
            neuron=[p.neuron for p in points],
            x=[round(float(p.x), 4) for p in points],
            y=[round(float(p.y), 4) for p in points],
            cluster=[p.cluster for p in points],
            coarse=[parent.get(p.cluster) for p in points],
            explanation=[(p.explanation or "")[:160] for p in points] if with_text else None,
        )
        return MapData(
            built=True,
            count=len(points),
            truncated=truncated,
            columns=cols,
            clusters=msgspec.convert(clusters, list[Cluster]),
            coarse=msgspec.convert(coarse, list[CoarseCluster]),
            coherence=_coherence(conn),
            message=None,
        )
    rows, truncated = browse.grid_points(conn, limit)
    cols = MapColumns(
        layer=[r[0] for r in rows],
        neuron=[r[1] for r in rows],
        x=[float(r[1]) for r in rows],
        y=[float(r[0]) for r in rows],
        cluster=[None] * len(rows),
        coarse=[None] * len(rows),
        explanation=[r[2][:160] for r in rows] if with_text else None,
    )
    return MapData(
        built=False,
        count=len(rows),
        truncated=truncated,
        columns=cols,
        clusters=[],
        coarse=[],
        coherence=[],
        message=stages.for_atlas(conn, NO_MAP_MESSAGE),
    )
