"""Neuron2Graph as a `Stage`: graphs for the strongest neurons of each layer, within a time
budget.

The budget bounds a build: once `seconds` are spent no new layer is started, and the budget is
recorded, so that a rerun with the same budget serves at once instead of spending it again
(`neuronatlas n2g`, or a larger budget, builds the rest).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from neuronatlas.stage import Progress, Report, Stage

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


def run(db: Path, settings: N2GStageSettings, progress: Progress) -> Report:
    """Build the missing graphs of the strongest neurons, layer by layer, within the budget."""
    from neuronatlas.ids import parse_id
    from neuronatlas.n2g.run import open_session, run_n2g
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
