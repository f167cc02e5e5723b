"""The stages that run on a Ray cluster: the scrape (and N2G) of their own packages, with the
same name, tables and skip rules, but their work fanned out by `neuronatlas.scale`.

They are not in `neuronatlas.stages.STAGES` (a build runs in one process): the commands pick
them for `--engine ray`. They live here because the Ray code imports the stages' packages,
not the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from neuronatlas.scrape.stage import STAGE as SCRAPE
from neuronatlas.scrape.stage import ScrapeStageSettings, scrape_with
from neuronatlas.stage import Progress, Report, Stage


@dataclass
class RayScrapeSettings(ScrapeStageSettings):
    """The scrape's settings plus where its Ray run goes (`scrape --engine ray`)."""

    ray_address: str | None = None
    """Join this cluster (auto, head:6379); None starts a local Ray."""
    shards: int | None = None
    """Cut the corpus into this many shards (None: ≈2^20 tokens each, at least 8)."""
    work_dir: str | None = None
    """Shards and per-shard states, seen by every node (None: DB.ray/ beside the atlas)."""
    quiet: bool = False
    """Do not forward the workers' output to this process (--silent, --json)."""


def run_scrape_on_ray(db: Path, settings: RayScrapeSettings, progress: Progress) -> Report:
    """The scrape stage with its shards scraped by Ray actors and merged into `db`."""
    from neuronatlas.scale import engine

    ray = engine()
    options = ray.RayOptions(
        address=settings.ray_address,
        shards=settings.shards,
        quiet=settings.quiet,
        work_dir=Path(settings.work_dir) if settings.work_dir else None,
    )
    return scrape_with(partial(ray.scrape_on_ray, options=options), db, settings, progress)


SCRAPE_ON_RAY: Stage[RayScrapeSettings] = Stage(
    name=SCRAPE.name,
    settings=RayScrapeSettings,
    run=run_scrape_on_ray,
    writes=SCRAPE.writes,
    command=SCRAPE.command,
    weight=SCRAPE.weight,
    in_build=lambda build: False,  # a build runs in one process
    summary=SCRAPE.summary,
)
