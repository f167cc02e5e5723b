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
from neuronatlas.n2g.build import NeuronBuild, build_layer
from neuronatlas.n2g.evaluate import evaluate
from neuronatlas.n2g.examples import NeuronExamples, VocabIndex, load_examples
from neuronatlas.n2g.explain import describe
from neuronatlas.n2g.forward import Runner
from neuronatlas.n2g.order import NeuronOrder, work_batches
from neuronatlas.n2g.predict import predict
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
) -> RunReport:
    """Build, evaluate and store graphs. progress(neuron_id, n_done_so_far) after each neuron.

    The batches (random neurons of one layer) run in a seeded random order (`n2g.order`;
    `order="id"`: id-contiguous batches in id order). The graphs are the same either way and
    the scores within float32's last bits; the random order makes any early part of the work a
    fair sample of it (so a progress bar's pace on it is an unbiased estimate of the rest), and
    a run stopped early leaves random neurons built (a rerun builds the rest)."""
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
        for batch in work_batches(targets, batch_neurons, settings.seed, order):
            _run_chunk(chunk, batch.layer, batch.ids)
        report.counters = session.runner.count.snapshot()
        writer.end_run(run_id, "partial" if report.failed else "done")
    conn.close()
    report.seconds = time.perf_counter() - started
    return report


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


def _run_chunk(run: _Chunk, layer: int, ids: list[str]) -> None:
    """Build and store one batch of one layer's neurons; a failed batch is retried neuron by
    neuron, so one bad neuron costs only itself."""
    conn, writer, session, settings, spec, run_id, stored_full, report, progress = run
    examples = []
    for nid in ids:
        try:
            examples.append(buildable_examples(conn, nid, settings))
        except NeuronAtlasError as exc:
            _fail(report, nid, exc, progress)
    if not examples:
        return
    before = session.runner.count.tokens
    try:
        builds = session.build(layer, examples, stored_full)
        per = (session.runner.count.tokens - before) / len(examples)
        pairs = [(b, per) for b in builds]
    except Exception as exc:
        if len(examples) == 1:
            _fail(report, examples[0].neuron_id, exc, progress)
            return
        log.warning("layer %d batch failed (%s); retrying its neurons one by one", layer, exc)
        for ex in examples:
            _run_chunk(run, layer, [ex.neuron_id])
        return
    for build, per in pairs:
        nid = build.examples.neuron_id
        try:
            finish_neuron(
                writer, build, settings, session.mask, spec, run_id, {"model_tokens_share": per}
            )
        except Exception as exc:
            _fail(report, nid, exc, progress)
            continue
        report.done.append(nid)
        if progress:
            progress(nid, len(report.done))


def _fail(report: RunReport, nid: str, exc: BaseException, progress) -> None:
    message = str(exc) if isinstance(exc, NeuronAtlasError) else f"{type(exc).__name__}: {exc}"
    log.warning("%s skipped: %s", nid, message)
    report.failed.append((nid, message))
    if progress:
        progress(nid, len(report.done))
