"""The N2G stage over an atlas: which neurons, which model, batches per layer, store writes.

`run_n2g` is what `neuronatlas n2g` calls. It is resumable (neurons that have a graph are
skipped unless `overwrite`), works in batches of random neurons of one layer that share every
forward pass, in a seeded random order (`n2g.order`), and isolates failures: if a batch fails,
its neurons are retried one by one and only the failing ones are reported and skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from neuronatlas.errors import BadInput, NeuronAtlasError
from neuronatlas.n2g import augment as aug
from neuronatlas.n2g.build import (
    NeuronBuild,
    build_layer,
    finish_layer,
    finish_tokens,
    prune_layer,
)
from neuronatlas.n2g.evaluate import evaluate
from neuronatlas.n2g.examples import NeuronExamples, VocabIndex, load_examples
from neuronatlas.n2g.explain import describe
from neuronatlas.n2g.forward import Runner
from neuronatlas.n2g.order import Batch, NeuronOrder, work_batches
from neuronatlas.n2g.predict import predict
from neuronatlas.n2g.prune import Pruned
from neuronatlas.n2g.saliency import MaskChoice, choose_mask
from neuronatlas.n2g.settings import N2GSettings
from neuronatlas.store import AtlasWriter, open_reader, reader
from neuronatlas.store import n2g as store
from neuronatlas.store.reader import select_neurons

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    done: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    counters: dict = field(default_factory=dict)
    seconds: float = 0.0
    mask: dict | None = None


def model_spec(meta: dict[str, str], given: str | None) -> str:
    """--model, else the atlas's model (meta model_path, then model_id)."""
    if given:
        return given
    for key in ("model_path", "model_id", "model"):
        if meta.get(key):
            return meta[key]
    raise BadInput("this atlas does not name its model: pass --model ID_OR_DIR")


def prepend_bos(meta: dict[str, str], tokenizer) -> bool:
    """Whether the atlas's activations were taken with a BOS before each window: the scrape's
    recorded `bos_policy` (or a `prepend_bos` flag); otherwise the scraper's own rule (prepend
    when the tokenizer adds a BOS by itself), so passes here see what the scrape saw."""
    import json

    if meta.get("prepend_bos") is not None:
        return meta["prepend_bos"].strip().lower() in ("1", "true", "yes")
    if meta.get("bos_policy"):
        try:
            return json.loads(meta["bos_policy"]).get("mode") == "prepend"
        except (ValueError, AttributeError):
            pass
    from neuronatlas.corpus import resolve_bos

    return resolve_bos(tokenizer, "auto").mode == "prepend"


def same_model(meta: dict[str, str], spec: str, loaded) -> bool:
    """Whether the atlas was scraped with this model (then its stored activations are the
    model's own full-context activations)."""
    names = {spec, loaded.name}
    if Path(spec).expanduser().is_dir():
        names.add(str(Path(spec).expanduser().resolve()))
    return any(meta.get(k) in names for k in ("model_path", "model_id", "model"))


def finish_neuron(
    writer: AtlasWriter,
    build: NeuronBuild,
    settings: N2GSettings,
    mask: MaskChoice,
    model: str,
    run_id: int | None,
    extra_stats: dict,
) -> dict:
    """Evaluate one built neuron, write graph + metrics + explanation; return the metrics."""
    ex = build.examples
    predicted = [predict(build.trie, r.tokens, ex.a_max) for r in ex.test]
    ev = evaluate(
        predicted,
        [r.pair() for r in ex.test],
        [r.pair() for r in ex.train],
        ex.a_max,
        settings.fire_threshold,
        settings.ngram,
    )
    metrics = ev.to_json()
    text = describe(build.trie)
    stats = {
        "used_examples": build.used_examples,
        "skipped_examples": build.skipped_examples,
        "train_records": len(ex.train),
        "build_records": len(ex.build),
        "test_records": len(ex.test),
        "lines": build.lines,
        "nodes": len(build.trie),
        "substitutes_tried": build.substitutes_tried,
        "substitutes_kept": build.substitutes_kept,
        "pruned_lengths": build.pruned_lengths,
        **extra_stats,
    }
    store.write_graph(
        writer,
        ex.neuron_id,
        run_id=run_id,
        a_max=ex.a_max,
        trie=build.trie.to_json(),
        settings=settings.to_json(),
        mask_token=mask.to_json(),
        model=model,
        stats=stats,
        metrics=metrics,
        explanation=(text, ev.ev_correlation_score),
    )
    return metrics


class Session:
    """A loaded model with everything N2G needs from it, reusable across runs (and the bench)."""

    def __init__(
        self,
        loaded,
        settings: N2GSettings,
        prepend_bos: bool,
        casings_path: str | None = None,
        corpus_tokens: Callable[[], Iterable[str]] | None = None,
    ):
        self.loaded = loaded
        self.settings = settings
        self.vocab = VocabIndex(loaded)
        self.mask = choose_mask(loaded.tokenizer, settings.mask_token)
        self.runner = Runner(
            loaded,
            prepend_bos,
            settings.max_batch_tokens,
            full_depth=settings.pass_structure == "reference",
        )
        ctx = aug.AugmentContext(
            self.runner, self.vocab, casings_path, settings.normalize_tokens, corpus_tokens
        )
        self.sources = aug.make_sources(settings.substitute_sources, ctx)

    @property
    def splits(self) -> bool:
        """Whether builds split into `prune` then `finish` (the reference pass structure
        builds each neuron in one go)."""
        return self.settings.pass_structure != "reference"

    def prune(
        self, layer: int, examples: Sequence[NeuronExamples], stored_full: bool
    ) -> list[Pruned]:
        return prune_layer(self.runner, layer, examples, self.vocab, self.settings, stored_full)

    def finish(
        self,
        layer: int,
        examples: Sequence[NeuronExamples],
        pruned: Sequence[Pruned],
        stored_full: bool,
    ) -> list[NeuronBuild]:
        return finish_layer(
            self.runner,
            layer,
            examples,
            pruned,
            self.vocab,
            self.sources,
            self.mask,
            self.settings,
            stored_full,
        )

    def build(
        self, layer: int, examples: Sequence[NeuronExamples], stored_full: bool
    ) -> list[NeuronBuild]:
        if self.settings.pass_structure == "reference":
            from neuronatlas.n2g.reference import build_reference

            return [build_reference(self, ex, stored_full=False) for ex in examples]
        return build_layer(
            self.runner,
            layer,
            examples,
            self.vocab,
            self.sources,
            self.mask,
            self.settings,
            stored_full,
        )


def open_session(
    db: str | Path,
    model: str | None = None,
    settings: N2GSettings | None = None,
    casings: str | None = None,
    device: str = "auto",
) -> Session:
    """Load the atlas's model (or `model`) once, on `device`, for several `run_n2g` calls."""
    from neuronatlas.models import load_model

    conn = open_reader(db)
    meta = reader.meta(conn)
    conn.close()
    loaded = load_model(model_spec(meta, model), device=device)
    return Session(
        loaded,
        settings or N2GSettings(),
        prepend_bos(meta, loaded.tokenizer),
        casings,
        corpus_tokens=lambda: store.excerpt_tokens(open_reader(db)),
    )


def run_n2g(
    db: str | Path,
    neurons: Sequence[str] | None = None,
    layer: int | None = None,
    all_: bool = False,
    model: str | None = None,
    settings: N2GSettings | None = None,
    casings: str | None = None,
    overwrite: bool = False,
    batch_neurons: int = 16,
    progress: Callable[[str, int], None] | None = None,
    session: Session | None = None,
    on_total: Callable[[int], None] | None = None,
    device: str = "auto",
    order: NeuronOrder = "random",
    on_work: Callable[[float, float], None] | None = None,
) -> RunReport:
    """Build, evaluate and store graphs. progress(neuron_id, n_done_so_far) after each neuron.

    The batches (random neurons of one layer) run in a seeded random order (`n2g.order`;
    `order="id"`: id-contiguous batches in id order). The graphs are the same either way and
    the scores within float32's last bits; the random order makes any early part of the work a
    fair sample of it (so a progress bar's pace on it is an unbiased estimate of the rest), and
    a run stopped early leaves random neurons built (a rerun builds the rest).

    The batches run in rounds of up to `ROUND_NEURONS` neurons: a round's batches are all
    pruned, then built. on_work(done, total) after each batch: the work in model tokens (see
    `Work`), which a progress bar's time left should follow rather than the neuron count."""
    settings = settings or N2GSettings()
    started = time.perf_counter()
    conn = open_reader(db)
    meta = reader.meta(conn)
    targets = select_neurons(conn, neurons, layer, all_)
    known = set(reader.neuron_ids(conn))
    report = RunReport()
    missing = [t for t in targets if t not in known]
    report.failed.extend((t, "not in this atlas") for t in missing)
    targets = [t for t in targets if t in known]
    have = store.graph_ids(conn)
    if not overwrite:
        report.already = [t for t in targets if t in have]
        targets = [t for t in targets if t not in have]
    if not targets:
        if on_total:
            on_total(len(report.failed))
        report.seconds = time.perf_counter() - started
        return report
    spec = model_spec(meta, model)
    if session is None:
        session = open_session(db, model, settings, casings, device)
    if on_total:  # after loading the model: a bar's pace counts the work alone
        on_total(len(targets) + len(report.failed))
    settings = session.settings
    stored_full = settings.full_activation == "stored" or (
        settings.full_activation == "auto" and same_model(meta, spec, session.loaded)
    )
    report.mask = session.mask.to_json()
    with AtlasWriter(db) as writer:
        run_id = writer.begin_run(
            "n2g",
            {
                "settings": settings.to_json(),
                "model": spec,
                "mask_token": session.mask.to_json(),
                "prepend_bos": session.runner.bos is not None,
                "stored_full_activation": stored_full,
            },
        )
        chunk = _Chunk(conn, writer, session, settings, spec, run_id, stored_full, report, progress)
        batches = work_batches(targets, batch_neurons, settings.seed, order)
        work = Work(len(targets), on_work)
        if session.splits:
            for round_ in _rounds(batches, ROUND_NEURONS):
                for pruned in [_prune_batch(chunk, batch, work) for batch in round_]:
                    _finish_batch(chunk, pruned, work)
        else:
            for batch in batches:
                _run_chunk(chunk, batch.layer, batch.ids)
                work.count_neurons(len(batch.ids))
        report.counters = session.runner.count.snapshot()
        writer.end_run(run_id, "partial" if report.failed else "done")
    conn.close()
    report.seconds = time.perf_counter() - started
    return report


#: A run prunes this many neurons (whole batches) before it builds any of them: then it knows
#: what each costs to build (`build.finish_tokens`), which varies 20-fold from neuron to neuron
#: while pruning costs about the same for all. A crash loses at most one round's pruning.
ROUND_NEURONS = 2048


def _rounds(batches: Sequence[Batch], neurons: int) -> list[list[Batch]]:
    """Consecutive batches, cut whenever a round has reached `neurons` neurons."""
    out: list[list[Batch]] = []
    size = neurons
    for batch in batches:
        if size >= neurons:
            out.append([])
            size = 0
        out[-1].append(batch)
        size += len(batch.ids)
    return out


#: How many model tokens of pruning cost as much time as one token of the rest of a build.
#: Pruning feeds short prefixes in large batches, with nothing to do between passes; the rest
#: also computes importance matrices, proposes substitutes and assembles and calibrates tries.
#: Measured on the demo atlas's layer 3 with bench/n2g_cost_bench.py (bench/README.md, "A
#: neuron bar's time left": 2.91 and 2.68 in two runs on 2 CPU cores).
PRUNE_TOKENS_PER_BUILD_TOKEN = 2.9


class Work:
    """A run's work, in model tokens of the build's later steps: the pruning as it is run
    (`PRUNE_TOKENS_PER_BUILD_TOKEN` to one), and each pruned neuron's predicted build tokens
    (`build.finish_tokens`); neurons not pruned yet count as the mean pruned neuron (the
    batches are random neurons, so the pruned ones are a fair sample). Once a round is pruned
    its neurons' costs are known, not sampled: a bar's pace on this work predicts the time
    left far better than the neuron count does."""

    def __init__(self, neurons: int, report: Callable[[float, float], None] | None) -> None:
        self.neurons = neurons
        self.report = report
        self.pruned = 0  # neurons whose cost is known
        self.known = 0.0  # their pruning done and predicted build tokens
        self.done = 0.0

    def total(self) -> float:
        if not self.pruned:
            return float(self.neurons)
        return self.known + self.known / self.pruned * (self.neurons - self.pruned)

    def add_pruned(self, neurons: int, prune_tokens: int, build_tokens: float) -> None:
        """A batch pruned: its pruning is done, its build is now known to cost `build_tokens`."""
        spent = prune_tokens / PRUNE_TOKENS_PER_BUILD_TOKEN
        self.pruned += neurons
        self.known += spent + build_tokens
        self.done += spent
        self._say()

    def add_built(self, build_tokens: float) -> None:
        self.done += build_tokens
        self._say()

    def count_neurons(self, neurons: int) -> None:
        """A run that does not split its builds counts neurons."""
        self.pruned += neurons
        self.known += neurons
        self.done += neurons
        self._say()

    def _say(self) -> None:
        if self.report is not None:
            self.report(self.done, max(self.total(), self.done))


class _PrunedBatch(NamedTuple):
    """A batch after pruning: the neurons whose examples loaded, their pruned examples (None:
    pruning failed, build them one by one) and each neuron's predicted build tokens."""

    layer: int
    ids: list[str]
    pruned: list[Pruned] | None
    cost: dict[str, float]
    prune_tokens: int


def _prune_batch(run: _Chunk, batch: Batch, work: Work) -> _PrunedBatch:
    examples = _examples(run, batch.ids)
    before = run.session.runner.count.tokens
    ids = [ex.neuron_id for ex in examples]
    try:
        pruned = run.session.prune(batch.layer, examples, run.stored_full) if examples else []
        by_neuron = finish_tokens(run.session.runner, pruned, run.settings)
        cost = {ex.neuron_id: by_neuron.get(ex.neuron, 0.0) for ex in examples}
    except Exception as exc:
        log.warning(
            "layer %d batch failed pruning (%s); building its neurons one by one", batch.layer, exc
        )
        pruned, cost = None, dict.fromkeys(ids, 0.0)
    spent = run.session.runner.count.tokens - before
    work.add_pruned(len(batch.ids), spent, sum(cost.values()))
    return _PrunedBatch(batch.layer, ids, pruned, cost, spent)


def _finish_batch(run: _Chunk, batch: _PrunedBatch, work: Work) -> None:
    """Build and store a pruned batch; a failed batch is retried neuron by neuron."""
    if batch.pruned is None:
        _run_chunk(run, batch.layer, batch.ids)
        return
    # read again rather than held since pruning: a round's examples would take ~0.5 GB
    examples = [buildable_examples(run.conn, nid, run.settings) for nid in batch.ids]
    before = run.session.runner.count.tokens
    try:
        builds = run.session.finish(batch.layer, examples, batch.pruned, run.stored_full)
    except Exception as exc:
        log.warning("layer %d batch failed (%s); retrying its neurons one by one", batch.layer, exc)
        for nid in batch.ids:
            _run_chunk(run, batch.layer, [nid])
            work.add_built(batch.cost[nid])
        return
    per = (run.session.runner.count.tokens - before + batch.prune_tokens) / max(len(examples), 1)
    for build in builds:
        _store(run, build, per)
        work.add_built(batch.cost[build.examples.neuron_id])


def buildable_examples(conn, neuron_id: str, settings: N2GSettings) -> NeuronExamples:
    """A neuron's examples, or BadInput when no graph can be built from them."""
    ex = load_examples(conn, neuron_id, settings)
    if ex.a_max <= 0:
        raise BadInput(f"{neuron_id}: max activation {ex.a_max} ≤ 0, nothing fires")
    if not ex.build:
        raise BadInput(f"{neuron_id}: no train records to build from")
    return ex


class _Chunk(NamedTuple):
    """What every batch of one run shares (connections, model session, settings, report)."""

    conn: Any
    writer: Any
    session: Any
    settings: N2GSettings
    spec: Any
    run_id: int
    stored_full: Any
    report: RunReport
    progress: Any


def _examples(run: _Chunk, ids: list[str]) -> list[NeuronExamples]:
    """The examples of the neurons in `ids` a graph can be built from; the others are failed."""
    examples = []
    for nid in ids:
        try:
            examples.append(buildable_examples(run.conn, nid, run.settings))
        except NeuronAtlasError as exc:
            _fail(run.report, nid, exc, run.progress)
    return examples


def _store(run: _Chunk, build: NeuronBuild, tokens_share: float) -> None:
    """Evaluate and write one built neuron, or report it failed."""
    nid = build.examples.neuron_id
    try:
        finish_neuron(
            run.writer,
            build,
            run.settings,
            run.session.mask,
            run.spec,
            run.run_id,
            {"model_tokens_share": tokens_share},
        )
    except Exception as exc:
        _fail(run.report, nid, exc, run.progress)
        return
    run.report.done.append(nid)
    if run.progress:
        run.progress(nid, len(run.report.done))


def _run_chunk(run: _Chunk, layer: int, ids: list[str]) -> None:
    """Build (unsplit) and store one batch of one layer's neurons; a failed batch is retried
    neuron by neuron, so one bad neuron costs only itself."""
    examples = _examples(run, ids)
    if not examples:
        return
    count = run.session.runner.count
    before = count.tokens
    try:
        builds = run.session.build(layer, examples, run.stored_full)
    except Exception as exc:
        if len(examples) == 1:
            _fail(run.report, examples[0].neuron_id, exc, run.progress)
            return
        log.warning("layer %d batch failed (%s); retrying its neurons one by one", layer, exc)
        for ex in examples:
            _run_chunk(run, layer, [ex.neuron_id])
        return
    per = (count.tokens - before) / len(examples)
    for build in builds:
        _store(run, build, per)


def _fail(report: RunReport, nid: str, exc: BaseException, progress) -> None:
    message = str(exc) if isinstance(exc, NeuronAtlasError) else f"{type(exc).__name__}: {exc}"
    log.warning("%s skipped: %s", nid, message)
    report.failed.append((nid, message))
    if progress:
        progress(nid, len(report.done))
