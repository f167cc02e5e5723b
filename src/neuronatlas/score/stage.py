"""Scoring as a `Stage`: in a build, the embedding scores of every explanation of the
LLM-explained neurons, so each of them shows (and maps) its best-scored explanation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neuronatlas.stage import Progress, Report, Stage


@dataclass
class ScoreStageSettings:
    """Which scorer scores which neurons' explanations."""

    scorer: str = "embedding"
    """A scorer of `score.SCORERS`: embedding (no LLM), simulation, detection, fuzzing."""
    embedder: str | None = None
    """The embedding scorer's sentence embedder (None: the atlas's own)."""
    llm: str | None = None
    """The LLM of the scorers that need one (SPEC, see `neuronatlas.llm`)."""
    llm_per_layer: int = 8
    """Score the explanations of this many strongest neurons per layer (the ones the `llm`
    stage explained); 0 = every neuron."""


def run(db: Path, settings: ScoreStageSettings, progress: Progress) -> Report:
    """Score the chosen neurons' explanations not yet scored by this scorer and judge."""
    from contextlib import nullcontext

    from neuronatlas.explain.stage import targets
    from neuronatlas.llm import llm_session
    from neuronatlas.score import get_scorer, score_neurons

    needs_llm = settings.scorer != "embedding"
    session = llm_session(db, settings.llm) if needs_llm and settings.llm else nullcontext()
    with session as client:
        report = score_neurons(
            db,
            get_scorer(settings.scorer, llm=client, embedder=settings.embedder),
            neurons=targets(db, settings.llm_per_layer),
            progress=lambda nid, d, t: progress(d, t, f"{d:,}/{t:,}"),
        )
    detail = f"{len(report.scored):,} scored, {report.already:,} already"
    if report.failed:
        detail += f", {len(report.failed)} without a score"
    return Report(
        STAGE.name,
        not report.scored,
        detail,
        failed=tuple((f"{nid} ({source})", why) for nid, source, why in report.failed),
        result=report,
    )


def _with_llm(build: object) -> bool:
    """In a build, scoring ranks the LLM's explanations: it runs only with `--llm`."""
    return getattr(build, "llm", None) is not None


STAGE: Stage[ScoreStageSettings] = Stage(
    name="score",
    settings=ScoreStageSettings,
    run=run,
    writes=("explanation_scores",),
    command="neuronatlas score --db ATLAS --scorer embedding --all",
    needs=("explain",),
    weight=0.05,
    in_build=_with_llm,
    summary="scores of the explanations (how well each predicts its neuron)",
)
