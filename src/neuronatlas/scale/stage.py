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

from neuronatlas.n2g.stage import STAGE as N2G
from neuronatlas.n2g.stage import N2GStageSettings, build_chosen
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


@dataclass
class RayN2GSettings(N2GStageSettings):
    """The chosen neurons' N2G settings plus where the Ray run goes (`n2g --engine ray`)."""

    ray_address: str | None = None
    """Join this cluster; None starts a local Ray."""
    workers: int | None = None
    """Actors (None: one per free CPU)."""
    quiet: bool = False
    """Do not forward the workers' output to this process (--silent)."""


def run_n2g_on_ray(db: Path, settings: RayN2GSettings, progress: Progress) -> Report:
    """The N2G stage for the chosen neurons, their graphs built by a Ray actor pool."""
    from neuronatlas.errors import BadInput
    from neuronatlas.scale import engine

    if not settings.chosen:
        raise BadInput("say which neurons: --neurons ID,ID,..., --layer L or --all")
    ray = engine()
    options = ray.RayOptions(
        address=settings.ray_address, workers=settings.workers, quiet=settings.quiet
    )
    return build_chosen(partial(ray.n2g_on_ray, options=options), db, settings, progress)


N2G_ON_RAY: Stage[RayN2GSettings] = Stage(
    name=N2G.name,
    settings=RayN2GSettings,
    run=run_n2g_on_ray,
    writes=N2G.writes,
    command=N2G.command,
    needs=N2G.needs,
    weight=N2G.weight,
    in_build=lambda build: False,  # a build runs in one process
    summary=N2G.summary,
)
