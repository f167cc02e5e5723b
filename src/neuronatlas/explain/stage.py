"""The two explanation stages: `explain` (top-token explanations, no model needed) and `llm`
(explanations in words by an LLM, for the strongest neurons of each layer)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neuronatlas.explain.llm_explainer import STAGE_NAME as LLM_NAME
from neuronatlas.explain.top_tokens import STAGE_NAME as EXPLAIN_NAME
from neuronatlas.explain.top_tokens import TopTokenSettings
from neuronatlas.stage import Progress, Report, Stage


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
    """Explain this many neurons per layer (those with the highest max activation); 0 = all.
    Used when no neurons are chosen below (a build chooses none)."""
    neurons: tuple[str, ...] = ()
    """Explain these neurons (`explain --neurons`)."""
    layer: int | None = None
    """Explain every stored neuron of this layer (`explain --layer`)."""
    all_neurons: bool = False
    """Explain every stored neuron (`explain --all`)."""
    max_neurons: int | None = None
    """Explain at most this many of the chosen neurons."""
    max_cost: float | None = None
    """Stop starting calls once this many USD are spent."""
    overwrite: bool = False
    """Ask again for neurons this model explained."""
    concurrency: int = 8
    """Requests in flight at once (HTTP)."""
    timeout: float = 60.0
    """Seconds per HTTP request."""
    usd_per_mtok: tuple[float, float] | None = None
    """Prices (in, out) in USD per million tokens, when the endpoint reports no cost."""
    retries: int = 5
    """Retries of a request after 429, 5xx or a timeout."""

    @property
    def chosen(self) -> bool:
        """Whether the neurons were chosen (by id, layer or all) instead of per layer."""
        return bool(self.neurons) or self.layer is not None or self.all_neurons


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
    """LLM explanations (source llm:<model>) for the chosen neurons; failures stay to do, and
    so do the neurons a spent `max_cost` left unstarted (`result.not_started`)."""
    from neuronatlas.errors import BadInput
    from neuronatlas.explain.llm_explainer import explain_neurons
    from neuronatlas.llm import llm_session

    if settings.llm is None:
        raise BadInput("the llm stage needs an LLM: give --llm SPEC")
    # the atlas's response cache opens first: a file that is not an atlas is refused before
    # any LLM call
    with llm_session(
        db,
        settings.llm,
        settings.concurrency,
        settings.timeout,
        settings.usd_per_mtok,
        settings.retries,
    ) as client:
        if settings.chosen:
            chosen = list(settings.neurons) or None, settings.layer, settings.all_neurons
        else:
            chosen = targets(db, settings.per_layer), None, False
        report = explain_neurons(
            db,
            client,
            *chosen,
            settings.max_neurons,
            settings.max_cost,
            settings.overwrite,
            progress=lambda nid, d, t: progress(d, t, f"{d:,}/{t:,} {nid}"),
        )
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
