"""The two explanation stages: `explain` (top-token explanations, no model needed) and `llm`
(explanations in words by an LLM, for the strongest neurons of each layer)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from neuronatlas.explain.llm_explainer import STAGE_NAME as LLM_NAME
from neuronatlas.explain.top_tokens import STAGE_NAME as EXPLAIN_NAME
from neuronatlas.explain.top_tokens import TopTokenSettings
from neuronatlas.stage import Progress, Report, Stage

log = logging.getLogger(__name__)


def run_explain(db: Path, settings: TopTokenSettings, progress: Progress) -> Report:
    """A top-token explanation for every neuron that lacks one."""
    from neuronatlas.explain.top_tokens import explain_atlas

    n = explain_atlas(db, settings, progress=lambda d, t: progress(d, t, f"{d:,}/{t:,}"))
    return Report(EXPLAIN.name, n == 0, f"{n:,} top-token explanations written", result=n)


@dataclass
class LLMStageSettings:
    """Which LLM explains which neurons."""

    llm: str | None = None
    """The LLM's SPEC (`neuronatlas.llm`); the stage runs in a build only when one is given."""
    per_layer: int = 8
    """Explain this many neurons per layer (those with the highest max activation); 0 = all."""


def targets(db: Path, per_layer: int) -> list[str]:
    """The neurons the LLM stages work on: the `per_layer` strongest of each layer, or all."""
    from neuronatlas.store import open_reader, reader

    conn = open_reader(db)
    try:
        if per_layer > 0:
            return reader.strongest_neurons(conn, per_layer)
        return reader.neuron_ids(conn)
    finally:
        conn.close()


def run_llm(db: Path, settings: LLMStageSettings, progress: Progress) -> Report:
    """LLM explanations (source llm:<model>) for the chosen neurons; failures stay to do."""
    from neuronatlas.errors import BadInput
    from neuronatlas.explain.llm_explainer import explain_neurons
    from neuronatlas.llm import llm_session

    if settings.llm is None:
        raise BadInput("the llm stage needs an LLM: give --llm SPEC")
    with llm_session(db, settings.llm) as client:
        report = explain_neurons(
            db,
            client,
            neurons=targets(db, settings.per_layer),
            progress=lambda nid, d, t: progress(d, t, f"{d:,}/{t:,} {nid}"),
        )
    for nid, why in report.failed:
        log.warning("LLM explanation of %s failed (left for the next build): %s", nid, why)
    detail = f"{len(report.done):,} written, {len(report.already):,} already"
    if report.failed:
        detail += f", {len(report.failed)} failed (rerun to retry)"
    return Report(
        LLM.name,
        not report.done and not report.failed,
        detail,
        failed=tuple(report.failed),
        result=report,
    )


def with_llm(build: object) -> bool:
    """The LLM stages run in a build only when it names an LLM (`--llm`)."""
    return getattr(build, "llm", None) is not None


EXPLAIN: Stage[TopTokenSettings] = Stage(
    name=EXPLAIN_NAME,
    settings=TopTokenSettings,
    run=run_explain,
    writes=("explanations",),
    command="neuronatlas build --db ATLAS",
    needs=("scrape",),
    weight=0.05,
    former_names=("explain-top-tokens",),
    summary="an explanation from each neuron's top tokens",
)
LLM: Stage[LLMStageSettings] = Stage(
    name=LLM_NAME,
    settings=LLMStageSettings,
    run=run_llm,
    writes=("llm_explanations",),
    command="neuronatlas explain --db ATLAS --llm SPEC --all",
    needs=("scrape",),
    weight=0.30,
    in_build=with_llm,
    former_names=("explain-llm",),
    summary="explanations in words written by an LLM",
)
STAGE = EXPLAIN
