"""What the Ray jobs share: the options, the session, and a pool of model-holding actors.

Every actor loads its model from a small spec in its constructor (never a pickled model) and is
started with `max_restarts=-1, max_task_retries=-1`: Ray restarts a killed actor and re-runs the
task it held, so each job must make a re-run harmless (the scrape writes whole state files
atomically; N2G's driver writes each graph once).

Import only when Ray is wanted (`neuronatlas.scale.engine()`): the rest of neuronatlas never
imports Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import ray

from neuronatlas.errors import BadInput

T = TypeVar("T")

LOCAL_RAY: dict[str, Any] = {
    "num_cpus": 2,
    "include_dashboard": False,
    "object_store_memory": 1 << 30,
}
"""How a local Ray instance is started when no address is given: capped, or Ray would reserve
30 % of the machine's memory for its object store."""


@dataclass
class RayOptions:
    """Where and how wide a Ray run goes (the CLI's --ray-address, --shards, --work-dir)."""

    address: str | None = None
    """An existing cluster ('auto', 'ray://head:10001', 'head:6379'); None = start a local one."""
    shards: int | None = None
    """Cut the corpus into (at most) this many shards; None = ≈2^20 tokens each, at least 8."""
    workers: int | None = None
    """Actors; None = as many as the cluster's CPUs (or GPUs) allow, at most one per shard."""
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    """GPUs per actor (1, or a fraction to pack several small models on one GPU); > 0 runs the
    model on cuda. None = 1 when the cluster has GPUs, else 0."""
    work_dir: Path | None = None
    """Shards and states; default `<db>.ray/` beside the atlas. On a cluster: a folder every
    node sees (shared file system)."""
    quiet: bool = False
    """Do not forward the workers' output to this process (for --json and --silent)."""

    def __post_init__(self) -> None:
        if self.shards is not None and self.shards < 1:
            raise BadInput("--shards must be ≥ 1")
        if self.workers is not None and self.workers < 1:
            raise BadInput("the number of Ray workers must be ≥ 1")
        if (self.gpus_per_worker or 0) < 0 or self.cpus_per_worker < 0:
            raise BadInput("CPUs and GPUs per worker must be ≥ 0")


@contextmanager
def ray_session(address: str | None, quiet: bool = False) -> Iterator[None]:
    """Use the Ray instance this process is connected to, else join `address`, else start a
    capped local instance; shut down only what was started here."""
    if ray.is_initialized():
        yield
        return
    try:
        if address:
            ray.init(address=address, log_to_driver=not quiet)
        else:
            ray.init(**LOCAL_RAY, log_to_driver=not quiet)
    except ConnectionError as exc:
        raise BadInput(
            f"--ray-address {address}: cannot connect ({exc}); start the head with "
            "`ray start --head` or omit --ray-address for a local instance"
        ) from exc
    try:
        yield
    finally:
        ray.shutdown()


def gpus_per_actor(options: RayOptions) -> float:
    """GPUs per actor: as asked, else one when the cluster has any."""
    if options.gpus_per_worker is not None:
        return options.gpus_per_worker
    return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def actor_device(options: RayOptions) -> str:
    """Where the actors run their model: cuda when they hold GPUs."""
    return "cuda" if gpus_per_actor(options) > 0 else "cpu"


def worker_count(options: RayOptions, todo: int) -> int:
    """Actors to start for `todo` tasks: as asked, else as many as the cluster fits."""
    if options.workers:
        return max(1, min(options.workers, todo))
    res = ray.cluster_resources()
    gpus = gpus_per_actor(options)
    if gpus > 0:
        fit = int(res.get("GPU", 0) // gpus)
    else:
        fit = int(res.get("CPU", 1) // max(options.cpus_per_worker, 1e-9))
    return max(1, min(fit, todo))


def start_actors(cls: type, options: RayOptions, n: int, *args: Any) -> list:
    """`n` restartable actors of `cls`, each constructed with `args`."""
    remote: Any = ray.remote(
        num_cpus=options.cpus_per_worker,
        num_gpus=gpus_per_actor(options),
        max_restarts=-1,
        max_task_retries=-1,
    )(cls)
    return [remote.remote(*args) for _ in range(n)]


def stop_actors(actors: list) -> None:
    """Kill the pool for good (no restart)."""
    for actor in actors:
        ray.kill(actor, no_restart=True)


def run_pool(
    actors: list,
    tasks: Iterator[T],
    submit: Callable[[Any, T], Any],
    per_actor: int = 2,
) -> Iterator[tuple[T, Any]]:
    """Run `submit(actor, task) -> ObjectRef` over `tasks`, keeping `per_actor` in flight per
    actor; yields (task, result) in completion order. Tasks are drawn lazily, so the driver
    holds only what is in flight."""
    flight: dict = {}
    free = [a for a in actors for _ in range(per_actor)]
    exhausted = False
    while True:
        while free and not exhausted:
            task = next(tasks, None)
            if task is None:
                exhausted = True
                break
            actor = free.pop()
            flight[submit(actor, task)] = (actor, task)
        if not flight:
            return
        ready, _ = ray.wait(list(flight), num_returns=1)
        actor, task = flight.pop(ready[0])
        free.append(actor)
        yield task, ray.get(ready[0])
