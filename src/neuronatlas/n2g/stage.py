"""Neuron2Graph as a `Stage`: graphs for the strongest neurons of each layer, within a time
budget.

The budget bounds a build: once `seconds` are spent no new layer is started, and the budget is
recorded, so that a rerun with the same budget serves at once instead of spending it again
(`neuronatlas n2g`, or a larger budget, builds the rest).

The `n2g` command chooses its neurons instead (`neurons`, `layer` or `all_neurons`): then the
stage builds the graphs of exactly those, with the command's N2G settings and no budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from neuronatlas.stage import Progress, Report, Stage

if TYPE_CHECKING:
    from neuronatlas.n2g.run import RunReport
    from neuronatlas.n2g.settings import N2GSettings

log = logging.getLogger(__name__)

#: meta key recording the N2G time budget a build spent.
BUDGET_KEY = "build_n2g_budget"


@dataclass
class N2GStageSettings:
    """Which neurons get a graph, and how long the stage may spend."""

    per_layer: int = 8
    """Graphs for this many neurons per layer: those with the highest max activation."""
    seconds: float = 240.0
    """Stop starting new layers after this many seconds (the rest stays to do)."""
    model: str | None = None
    """Model hub id or folder; None or `default`: the model the atlas names."""
    device: str = "auto"
    """Where the model runs: auto (CUDA when available), cpu, cuda[:N]."""
    neurons: tuple[str, ...] = ()
    """Build these neurons' graphs instead of the strongest per layer (`n2g --neurons`)."""
    layer: int | None = None
    """Build the graphs of every stored neuron of this layer (`n2g --layer`)."""
    all_neurons: bool = False
    """Build the graphs of every stored neuron (`n2g --all`)."""
    overwrite: bool = False
    """Rebuild the chosen neurons that already have a graph."""
    reference_settings: bool = False
    """The reference code's thresholds and choices (`n2g.settings.reference_settings`)."""
    substitutes: tuple[str, ...] = ()
    """Substitute sources in order (model, embedding, casing, distilbert); () = model."""
    casings: str | None = None
    """word_to_casings.json for the casing source (None: spaCy's table)."""
    batch_neurons: int = 16
    """Neurons of one layer that share forward passes."""

    @property
    def chosen(self) -> bool:
        """Whether the neurons were chosen (by id, layer or all) instead of per layer."""
        return bool(self.neurons) or self.layer is not None or self.all_neurons

    def n2g_settings(self) -> N2GSettings:
        """The graph builder's own settings: the reference's or the defaults, with the
        substitute sources given."""
        from neuronatlas.n2g.settings import N2GSettings, reference_settings

        chosen = reference_settings() if self.reference_settings else N2GSettings()
        if self.substitutes:
            chosen = chosen.with_(substitute_sources=self.substitutes)
        return chosen


#: `run_n2g`'s signature: the local builder, or the same fanned out on Ray (`neuronatlas.scale`).
Builder = Callable[..., "RunReport"]


def build_chosen(
    builder: Builder,
    db: Path,
    settings: N2GStageSettings,
    progress: Progress,
    by_work: bool = False,
) -> Report:
    """Build the graphs of the neurons `settings` chose, with `builder`; a neuron that failed
    (or is not in the atlas) is named in `failed` and stays to do. The bar counts neurons, or
    with `by_work` (a builder taking `on_work`, `n2g.run.run_n2g`) thousands of model tokens,
    whose pace gives a truer time left; the detail then counts the graphs."""
    state = {"done": 0, "total": 0}
    work = {"done": 0.0, "total": 0.0}
    last = {"id": ""}
    progress(0, 0, "loading model")

    def show() -> None:
        if by_work and work["total"]:
            detail = f"k tokens · {state['done']:,}/{state['total']:,} graphs · {last['id']}"
            total = max(1, round(work["total"] / 1000))
            progress(min(total, round(work["done"] / 1000)), total, detail)
        else:
            progress(state["done"], state["total"], last["id"])

    def on_total(n: int) -> None:
        state["total"] = n
        show()

    def on_neuron(nid: str, _done: int) -> None:
        state["done"] += 1
        last["id"] = nid
        if not by_work:
            show()

    def on_work(done: float, total: float) -> None:
        work["done"], work["total"] = done, total
        show()

    extra = {"on_work": on_work} if by_work else {}
    report = builder(
        db,
        list(settings.neurons) or None,
        settings.layer,
        settings.all_neurons,
        settings.model,
        settings.n2g_settings(),
        settings.casings,
        settings.overwrite,
        settings.batch_neurons,
        progress=on_neuron,
        on_total=on_total,
        **extra,
    )
    detail = f"{len(report.done)} graphs built, {len(report.already)} already"
    if report.failed:
        detail += f", {len(report.failed)} failed"
    return Report(
        STAGE.name,
        not report.done and not report.failed,
        detail,
        failed=tuple(report.failed),
        result=report,
    )


def run(db: Path, settings: N2GStageSettings, progress: Progress) -> Report:
    """Build the missing graphs of the strongest neurons, layer by layer, within the budget
    (or, when the settings choose neurons, those neurons' graphs)."""
    from neuronatlas.ids import parse_id
    from neuronatlas.n2g.run import open_session, run_n2g

    if settings.chosen:
        return build_chosen(
            partial(run_n2g, device=settings.device), db, settings, progress, by_work=True
        )
    from neuronatlas.store import AtlasWriter, open_reader, reader
    from neuronatlas.store import n2g as n2g_store
    from neuronatlas.store.rows import encode_json

    conn = open_reader(db)
    try:
        targets = reader.strongest_neurons(conn, settings.per_layer)
        have = n2g_store.graph_ids(conn)
        spent = reader.meta(conn).get(BUDGET_KEY)
    finally:
        conn.close()
    todo = [t for t in targets if t not in have]
    if not todo:
        return Report(STAGE.name, True, f"{len(targets):,} graphs already built")
    budget = encode_json({"per_layer": settings.per_layer, "seconds": settings.seconds})
    if spent == budget:
        return Report(
            STAGE.name, True, f"{len(targets) - len(todo):,} graphs (time budget spent earlier)"
        )
    started = time.monotonic()
    built = 0
    failed: list[tuple[str, str]] = []
    by_layer: dict[int, list[str]] = {}
    for nid in todo:
        by_layer.setdefault(parse_id(nid)[0], []).append(nid)
    session = open_session(db, settings.model, device=settings.device)
    for i, (_layer, ids) in enumerate(sorted(by_layer.items())):
        if time.monotonic() - started > settings.seconds:
            log.info(
                "N2G time budget of %.0f s reached; %d layers left",
                settings.seconds,
                len(by_layer) - i,
            )
            break
        report = run_n2g(db, neurons=ids, session=session)
        built += len(report.done)
        failed += report.failed
        progress(i + 1, len(by_layer), f"{built} graphs")
    else:
        detail = f"{built} graphs built" + (f", {len(failed)} failed" if failed else "")
        return Report(STAGE.name, False, detail, failed=tuple(failed))
    with AtlasWriter(db) as writer:
        writer.set_meta({BUDGET_KEY: budget})
    return Report(
        STAGE.name,
        False,
        f"{built} graphs built within {settings.seconds:.0f} s, {len(todo) - built} left",
        failed=tuple(failed),
    )


STAGE: Stage[N2GStageSettings] = Stage(
    name="n2g",
    settings=N2GStageSettings,
    run=run,
    writes=("n2g_graphs",),
    command="neuronatlas n2g --db ATLAS --all",
    needs=("scrape",),
    weight=0.20,
    summary="a Neuron2Graph graph (token patterns that fire the neuron) per strong neuron",
)
