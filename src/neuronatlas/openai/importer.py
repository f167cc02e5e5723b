"""`import_openai`: OpenAI neuron-explainer files → an atlas, in parallel, resumable.

Worker processes (one per core) read, decode and `prepare` chunks of neurons; the calling
process is the single writer and stores 256 neurons per transaction. A neuron's records, stats
and explanations land in the same transaction as its `neuron_info` row, so after a crash
(SIGKILL included) the neurons listed there are complete and a rerun imports only the rest.
Rewriting a neuron replaces it, so reruns are idempotent. Bad neurons are returned as
`Skipped` entries (file and reason), never silently dropped.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgspec

from neuronatlas.errors import BadInput
from neuronatlas.ids import format_id, parse_layers
from neuronatlas.openai import extras, layout
from neuronatlas.openai.download import DownloadSettings, NeuronStream, cache_path, probe
from neuronatlas.openai.parse import Job, Skipped, parse_chunk
from neuronatlas.store import AtlasWriter, PreparedNeuron
from neuronatlas.store import llm as store_llm
from neuronatlas.store.search import rebuild_token_index
from neuronatlas.store.writer import now
from neuronatlas.version import __version__
from neuronatlas.workers import worker_pool

log = logging.getLogger(__name__)

SOURCE = "openai"


@dataclass
class ImportConfig:
    """Settings of one `import-openai` run (saved in the run's provenance)."""

    source: str = "openai:gpt2-small"  # folder, https base URL, or openai:gpt2-small / -xl
    model: str | None = None  # the model id to record; gpt2-small | gpt2-xl also give a shape
    layers: str | None = None  # e.g. "0-3,5"; None = every layer
    workers: int | None = None  # parser processes; None = os.cpu_count(); 0 = in-process
    overwrite: bool = False  # re-import neurons already stored from OpenAI
    chunk_size: int = 32  # neurons per worker task
    batch_size: int = 256  # neurons per write transaction
    download: DownloadSettings = field(default_factory=DownloadSettings)

    def __post_init__(self) -> None:
        if self.model is not None and not self.model.strip():
            raise BadInput("--model is empty: give a model id (hub id or folder) or leave it out")
        if self.workers is not None and self.workers < 0:
            raise BadInput("--workers must be 0 (in-process) or more")
        if self.chunk_size < 1 or self.batch_size < 1:
            raise BadInput("chunk_size and batch_size must be positive")


@dataclass
class ImportPlan:
    """A resolved source and the neurons to visit, before anything is written."""

    config: ImportConfig
    source: layout.Source
    neurons: list[layout.NeuronFiles]  # local: found files; remote: every index of the shape
    n_layers: int
    d_mlp: int
    manifest: extras.Manifest | None = None  # set when the source is a neuronatlas export

    @property
    def description(self) -> str:
        return self.source.description

    @property
    def model_id(self) -> str | None:
        """The model to record: --model (a GPT-2 name as its hub id), else the export's
        manifest, else the known shape the files have."""
        model = self.config.model
        if model is not None:
            known = layout.known_shape(model)
            return known.model_id if known else model
        if self.manifest is not None and self.manifest.model_id:
            return self.manifest.model_id
        return self.source.shape.model_id if self.source.shape else None


@dataclass
class ImportResult:
    """What a run did."""

    imported: int = 0
    already_done: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    requests: int = 0  # HTTP requests made (0 for local folders and fully cached sources)
    run_id: int | None = None


def plan_import(config: ImportConfig) -> ImportPlan:
    """Resolve the source and list its neurons; raises BadInput with what was looked for."""
    if layout.is_remote(config.source):
        return _plan_remote(config)
    src = layout.resolve_local(config.source, config.model)
    shape_layers = src.shape.n_layers if src.shape else None
    try:
        layers = parse_layers(config.layers, shape_layers)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    files, (n_layers, d_mlp) = layout.local_neurons(src, layers)
    manifest = extras.read_manifest(src.root)
    if src.shape is not None:
        n_layers, d_mlp = src.shape.n_layers, src.shape.d_mlp
    elif manifest is not None and manifest.shape() is not None:
        n_layers, d_mlp = manifest.shape() or (n_layers, d_mlp)
    elif config.model is None:
        known = layout.shape_for(n_layers, d_mlp)
        if known is not None:
            src = _with_shape(src, known)
    if not files:
        raise BadInput(f"{config.source}: {src.description}, but no neuron files in them")
    return ImportPlan(config, src, files, n_layers, d_mlp, manifest)


def _with_shape(src: layout.Source, shape: layout.ModelShape) -> layout.Source:
    return layout.Source(
        src.kind,
        src.root,
        src.activations_dir,
        src.data_source,
        shape,
        f"{src.description} ({shape.name}: {shape.n_layers} x {shape.d_mlp})",
    )


def _plan_remote(config: ImportConfig) -> ImportPlan:
    bases, alias_model = layout.remote_candidates(config.source)
    name = config.model or alias_model
    shape = layout.known_shape(name)
    if shape is None:
        raise BadInput(
            f"{config.source}: an https source cannot be listed, so its shape must be known: "
            "pass --model gpt2-small or --model gpt2-xl, or download the files and import "
            "the folder (any --model then)"
        )
    try:
        layers = parse_layers(config.layers, shape.n_layers) or list(range(shape.n_layers))
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if config.source in layout.ALIASES:  # the public blob's layout is known: no probe
        src = layout.Source(
            kind="http",
            root=bases[0],
            activations_dir="collated-activations",
            data_source=config.source,
            shape=shape,
            description=f"OpenAI's public blob {bases[0]} "
            f"({shape.name}: {shape.n_layers} x {shape.d_mlp})",
        )
    else:
        src = _probe_layout(config, bases, shape, layers[0])
    neurons = [
        layout.NeuronFiles(
            layer, n, src.url("explanations", layer, n), src.url("activations", layer, n)
        )
        for layer in layers
        for n in range(shape.d_mlp)
    ]
    return ImportPlan(config, src, neurons, shape.n_layers, shape.d_mlp)


def _probe_layout(
    config: ImportConfig, bases: list[str], shape: layout.ModelShape, layer: int
) -> layout.Source:
    """Find which base URL and activations folder hold the first neuron of `layer`."""
    tried = []
    for base in bases:
        for acts in layout.ACTIVATION_DIRS:
            tried.append(f"{base}{acts}/{layer}/0.json")
    got = probe(tried, config.download)
    if got is None:
        raise BadInput(f"{config.source}: no neuron file found (tried {', '.join(tried)})")
    base, acts = next(
        (b, a) for b in bases for a in layout.ACTIVATION_DIRS if got.url == f"{b}{a}/{layer}/0.json"
    )
    kind = "OpenAI layout" if acts == "collated-activations" else "seed layout"
    return layout.Source(
        kind="http",
        root=base,
        activations_dir=acts,
        data_source=base,
        shape=shape,
        description=f"{kind} at {base}: explanations/ and {acts}/ "
        f"({shape.name}: {shape.n_layers} x {shape.d_mlp})",
    )


# -- running --------------------------------------------------------------------------------

Progress = Callable[[int, int], None]  # (neurons finished so far incl. skipped, total)


def run_import(plan: ImportPlan, db: str | Path, progress: Progress | None = None) -> ImportResult:
    """Import the planned neurons into `db`; bad ones end up in `result.skipped`."""
    cfg = plan.config
    result = ImportResult()
    with AtlasWriter(db) as writer:
        _check_model(writer, plan)
        _write_meta(writer, plan)
        cache = cfg.download.cache
        run_config = {
            **asdict(cfg),
            "download": {**asdict(cfg.download), "cache": None if cache is None else str(cache)},
        }
        result.run_id = writer.begin_run("import-openai", run_config)
        side = _load_extras(plan)
        done = set() if cfg.overwrite else _done(writer, side)
        todo = [f for f in plan.neurons if format_id(f.layer, f.neuron) not in done]
        result.already_done = len(plan.neurons) - len(todo)
        total = len(todo)
        if progress:
            progress(0, total)
        status = "failed"
        try:
            _run(plan, todo, writer, result, total, progress, side)
            if cfg.overwrite:
                writer.vacuum_excerpts()
            rebuild_token_index(writer.conn)  # `neuronatlas tokens` answers from it
            status = "partial" if result.skipped else "done"
        finally:
            writer.end_run(result.run_id, status)
    return result


def _check_model(writer: AtlasWriter, plan: ImportPlan) -> None:
    have = writer.meta().get("model_id")
    want = plan.model_id
    if have and want and have != want:
        raise BadInput(f"this atlas is of model {have}, the source is {want}: use another --db")


def _write_meta(writer: AtlasWriter, plan: ImportPlan) -> None:
    items: dict[str, object] = {}
    if plan.manifest is not None:  # the exported atlas's own facts first
        items.update(plan.manifest.meta)
        if plan.config.model is not None:  # --model overrides the export's model
            items.pop("model_path", None)
    elif plan.source.shape is not None:  # OpenAI's GPT-2 files: how they were computed
        items["activation_note"] = layout.GELU_NOTE
    items.update(
        {
            "data_source": plan.source.data_source,
            "n_layers": plan.n_layers,
            "d_mlp": plan.d_mlp,
            "code_version": __version__,
        }
    )
    if plan.model_id is not None:
        items["model_id"] = plan.model_id
    else:
        log.warning(
            "%s: shape %d x %d is no known model; pass --model to record the model id",
            plan.config.source,
            plan.n_layers,
            plan.d_mlp,
        )
    if "created_at" not in writer.meta():
        items["created_at"] = now()
    writer.set_meta(items)


def _load_extras(plan: ImportPlan) -> dict[str, extras.NeuronExtras]:
    """The export's per-neuron extras (sources, scores, record source) of the planned neurons;
    empty for plain OpenAI files."""
    if plan.manifest is None or plan.source.kind != "local":
        return {}
    wanted = {format_id(f.layer, f.neuron) for f in plan.neurons}
    return {
        e.neuron_id: e
        for e in extras.read_layers(plan.source.root, {f.layer for f in plan.neurons})
        if e.neuron_id in wanted
    }


def _done(writer: AtlasWriter, side: dict[str, extras.NeuronExtras]) -> set[str]:
    """Neurons already imported: stored from OpenAI files, or (an export's) from the record
    source the export names for them."""
    done = writer.done_neurons(SOURCE)
    for source in {e.source for e in side.values()} - {SOURCE}:
        done |= {n for n in writer.done_neurons(source) if n in side}
    return done


def _take_extras(p: PreparedNeuron, e: extras.NeuronExtras) -> dict[str, list[tuple]] | None:
    """Split `p`'s explanations by the source and position its export carried (records under
    their own source) and take them out of `p`; None (and `p` untouched) when the extras do
    not match the OpenAI file."""
    rows = p.explanations or []
    if [r[3] for r in rows] != [x.text for x in e.explanations]:
        log.warning(
            "%s: the explanations differ from those in %s/explanations: imported as %r",
            p.neuron_id,
            extras.FOLDER,
            SOURCE,
        )
        return None
    by_source: dict[str, list[tuple]] = {}
    for row, x in sorted(zip(rows, e.explanations, strict=True), key=lambda t: t[1].position):
        by_source.setdefault(x.source, []).append(tuple(row[3:7]))
    p.info = (*p.info[:-1], e.source)
    p.explanations = None
    return by_source


def _store_extras(
    writer: AtlasWriter,
    neuron_id: str,
    by_source: dict[str, list[tuple]],
    e: extras.NeuronExtras,
    run_id: int | None,
) -> None:
    """The neuron's explanations by source, then their scores and LLM provenance."""
    writer.replace_all_explanations(neuron_id, by_source)
    ids = store_llm.explanation_ids(writer.conn, neuron_id)
    rank = {
        (x.source, x.position): i
        for s in by_source
        for i, x in enumerate(
            sorted((y for y in e.explanations if y.source == s), key=lambda y: y.position)
        )
    }
    scores = []
    for x in e.explanations:
        eid = ids[(x.source, rank[(x.source, x.position)])]
        scores += [(eid, s.scorer, s.judge, s.score, s.details, run_id) for s in x.scores]
        if x.llm is not None:
            store_llm.write_provenance(
                writer.conn, eid, store_llm.Provenance(**msgspec.structs.asdict(x.llm)), run_id
            )
    store_llm.write_scores(writer.conn, scores)


def _remote_urls(f: layout.NeuronFiles) -> tuple[int, int, str, str]:
    """A remote neuron's two file URLs (a remote listing always names both)."""
    if f.explanations is None or f.activations is None:
        raise BadInput(f"{format_id(f.layer, f.neuron)}: a remote source must list both files")
    return f.layer, f.neuron, f.explanations, f.activations


def _jobs(
    plan: ImportPlan, todo: list[layout.NeuronFiles], result: ImportResult
) -> Iterator[Job | Skipped]:
    """Local: jobs straight from the file list. Remote: jobs as downloads finish."""
    if plan.source.kind == "local":
        for f in todo:
            yield _local_job(plan.source, f)
        return
    items = [_remote_urls(f) for f in todo]
    stream = NeuronStream(items, plan.config.download)
    try:
        for got in stream:
            bad = [x for x in (got.explanations, got.activations) if not x.ok]
            nid = format_id(got.layer, got.neuron)
            if bad:
                yield Skipped(nid, [x.url for x in bad], "; ".join(x.error or "" for x in bad))
            else:
                yield Job(
                    got.layer,
                    got.neuron,
                    got.explanations.path,
                    got.activations.path,
                    got.explanations.url,
                    got.activations.url,
                )
    finally:
        stream.close()
        result.requests = stream.requests


def _local_job(src: layout.Source, f: layout.NeuronFiles) -> Job | Skipped:
    if f.explanations is not None and f.activations is not None:
        return Job(f.layer, f.neuron, f.explanations, f.activations, f.explanations, f.activations)
    there = f.explanations or f.activations or ""
    kind = "explanations" if f.explanations is None else "activations"
    missing = src.url(kind, f.layer, f.neuron)
    return Skipped(format_id(f.layer, f.neuron), [there], f"missing counterpart file {missing}")


def _chunks(
    items: Iterable[Job | Skipped], size: int, result: ImportResult, on_skip: Callable[[], None]
) -> Iterator[list[Job]]:
    chunk: list[Job] = []
    for item in items:
        if isinstance(item, Skipped):
            result.skipped.append(item)
            on_skip()
            continue
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _run(
    plan: ImportPlan,
    todo: list[layout.NeuronFiles],
    writer: AtlasWriter,
    result: ImportResult,
    total: int,
    progress: Progress | None,
    side: dict[str, extras.NeuronExtras] | None = None,
) -> None:
    cfg = plan.config
    side = side or {}
    finished = 0
    batch: list[PreparedNeuron] = []

    def tick(n: int) -> None:
        nonlocal finished
        finished += n
        if progress:
            progress(finished, total)

    def take(parsed: tuple[list[tuple], list[Skipped]]) -> None:
        prepared, skipped = parsed
        result.skipped.extend(skipped)
        if skipped:
            tick(len(skipped))
        batch.extend(PreparedNeuron(*p) for p in prepared)
        if len(batch) >= cfg.batch_size:
            flush()

    def flush() -> None:
        if not batch:
            return
        with writer.transaction():  # a neuron and its extras land together
            split = {
                p.neuron_id: by
                for p in batch
                if p.neuron_id in side and (by := _take_extras(p, side[p.neuron_id])) is not None
            }
            result.imported += writer.write_neurons(batch)
            for nid, by_source in split.items():
                _store_extras(writer, nid, by_source, side[nid], result.run_id)
        tick(len(batch))
        batch.clear()

    chunks = _chunks(_jobs(plan, todo, result), cfg.chunk_size, result, lambda: tick(1))
    workers = (os.cpu_count() or 1) if cfg.workers is None else cfg.workers
    if workers == 0:
        for chunk in chunks:
            take(parse_chunk(chunk))
    else:
        with worker_pool(workers) as pool:
            pending: deque[Future] = deque()
            # Enough chunks in flight that the workers keep parsing while a batch is written.
            window = 2 * workers + max(1, cfg.batch_size // cfg.chunk_size)
            for chunk in chunks:
                pending.append(pool.submit(parse_chunk, chunk))
                while len(pending) >= window:
                    take(pending.popleft().result())
            while pending:
                take(pending.popleft().result())
    flush()
    result.skipped.sort(key=lambda s: s.neuron_id)


def import_openai(
    config: ImportConfig, db: str | Path, progress: Progress | None = None
) -> ImportResult:
    """Plan and run an import in one call (the library entry point)."""
    return run_import(plan_import(config), db, progress)


__all__ = [
    "ImportConfig",
    "ImportPlan",
    "ImportResult",
    "cache_path",
    "import_openai",
    "plan_import",
    "run_import",
]
