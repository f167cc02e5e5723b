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
    """The embedding scorer's sentence embedder (None: the atlas's own, the one its
    explanations were embedded with, else all-mpnet-base-v2)."""
    llm: str | None = None
    """The LLM of the scorers that need one (SPEC, see `neuronatlas.llm`)."""
    llm_per_layer: int = 8
    """Score the explanations of this many strongest neurons per layer (the ones the `llm`
    stage explained); 0 = every neuron. Used when no neurons are chosen below (a build
    chooses none)."""
    neurons: tuple[str, ...] = ()
    """Score these neurons' explanations (`score --neurons`)."""
    layer: int | None = None
    """Score the explanations of every stored neuron of this layer (`score --layer`)."""
    all_neurons: bool = False
    """Score the explanations of every stored neuron (`score --all`)."""
    max_neurons: int | None = None
    """Score at most this many of the chosen neurons."""
    concurrency: int = 8
    """LLM requests in flight at once (HTTP)."""
    overwrite: bool = False
    """Score again what this scorer and judge scored."""

    @property
    def chosen(self) -> bool:
        """Whether the neurons were chosen (by id, layer or all) instead of per layer."""
        return bool(self.neurons) or self.layer is not None or self.all_neurons


def run(db: Path, settings: ScoreStageSettings, progress: Progress) -> Report:
    """Score the chosen neurons' explanations not yet scored by this scorer and judge."""
    from contextlib import nullcontext

    from neuronatlas.explain.stage import targets
    from neuronatlas.llm import llm_session
    from neuronatlas.score import get_scorer, score_neurons

    embedder = settings.embedder
    if embedder is None and settings.scorer == "embedding":
        embedder = _atlas_embedder(db)
    needs_llm = settings.scorer != "embedding"
    session = (
        llm_session(db, settings.llm, settings.concurrency)
        if needs_llm and settings.llm
        else nullcontext()
    )
    with session as client:
        if settings.chosen:
            chosen = list(settings.neurons) or None, settings.layer, settings.all_neurons
        else:
            chosen = targets(db, settings.llm_per_layer), None, False
        report = score_neurons(
            db,
            get_scorer(settings.scorer, llm=client, embedder=embedder),
            *chosen,
            settings.max_neurons,
            settings.overwrite,
            progress=lambda nid, d, t: progress(d, t, f"{d:,}/{t:,} {nid}"),
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


def _atlas_embedder(db: Path) -> str | None:
    """The embedder this atlas's explanations were embedded with (None: not embedded)."""
    from neuronatlas.store import open_reader
    from neuronatlas.store.llm import atlas_embedder

    conn = open_reader(db)
    try:
        return atlas_embedder(conn)
    finally:
        conn.close()


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
