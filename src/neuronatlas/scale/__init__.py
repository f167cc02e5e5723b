"""Scaling out: the same scrape and N2G on a Ray cluster.

`shards` (pre-tokenised corpus shards, manifest, job id, state paths) and `merge` (tree merge
of shard states) need no Ray. The Ray code is one module per job, `ray_scrape` and `ray_n2g`,
over the actor pool they share (`ray_pool`); they are imported only through `engine()`, so
neuronatlas stays importable without the optional `ray` extra.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from neuronatlas.errors import BadInput

if TYPE_CHECKING:
    from neuronatlas.scale.ray_pool import RayOptions


class RayEngine(NamedTuple):
    """The Ray entry points, loaded together (`ray_scrape.scrape_on_ray`,
    `ray_n2g.n2g_on_ray`, `ray_pool.RayOptions`)."""

    scrape_on_ray: Callable[..., Any]
    n2g_on_ray: Callable[..., Any]
    RayOptions: type[RayOptions]


def engine() -> RayEngine:
    """The Ray entry points (`scrape_on_ray`, `n2g_on_ray`, `RayOptions`); BadInput with the
    install command when Ray is missing."""
    try:
        from neuronatlas.scale import ray_n2g, ray_pool, ray_scrape
    except ImportError as exc:
        if getattr(exc, "name", "") and not str(exc.name).startswith("ray"):
            raise
        raise BadInput(
            f"--engine ray needs Ray: pip install 'neuronatlas[ray]' (import failed: {exc})"
        ) from exc
    return RayEngine(ray_scrape.scrape_on_ray, ray_n2g.n2g_on_ray, ray_pool.RayOptions)
