"""N2G on Ray: the graph builds (the model passes) fanned out over an actor pool.

The database is the checkpoint: neurons without a graph are the to-do list. The driver reads
each batch of neurons' examples lazily, the actors (`N2GWorker`, one N2G `Session` each) build
the graphs, and the driver evaluates and writes every graph exactly once as results come back
(a task Ray re-runs after a restart may return a neuron twice; the second copy is dropped).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from neuronatlas.errors import NeuronAtlasError
from neuronatlas.scale.ray_pool import (
    RayOptions,
    actor_device,
    ray_session,
    run_pool,
    start_actors,
    stop_actors,
    worker_count,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltNeuron:
    """One neuron's outcome from an actor: its build, or why it failed."""

    neuron_id: str
    build: Any | None
    """The n2g NeuronBuild, None on failure."""
    model_tokens: float
    """Model tokens spent per neuron in its batch."""
    error: str | None = None


@dataclass(frozen=True)
class WorkerInfo:
    """What every actor decided the same way on start-up (recorded with the run)."""

    mask: Any
    prepend_bos: bool
    stored_full: bool
    pid: int


class N2GWorker:
    """A Ray actor holding an N2G `Session` (model loaded in the constructor)."""

    def __init__(
        self, spec: str, settings, meta: dict, casings: str | None, device: str = "cpu"
    ) -> None:
        from transformers.utils import logging as hf_logging

        from neuronatlas.models import load_model
        from neuronatlas.n2g.run import Session, prepend_bos, same_model

        hf_logging.disable_progress_bar()
        loaded = load_model(spec, device=device)
        self.session = Session(loaded, settings, prepend_bos(meta, loaded.tokenizer), casings)
        s = self.session.settings
        self.stored_full = s.full_activation == "stored" or (
            s.full_activation == "auto" and same_model(meta, spec, loaded)
        )

    def info(self) -> WorkerInfo:
        return WorkerInfo(
            mask=self.session.mask,
            prepend_bos=self.session.runner.bos is not None,
            stored_full=self.stored_full,
            pid=os.getpid(),
        )

    def counters(self) -> dict[str, int]:
        return self.session.runner.count.snapshot()

    def build(self, layer: int, examples: list) -> list[BuiltNeuron]:
        """One BuiltNeuron per example; a failing batch is retried neuron by neuron so only
        the failing neurons are reported."""
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
                return [BuiltNeuron(examples[0].neuron_id, None, 0.0, why)]
            return [r for ex in examples for r in self.build(layer, [ex])]
        per = (count.tokens - before) / len(examples)
        return [BuiltNeuron(b.examples.neuron_id, b, per) for b in builds]


def _n2g_chunks(
    conn, targets: Sequence[str], settings, batch_neurons: int, fail: Callable[[str, str], None]
) -> Iterator[tuple[int, list]]:
    """(layer, examples) batches, read lazily so the driver holds only what is in flight; the
    batches `run_n2g` makes (random neurons of a layer, in a seeded random order, `n2g.order`)."""
    from neuronatlas.n2g.order import work_batches
    from neuronatlas.n2g.run import buildable_examples

    for layer, ids in work_batches(targets, batch_neurons, settings.seed):
        examples = []
        for nid in ids:
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
            chunks = _n2g_chunks(conn, targets, settings, batch_neurons, fail)
            with ray_session(options.address, options.quiet):
                n = worker_count(options, math.ceil(len(targets) / batch_neurons))
                actors = start_actors(
                    N2GWorker, options, n, spec, settings, meta, casings, actor_device(options)
                )
                try:
                    _write_as_built(db, actors, chunks, spec, settings, report, fail, progress)
                finally:
                    stop_actors(actors)
    finally:
        conn.close()
    report.seconds = time.perf_counter() - started
    return report


def _write_as_built(db, actors: list, chunks, spec: str, settings, report, fail, progress) -> None:
    """Fan the batches out and write each graph (once) as it comes back, in one run."""
    from neuronatlas.n2g.run import finish_neuron
    from neuronatlas.store import AtlasWriter

    info: WorkerInfo = ray.get(actors[0].info.remote())
    written: set[str] = set()
    with AtlasWriter(db) as writer:
        run_id = writer.begin_run(
            "n2g",
            {
                "settings": settings.to_json(),
                "model": spec,
                "mask_token": info.mask.to_json(),
                "prepend_bos": info.prepend_bos,
                "stored_full_activation": info.stored_full,
                "engine": "ray",
                "workers": len(actors),
            },
        )
        try:
            for _task, rows in run_pool(actors, chunks, lambda a, c: a.build.remote(*c)):
                for row in rows:
                    if row.error is not None:
                        fail(row.neuron_id, row.error)
                        continue
                    if row.neuron_id in written:  # a retried task's duplicate
                        continue
                    try:
                        finish_neuron(
                            writer,
                            row.build,
                            settings,
                            info.mask,
                            spec,
                            run_id,
                            {"model_tokens_share": row.model_tokens},
                        )
                    except Exception as exc:
                        fail(row.neuron_id, f"{type(exc).__name__}: {exc}")
                        continue
                    written.add(row.neuron_id)
                    report.done.append(row.neuron_id)
                    if progress:
                        progress(row.neuron_id, len(report.done))
            totals: dict[str, int] = {}
            for c in ray.get([a.counters.remote() for a in actors]):
                for k, v in c.items():
                    totals[k] = totals.get(k, 0) + v
            report.counters = totals
            report.mask = info.mask.to_json()
        except BaseException:
            writer.end_run(run_id, "failed")
            raise
        writer.end_run(run_id, "partial" if report.failed else "done")
