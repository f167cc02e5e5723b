"""Scaling out: the same scrape and N2G on a Ray cluster.

`shards` (pre-tokenised corpus shards, manifest, job id, state paths) and `merge` (tree merge
of shard states) need no Ray; every line of Ray code is in `ray_engine`, imported only through
`engine()`, so neuronatlas stays importable without the optional `ray` extra.
"""

from __future__ import annotations

from types import ModuleType

from neuronatlas.errors import BadInput


def engine() -> ModuleType:
    """The Ray engine module (`scrape_on_ray`, `n2g_on_ray`, `RayOptions`); BadInput with the
    install command when Ray is missing."""
    try:
        from neuronatlas.scale import ray_engine
    except ImportError as exc:
        if getattr(exc, "name", "") and not str(exc.name).startswith("ray"):
            raise
        raise BadInput(
            f"--engine ray needs Ray: pip install 'neuronatlas[ray]' (import failed: {exc})"
        ) from exc
    return ray_engine
