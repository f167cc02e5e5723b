"""The scrape on Ray: shard the corpus, scrape shards on an actor pool, merge, write once.

The driver pre-tokenises the corpus into shards (`shards`); each actor (`ScrapeWorker`) runs
the ordinary `scrape_shard` on one shard at a time and writes that shard's state atomically to
`states/{job}/{shard}.npz`, returning only metadata. The driver skips shards whose state exists
(that is the resume), merges states in a tree as they finish (`merge`) and is the single SQLite
writer (`scrape.output.write_atlas`). A killed actor is restarted and its shard recomputed from
scratch (see `ray_pool`); because a state file is renamed into place only when complete, a
half-done shard leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ray

from neuronatlas.atomic import write_atomic
from neuronatlas.corpus.windows import BosPolicy
from neuronatlas.errors import BadInput
from neuronatlas.scale.merge import TreeMerger
from neuronatlas.scale.ray_pool import (
    RayOptions,
    actor_device,
    ray_session,
    run_pool,
    start_actors,
    stop_actors,
    worker_count,
)
from neuronatlas.scale.shards import (
    Manifest,
    Shard,
    job_id,
    missing_shards,
    model_identity,
    prepare_shards,
    read_shard,
    state_path,
    states_dir,
)
from neuronatlas.scrape import Progress, ScrapeResult, ScrapeSettings, StatsConfig, load
from neuronatlas.version import __version__

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardTask:
    """Everything an actor needs for one shard (small: no tokens, no model, no state)."""

    job: str
    manifest_folder: str
    shard: Shard
    context: int
    state_file: str
    config: StatsConfig
    policy: BosPolicy
    layers: tuple[int, ...]
    batch_size: int


@dataclass(frozen=True)
class ShardMetadata:
    """What an actor reports for a finished shard."""

    shard: int
    windows: int
    pid: int
    seconds: float
    node: str


class ScrapeWorker:
    """A Ray actor: loads the model once, then scrapes shards into state files.

    `after_batch` runs after every batch of a shard and does nothing here; it is the seam a
    test subclass uses to inject a fault (an actor dying half-way through a shard)."""

    def __init__(self, model: str, dtype: str, device: str) -> None:
        from transformers.utils import logging as hf_logging

        from neuronatlas.models import load_model

        hf_logging.disable_progress_bar()
        loaded = load_model(model, dtype=dtype, device=device)
        self.model: Any = loaded  # the shard's state lives on the model's device
        self.pid = os.getpid()

    def after_batch(self, shard: Shard, batch: int, n_batches: int) -> None:
        """Called after batch number `batch` (1-based) of `n_batches` of `shard`."""

    def run_shard(self, task: ShardTask) -> ShardMetadata:
        """Scrape one shard, write its state atomically, return its metadata."""
        from neuronatlas.corpus import batch_windows
        from neuronatlas.scrape import save, scrape_shard

        started = time.perf_counter()
        shard = task.shard
        tokens = read_shard(Path(task.manifest_folder), shard, task.context)
        ids = range(shard.first_window, shard.first_window + shard.n_windows)
        batches = batch_windows(zip(ids, tokens, strict=True), task.batch_size)
        n_batches = math.ceil(shard.n_windows / task.batch_size)
        seen = 0

        def on_batch(_state, _batch) -> None:
            nonlocal seen
            seen += 1
            self.after_batch(shard, seen, n_batches)

        state = scrape_shard(
            self.model, batches, task.config, task.policy, list(task.layers), on_batch=on_batch
        )
        state.meta = {
            "job": task.job,
            "shard": shard.index,
            "first_window": shard.first_window,
            "n_windows": shard.n_windows,
        }
        save(state, task.state_file)
        return ShardMetadata(
            shard=shard.index,
            windows=shard.n_windows,
            pid=self.pid,
            seconds=time.perf_counter() - started,
            node=ray.get_runtime_context().get_node_id(),
        )


@dataclass
class RayScrapeResult(ScrapeResult):
    """A ScrapeResult plus what the Ray run did."""

    job: str = ""
    work_dir: Path | None = None
    shards: int = 0
    computed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    workers: int = 0
    merge_seconds: float = 0.0
    merges: int = 0
    shard_metadata: list[ShardMetadata] = field(default_factory=list)


def scrape_on_ray(
    settings: ScrapeSettings,
    db: str | Path,
    progress: Callable[[Progress], None] | None = None,
    options: RayOptions | None = None,
    worker_class: type[ScrapeWorker] = ScrapeWorker,
) -> RayScrapeResult:
    """`run_scrape` on Ray: same settings, same atlas (see the module docstring).

    worker_class: the actor class; a subclass may override `ScrapeWorker.after_batch` (the
    fault-injection seam of the tests)."""
    from neuronatlas.corpus import iter_windows, open_source, resolve_bos
    from neuronatlas.models import load_header
    from neuronatlas.scrape.output import provenance, write_atlas
    from neuronatlas.scrape.runner import settings_json

    options = options or RayOptions()
    db = Path(db)
    notify = progress or (lambda _e: None)
    header, source_dir = load_header(settings.model, settings.dtype)
    policy = resolve_bos(header.tokenizer, settings.bos)
    layers = settings.layers_on(header)
    config = settings.stats_config()
    source = open_source(settings.corpus, settings.text_field)
    corpus = source.describe()
    work = Path(options.work_dir or db.with_name(db.name + ".ray"))
    ident = model_identity(header.name, header.revision, source_dir)
    windows = iter_windows(
        source.documents(), header.tokenizer, config.context, policy, stop=settings.max_windows
    )
    log.info("pre-tokenising %s into shards under %s", settings.corpus, work)
    manifest = prepare_shards(
        windows,
        config.context,
        {
            "corpus": corpus,
            "tokenizer": ident,
            "context": config.context,
            "bos": policy.describe(),
            "max_windows": settings.max_windows,
        },
        work,
        options.shards,
    )
    if manifest.windows == 0:
        raise BadInput(f"--corpus {settings.corpus}: no full window of {config.context} tokens")
    job = job_id(ident, manifest, config, layers, settings.dtype, __version__)
    _write_job(work, job, settings, ident, manifest, layers)
    todo = missing_shards(work, job, manifest)
    done_ids = {s.index for s in manifest.shards} - {s.index for s in todo}
    result = RayScrapeResult(
        db,
        0,
        0,
        0,
        0,
        job=job,
        work_dir=work,
        shards=len(manifest.shards),
        skipped=sorted(done_ids),
    )
    merger = TreeMerger()
    done = 0
    for shard in manifest.shards:
        if shard.index in done_ids:
            merger.add(_load_state(work, job, shard))
            done += shard.n_windows
    result.resumed_from = done
    notify(Progress("scrape", done, manifest.windows, 0))
    if todo:
        with ray_session(options.address, options.quiet):
            n = worker_count(options, len(todo))
            result.workers = n
            actors = start_actors(
                worker_class, options, n, settings.model, settings.dtype, actor_device(options)
            )
            tasks = (
                ShardTask(
                    job,
                    str(manifest.folder),
                    s,
                    config.context,
                    str(state_path(work, job, s)),
                    config,
                    policy,
                    tuple(layers),
                    settings.batch_size,
                )
                for s in todo
            )
            fresh = 0
            try:
                for task, meta in run_pool(actors, tasks, lambda a, t: a.run_shard.remote(t)):
                    merger.add(_load_state(work, job, task.shard))
                    result.computed.append(task.shard.index)
                    result.shard_metadata.append(meta)
                    done += task.shard.n_windows
                    fresh += task.shard.n_windows
                    notify(Progress("scrape", done, manifest.windows, fresh * config.context))
            finally:
                stop_actors(actors)
    state = merger.result()
    result.merge_seconds, result.merges = merger.merge_seconds, merger.merges
    prov = provenance(settings, header, corpus, policy, layers, state)
    run_config = {
        **settings_json(settings),
        "engine": "ray",
        "job": job,
        "shards": len(manifest.shards),
        "work_dir": str(work),
    }
    result.neurons = write_atlas(
        state, header, db, prov, run_config, lambda d, t: notify(Progress("write", d, t))
    )
    result.windows = state.windows_seen
    result.tokens = state.windows_seen * config.context
    result.meta = prov
    return result


def _load_state(work: Path, job: str, shard: Shard):
    """A shard's state, checked to be the one this job asked for."""
    state = load(state_path(work, job, shard))
    if (
        state.meta.get("job") != job
        or state.meta.get("shard") != shard.index
        or state.windows_seen != shard.n_windows
    ):
        raise BadInput(
            f"{state_path(work, job, shard)} is not shard {shard.index} of job {job}; "
            "delete it to recompute it"
        )
    return state


def _write_job(
    work: Path,
    job: str,
    settings: ScrapeSettings,
    ident: dict[str, Any],
    manifest: Manifest,
    layers: list[int],
) -> None:
    """job.json beside the states: what this job is, for a person looking at the folder."""
    path = states_dir(work, job) / "job.json"
    if path.exists():
        return
    doc = {
        "job": job,
        "settings": asdict(settings),
        "model": ident,
        "layers": layers,
        "manifest": str(manifest.folder),
        "manifest_key": manifest.key,
        "code_version": __version__,
    }
    write_atomic(path, lambda f: f.write(json.dumps(doc, indent=1, default=str).encode()))
