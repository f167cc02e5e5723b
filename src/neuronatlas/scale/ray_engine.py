"""The scrape and N2G on Ray: every line of Ray code in neuronatlas lives in this module.

Scrape (`scrape_on_ray`): the driver pre-tokenises the corpus into shards (`shards`), and a
pool of actors, each loading the model from a small spec in its constructor (never a pickled
model), runs the ordinary `scrape_shard` on one shard at a time and writes that shard's state
atomically to `states/{job}/{shard}.npz`, returning only metadata. The driver skips shards
whose state exists (that is the resume), merges states in a tree as they finish (`merge`) and
is the single SQLite writer (`scrape.output.write_atlas`). Actors have `max_restarts=-1` and
`max_task_retries=-1`: a killed actor is restarted and its shard recomputed from scratch, and
because the state file is only renamed into place when complete, a half-done shard leaves
nothing behind.

N2G (`n2g_on_ray`): the database is the checkpoint (neurons without a graph are the to-do
list). The driver reads each batch of neurons' examples, actors build the graphs (the model
passes), and the driver evaluates and writes every graph exactly once as results come back.

Import this module only when Ray is wanted (`neuronatlas.scale.engine()` does it with a clear
error): the rest of neuronatlas never imports Ray.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import ray

from neuronatlas import __version__
from neuronatlas.atomic import write_atomic
from neuronatlas.errors import BadInput, ModelUnavailable, NeuronAtlasError
from neuronatlas.scale.merge import TreeMerger
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
from neuronatlas.scrape import Progress, ScrapeResult, ScrapeSettings, load

log = logging.getLogger(__name__)

LOCAL_RAY = {"num_cpus": 2, "include_dashboard": False, "object_store_memory": 1 << 30}
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
    crash_once: tuple[int, str] | None = None
    """Fault drill: the first attempt at shard i (i, marker file) exits its actor's process
    half-way through the shard; the marker file records that it happened. For tests."""

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


def model_header(spec: str, dtype: str = "float32") -> tuple:
    """(a `LoadedModel` without weights (`model=None`), the folder or hub id it came from):
    name, revision, shape and tokenizer, by the same rules as `load_model`. The driver needs no
    more, and a head node should not hold a model that only the GPU workers run."""
    from transformers import AutoConfig, AutoTokenizer

    from neuronatlas.models import LoadedModel, architecture_for
    from neuronatlas.models.architectures import d_mlp_of
    from neuronatlas.models.load import _source, _torch_dtype

    _torch_dtype(dtype)  # the same --dtype check as load_model
    source, name, revision = _source(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"cannot load model {spec!r}: {exc}") from exc
    text_config = getattr(config, "text_config", None) or config
    arch = architecture_for(config.model_type)
    if revision is None:
        revision = getattr(config, "_commit_hash", None)
    n_layers = int(getattr(text_config, "num_hidden_layers", None) or text_config.n_layer)
    bos = tokenizer.bos_token_id
    header = LoadedModel(
        name=name,
        revision=revision,
        model=None,
        tokenizer=tokenizer,
        n_layers=n_layers,
        d_mlp=d_mlp_of(arch, text_config),
        architecture=arch.name,
        bos_token_id=None if bos is None else int(bos),
        arch=arch,
        dtype=dtype,
    )
    return header, source


# -- scrape --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardTask:
    """Everything an actor needs for one shard (small: no tokens, no model, no state)."""

    job: str
    manifest_folder: str
    shard: Shard
    context: int
    state_file: str
    config: object
    policy: object
    layers: tuple[int, ...]
    batch_size: int
    crash_once: tuple[int, str] | None = None


class ScrapeWorker:
    """A Ray actor: loads the model once, then scrapes shards into state files."""

    def __init__(self, model: str, dtype: str, device: str) -> None:
        from transformers.utils import logging as hf_logging

        from neuronatlas.models import load_model

        hf_logging.disable_progress_bar()
        loaded = load_model(model, dtype=dtype, device=device)
        self.model = loaded  # the shard's state lives on the model's device
        self.pid = os.getpid()

    def run_shard(self, task: ShardTask) -> dict:
        """Scrape one shard, write its state atomically, return its metadata."""
        from neuronatlas.corpus import batch_windows
        from neuronatlas.scrape import save, scrape_shard

        started = time.perf_counter()
        shard = task.shard
        tokens = read_shard(Path(task.manifest_folder), shard, task.context)
        ids = range(shard.first_window, shard.first_window + shard.n_windows)
        batches = batch_windows(zip(ids, tokens, strict=False), task.batch_size)
        n_batches = math.ceil(shard.n_windows / task.batch_size)
        seen = 0

        def on_batch(_state, _batch) -> None:
            nonlocal seen
            seen += 1
            if task.crash_once and task.crash_once[0] == shard.index and seen >= n_batches / 2:
                marker = Path(task.crash_once[1])
                if not marker.exists():
                    marker.write_text(
                        f"pid {self.pid} exited half-way through shard {shard.index}\n"
                    )
                    os._exit(17)

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
        return {
            "shard": shard.index,
            "windows": shard.n_windows,
            "pid": self.pid,
            "seconds": time.perf_counter() - started,
            "node": ray.get_runtime_context().get_node_id(),
        }


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
    shard_metadata: list[dict] = field(default_factory=list)


def _gpus(options: RayOptions) -> float:
    """GPUs per actor: as asked, else one when the cluster has any."""
    if options.gpus_per_worker is not None:
        return options.gpus_per_worker
    return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def _worker_count(options: RayOptions, todo: int) -> int:
    if options.workers:
        return max(1, min(options.workers, todo))
    res = ray.cluster_resources()
    gpus = _gpus(options)
    if gpus > 0:
        fit = int(res.get("GPU", 0) // gpus)
    else:
        fit = int(res.get("CPU", 1) // max(options.cpus_per_worker, 1e-9))
    return max(1, min(fit, todo))


def _actors(cls, options: RayOptions, n: int, *args) -> list:
    remote = ray.remote(
        num_cpus=options.cpus_per_worker,
        num_gpus=_gpus(options),
        max_restarts=-1,
        max_task_retries=-1,
    )(cls)
    return [remote.remote(*args) for _ in range(n)]


def _pool(actors: list, tasks: Iterator, submit: Callable, per_actor: int = 2) -> Iterator:
    """Run `submit(actor, task) -> ObjectRef` over `tasks`, keeping `per_actor` in flight per
    actor; yields (task, result) in completion order."""
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


def scrape_on_ray(
    settings: ScrapeSettings,
    db: str | Path,
    progress: Callable[[Progress], None] | None = None,
    options: RayOptions | None = None,
) -> RayScrapeResult:
    """`run_scrape` on Ray: same settings, same atlas (see the module docstring)."""
    from neuronatlas.corpus import iter_windows, open_source, resolve_bos
    from neuronatlas.scrape.output import provenance, write_atlas
    from neuronatlas.scrape.runner import settings_json

    options = options or RayOptions()
    db = Path(db)
    notify = progress or (lambda _e: None)
    header, source_dir = model_header(settings.model, settings.dtype)
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
            n = _worker_count(options, len(todo))
            result.workers = n
            device = "cuda" if _gpus(options) > 0 else "cpu"
            actors = _actors(ScrapeWorker, options, n, settings.model, settings.dtype, device)
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
                    options.crash_once,
                )
                for s in todo
            )
            fresh = 0
            for task, meta in _pool(actors, tasks, lambda a, t: a.run_shard.remote(t)):
                merger.add(_load_state(work, job, task.shard))
                result.computed.append(task.shard.index)
                result.shard_metadata.append(meta)
                done += task.shard.n_windows
                fresh += task.shard.n_windows
                notify(Progress("scrape", done, manifest.windows, fresh * config.context))
            for actor in actors:
                ray.kill(actor, no_restart=True)
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
    ident: dict,
    manifest: Manifest,
    layers: list[int],
) -> None:
    import json
    from dataclasses import asdict

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


# -- N2G -----------------------------------------------------------------------------------------


class N2GWorker:
    """A Ray actor holding an N2G `Session` (model loaded in the constructor)."""

    def __init__(
        self, spec: str, settings, meta: dict, casings: str | None, device: str = "cpu"
    ) -> None:
        from transformers.utils import logging as hf_logging

        from neuronatlas.models import load_model
        from neuronatlas.n2g.run import Session, _same_model, prepend_bos

        hf_logging.disable_progress_bar()
        loaded = load_model(spec, device=device)
        self.session = Session(loaded, settings, prepend_bos(meta, loaded.tokenizer), casings)
        s = self.session.settings
        self.stored_full = s.full_activation == "stored" or (
            s.full_activation == "auto" and _same_model(meta, spec, loaded)
        )

    def info(self) -> dict:
        return {
            "mask": self.session.mask,
            "prepend_bos": self.session.runner.bos is not None,
            "stored_full": self.stored_full,
            "pid": os.getpid(),
        }

    def counters(self) -> dict:
        return self.session.runner.count.snapshot()

    def build(self, layer: int, examples: list) -> list[tuple]:
        """[(neuron id, NeuronBuild or None, model tokens per neuron, error or None)]; a failing
        batch is retried neuron by neuron so only the failing neurons are reported."""
        count = self.session.runner.count
        before = count.tokens
        try:
            builds = self.session.build(layer, examples, self.stored_full)
        except Exception as exc:
            if len(examples) == 1:
                why = (
                    str(exc)
                    if isinstance(exc, NeuronAtlasError)
                    else f"{type(exc).__name__}: {exc}"
                )
                return [(examples[0].neuron_id, None, 0.0, why)]
            return [r for ex in examples for r in self.build(layer, [ex])]
        per = (count.tokens - before) / len(examples)
        return [(b.examples.neuron_id, b, per, None) for b in builds]


def _n2g_chunks(
    conn, targets: Sequence[str], settings, batch_neurons: int, report, fail
) -> Iterator[tuple[int, list]]:
    """(layer, examples) batches, read lazily so the driver holds only what is in flight."""
    from neuronatlas.ids import parse_id
    from neuronatlas.n2g.run import buildable_examples

    by_layer: dict[int, list[str]] = {}
    for t in targets:
        by_layer.setdefault(parse_id(t)[0], []).append(t)
    for layer, ids in by_layer.items():
        for at in range(0, len(ids), batch_neurons):
            examples = []
            for nid in ids[at : at + batch_neurons]:
                try:
                    examples.append(buildable_examples(conn, nid, settings))
                except NeuronAtlasError as exc:
                    fail(nid, str(exc))
            if examples:
                yield layer, examples


def n2g_on_ray(
    db: str | Path,
    neurons: Sequence[str] | None = None,
    layer: int | None = None,
    all_: bool = False,
    model: str | None = None,
    settings=None,
    casings: str | None = None,
    overwrite: bool = False,
    batch_neurons: int = 16,
    progress: Callable[[str, int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    options: RayOptions | None = None,
):
    """`run_n2g` with the graph builds fanned out over an actor pool; returns its RunReport."""
    from neuronatlas.n2g.run import RunReport, model_spec, select_neurons
    from neuronatlas.n2g.settings import N2GSettings
    from neuronatlas.store import n2g as store
    from neuronatlas.store import open_reader, reader

    options = options or RayOptions()
    settings = settings or N2GSettings()
    started = time.perf_counter()
    report = RunReport()

    def fail(nid: str, why: str) -> None:
        log.warning("%s skipped: %s", nid, why)
        report.failed.append((nid, why))
        if progress:
            progress(nid, len(report.done))

    conn = open_reader(db)
    try:
        meta = reader.meta(conn)
        targets = select_neurons(conn, neurons, layer, all_)
        known = set(reader.neuron_ids(conn))
        report.failed.extend((t, "not in this atlas") for t in targets if t not in known)
        targets = [t for t in targets if t in known]
        if not overwrite:
            have = store.graph_ids(conn)
            report.already = [t for t in targets if t in have]
            targets = [t for t in targets if t not in have]
        if on_total:
            on_total(len(targets) + len(report.failed))
        if targets:
            spec = model_spec(meta, model)
            with ray_session(options.address, options.quiet):
                _n2g_fan_out(
                    db,
                    conn,
                    spec,
                    meta,
                    targets,
                    settings,
                    casings,
                    batch_neurons,
                    options,
                    report,
                    fail,
                    progress,
                )
    finally:
        conn.close()
    report.seconds = time.perf_counter() - started
    return report


def _n2g_fan_out(
    db,
    conn,
    spec: str,
    meta: dict,
    targets: list[str],
    settings,
    casings: str | None,
    batch_neurons: int,
    options: RayOptions,
    report,
    fail,
    progress,
) -> None:
    """Start the actors, fan the batches out, write each graph as it comes back."""
    from neuronatlas.n2g.run import finish_neuron
    from neuronatlas.store import AtlasWriter

    n = _worker_count(options, math.ceil(len(targets) / batch_neurons))
    device = "cuda" if _gpus(options) > 0 else "cpu"
    actors = _actors(N2GWorker, options, n, spec, settings, meta, casings, device)
    info = ray.get(actors[0].info.remote())
    written: set[str] = set()
    with AtlasWriter(db) as writer:
        run_id = writer.begin_run(
            "n2g",
            {
                "settings": settings.to_json(),
                "model": spec,
                "mask_token": info["mask"].to_json(),
                "prepend_bos": info["prepend_bos"],
                "stored_full_activation": info["stored_full"],
                "engine": "ray",
                "workers": n,
            },
        )
        chunks = _n2g_chunks(conn, targets, settings, batch_neurons, report, fail)
        try:
            for _task, rows in _pool(actors, chunks, lambda a, c: a.build.remote(*c)):
                for nid, build, per, why in rows:
                    if why is not None:
                        fail(nid, why)
                        continue
                    if nid in written:  # a retried task's duplicate: each graph is written once
                        continue
                    try:
                        finish_neuron(
                            writer,
                            build,
                            settings,
                            info["mask"],
                            spec,
                            run_id,
                            {"model_tokens_share": per},
                        )
                    except Exception as exc:
                        fail(nid, f"{type(exc).__name__}: {exc}")
                        continue
                    written.add(nid)
                    report.done.append(nid)
                    if progress:
                        progress(nid, len(report.done))
            totals: dict[str, int] = {}
            for c in ray.get([a.counters.remote() for a in actors]):
                for k, v in c.items():
                    totals[k] = totals.get(k, 0) + v
            report.counters = totals
            report.mask = info["mask"].to_json()
        except BaseException:
            writer.end_run(run_id, "failed")
            raise
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
        writer.end_run(run_id, "partial" if report.failed else "done")
