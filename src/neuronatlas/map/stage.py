"""The neuron map as a `Stage`: layout, two-level clusters, labels and coherence.

A map made after the last embed run, with the same settings, is current: the stage is
skipped without opening the vectors. Otherwise `build_map` places changed neurons on the
stored map or lays everything out anew.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from neuronatlas.map.neuron_map import MapConfig, MapResult
from neuronatlas.stage import Progress, Report, Stage, last_run


@dataclass(frozen=True)
class MapSettings(MapConfig):
    """The map's settings, and whether to lay out and cluster every neuron anew."""

    refit: bool = False


def _current(db: Path, config: MapConfig) -> MapResult | None:
    """The stored map when no embed run came after it and its settings are these."""
    from neuronatlas.embed.stage import STAGE as EMBED
    from neuronatlas.store import open_reader
    from neuronatlas.store.embed import map_info

    conn = open_reader(db)
    try:
        last_map, last_embed = last_run(conn, STAGE), last_run(conn, EMBED)
        info = map_info(conn) if last_map else None
    finally:
        conn.close()
    if (
        info is None
        or last_map is None
        or last_map.status != "done"
        or (last_embed is not None and last_embed.id > last_map.id)
        or any(last_map.config.get(f.name) != getattr(config, f.name) for f in fields(MapConfig))
    ):
        return None
    return MapResult(info.n_points, info.n_clusters, 0, info.embedder, action="current")


def run(db: Path, settings: MapSettings, progress: Progress) -> Report:
    """Bring the map up to date with the embedded explanations (skipped when it is)."""
    from neuronatlas.map.neuron_map import build_map

    config = MapConfig(**{f.name: getattr(settings, f.name) for f in fields(MapConfig)})
    current = None if settings.refit else _current(db, config)
    if current is not None:
        return Report(STAGE.name, True, "map is up to date", result=current)
    progress(1, 10, "UMAP")
    res = build_map(db, config, refit=settings.refit)
    return Report(
        STAGE.name,
        res.action == "current",
        f"{res.points:,} points, {res.coarse} coarse clusters of {res.clusters} fine",
        result=res,
    )


STAGE: Stage[MapSettings] = Stage(
    name="map",
    settings=MapSettings,
    run=run,
    writes=("map_points",),
    command="neuronatlas map --db ATLAS",
    needs=("embed",),
    weight=0.08,
    summary="the neuron map: 2-D layout, cluster hierarchy, labels, coherence",
)
