"""`neuronatlas explain` and `neuronatlas score`: LLM explanations and the scorers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neuronatlas.cli.app import (
    EXIT_PARTIAL,
    DbOption,
    JsonOption,
    SilentOption,
    console,
    console_err,
    exit_codes,
    print_json,
    run_stage,
    say_what_is_stale,
)

NeuronsOption = Annotated[
    str | None,
    typer.Option("--neurons", help="Comma-separated neuron ids (L05N0123, L5N123 or 5:123)."),
]
LayerOption = Annotated[int | None, typer.Option("--layer", help="Every stored neuron of layer L.")]
AllOption = Annotated[bool, typer.Option("--all", help="Every stored neuron.")]
LlmHelp = (
    "openai:MODEL (key in OPENAI_API_KEY), http(s)://HOST/v1:MODEL (any OpenAI-compatible "
    "server), local:smollm2 (offline SmolLM2-135M-Instruct) or local:FOLDER_OR_HUB_ID."
)


def _ids(neurons: str | None) -> list[str] | None:
    return [n.strip() for n in neurons.split(",") if n.strip()] if neurons else None


def _prices(value: str | None) -> tuple[float, float] | None:
    from neuronatlas.errors import BadInput

    if value is None:
        return None
    try:
        usd_in, usd_out = (float(x) for x in value.split(","))
    except ValueError:
        raise BadInput(f"--usd-per-mtok {value!r}: expected IN,OUT, e.g. 0.15,0.60") from None
    return usd_in, usd_out


def _usage_line(usage) -> str:
    cost = "" if usage.cost is None else f", ${usage.cost:.4f}"
    return (
        f"{usage.calls} calls ({usage.cached_calls} cached), {usage.prompt_tokens:,} prompt + "
        f"{usage.completion_tokens:,} completion tokens, {usage.seconds:.1f} s of calls{cost}"
    )


def explain(
    db: DbOption,
    llm: Annotated[str, typer.Option("--llm", help=LlmHelp, metavar="SPEC")],
    neurons: NeuronsOption = None,
    layer: LayerOption = None,
    all_: AllOption = False,
    max_neurons: Annotated[
        int | None, typer.Option("--max-neurons", help="Explain at most N neurons.", min=1)
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Requests in flight at once (HTTP).", min=1)
    ] = 8,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost",
            help="Stop starting calls once this many USD are spent (needs usage with cost "
            "from the endpoint, or --usd-per-mtok).",
        ),
    ] = None,
    usd_per_mtok: Annotated[
        str | None,
        typer.Option("--usd-per-mtok", help="Prices IN,OUT in USD per million tokens."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per HTTP request.")] = 60.0,
    retries: Annotated[
        int, typer.Option(help="Retries of a request after 429, 5xx or a timeout.", min=0)
    ] = 5,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Ask again for neurons this model explained.")
    ] = False,
    silent: SilentOption = False,
) -> None:
    """Write an explanation in words for each neuron with an LLM (source llm:MODEL).

    The prompt follows OpenAI's explainer (top records scaled 0–10, strongest tokens listed, a
    worked example). Answers are cached in the atlas, so a rerun costs nothing; neurons
    already explained by this model are skipped. A neuron whose call failed is named on
    stderr and left for the next run (exit code 3).

    Example: neuronatlas explain --db atlas.db --llm local:smollm2 --layer 3 --max-neurons 20
    """
    from neuronatlas.explain.llm_explainer import ExplainReport
    from neuronatlas.explain.stage import LLM, LLMStageSettings

    settings = LLMStageSettings(
        llm=llm,
        neurons=tuple(_ids(neurons) or ()),
        layer=layer,
        all_neurons=all_,
        max_neurons=max_neurons,
        max_cost=max_cost,
        overwrite=overwrite,
        concurrency=concurrency,
        timeout=timeout,
        usd_per_mtok=_prices(usd_per_mtok),
        retries=retries,
    )
    if not settings.chosen:  # the stage would take the strongest per layer: a build's choice
        from neuronatlas.errors import BadInput
        from neuronatlas.store import open_writer

        open_writer(db, create=False).close()  # refuse a file that is not an atlas first
        raise BadInput("say which neurons: --neurons ID,ID,..., --layer L or --all")
    stage_report = run_stage(LLM, db, settings, silent)
    report = stage_report.result
    assert isinstance(report, ExplainReport)
    for nid, why in report.failed:
        console_err.print(f"skipped {nid}: {why}", highlight=False, soft_wrap=True)
    if report.not_started:
        left = report.not_started
        named = ", ".join(left[:5]) + (", …" if len(left) > 5 else "")
        console_err.print(
            f"budget of ${max_cost} spent: {len(left)} neurons left for the next run ({named})",
            highlight=False,
        )
    console_err.print(
        f"explain: {len(report.done)} written, {len(report.already)} already explained, "
        f"{len(report.failed)} failed in {report.seconds:.1f} s; {_usage_line(report.usage)}",
        highlight=False,
    )
    if report.done:
        say_what_is_stale(db)
    if stage_report.partial or report.not_started:
        raise typer.Exit(EXIT_PARTIAL)


def score(
    db: DbOption,
    scorer: Annotated[
        str,
        typer.Option(
            "--scorer", help="embedding (no LLM), simulation, detection or fuzzing (need --llm)."
        ),
    ],
    neuron_id: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="Score TEXT as an explanation of this neuron."),
    ] = None,
    text: Annotated[
        str | None, typer.Argument(metavar="[TEXT]", help="The explanation to score (not stored).")
    ] = None,
    llm: Annotated[str | None, typer.Option("--llm", help=LlmHelp, metavar="SPEC")] = None,
    embedder: Annotated[
        str | None,
        typer.Option(
            help="Sentence embedder of the embedding scorer; default: the atlas's own "
            "(the one its explanations were embedded with), else all-mpnet-base-v2."
        ),
    ] = None,
    neurons: NeuronsOption = None,
    layer: LayerOption = None,
    all_: AllOption = False,
    max_neurons: Annotated[
        int | None, typer.Option("--max-neurons", help="Score at most N neurons.", min=1)
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="LLM requests in flight at once (HTTP).", min=1)
    ] = 8,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Score again what this scorer scored.")
    ] = False,
    json: JsonOption = False,
    silent: SilentOption = False,
) -> None:
    """Score explanations: every stored explanation of the chosen neurons, or one given TEXT.

    Scores are stored per explanation, scorer and judge (the LLM or embedder) and shown by
    `show` and the neuron page. An explanation that cannot be scored honestly (too few
    records, answers that do not parse) is named on stderr and gets no score (exit code 3).
    With ID and TEXT nothing is stored; --json prints {score, details, ...}.

    Example: neuronatlas score --db atlas.db --layer 3 --scorer embedding

    Example: neuronatlas score L03N0042 "the word Paris" --db atlas.db --scorer embedding --json
    """
    from neuronatlas.errors import BadInput
    from neuronatlas.score.run import ScoreReport
    from neuronatlas.score.stage import STAGE, ScoreStageSettings
    from neuronatlas.store import open_reader, open_writer

    if (neuron_id is None) != (text is None):
        raise BadInput('give both ID and "TEXT" to score a text, or neither to score the atlas')
    if neuron_id is not None and text is not None:
        open_reader(db).close()
        _score_one(db, scorer, neuron_id, text, llm, embedder, concurrency, json)
        return
    open_writer(db, create=False).close()  # scores are stored: refuse a file that cannot
    settings = ScoreStageSettings(
        scorer=scorer,
        embedder=embedder,
        llm=llm,
        neurons=tuple(_ids(neurons) or ()),
        layer=layer,
        all_neurons=all_,
        max_neurons=max_neurons,
        concurrency=concurrency,
        overwrite=overwrite,
    )
    if not settings.chosen:  # the stage would take the strongest per layer: a build's choice
        raise BadInput("say which neurons: --neurons ID,ID,..., --layer L or --all")
    stage_report = run_stage(STAGE, db, settings, silent)
    report = stage_report.result
    assert isinstance(report, ScoreReport)
    for nid, source, why in report.failed:
        console_err.print(f"skipped {nid} ({source}): {why}", highlight=False, soft_wrap=True)
    summary = _by_source(report.scored)
    if json:
        print_json(
            {
                "scorer": scorer,
                "judge": report.judge,
                "by_source": summary,
                "failed": len(report.failed),
                "already": report.already,
            }
        )
    else:
        for source, s in summary.items():
            console_err.print(
                f"  {source:<24} {s['n']:>6} scored, mean {s['mean']:.3f}", highlight=False
            )
        console_err.print(
            f"score: {len(report.scored)} scored, {report.already} already scored, "
            f"{len(report.failed)} without a score in {report.seconds:.1f} s",
            highlight=False,
        )
    if report.scored:
        say_what_is_stale(db)
    if stage_report.partial:
        raise typer.Exit(EXIT_PARTIAL)


def _score_one(
    db: Path,
    scorer: str,
    neuron_id: str,
    text: str,
    llm: str | None,
    embedder: str | None,
    concurrency: int,
    json: bool,
) -> None:
    """Score one TEXT as an explanation of one neuron and print it (nothing is stored, so
    this is no run of the score stage)."""
    from contextlib import nullcontext

    from neuronatlas.llm import llm_session
    from neuronatlas.score import get_scorer, score_text
    from neuronatlas.store import open_reader
    from neuronatlas.store.llm import atlas_embedder

    if embedder is None and scorer == "embedding":
        conn = open_reader(db)
        embedder = atlas_embedder(conn)
        conn.close()
    with llm_session(db, llm, concurrency) if llm else nullcontext() as client:
        result = score_text(db, neuron_id, text, get_scorer(scorer, llm=client, embedder=embedder))
    if json:
        print_json(result)
    else:
        console.print(
            f"{result['neuron_id']} {scorer} ({result['judge']}): {result['score']:.3f}",
            highlight=False,
        )


def _by_source(scored: list[tuple[str, str, float]]) -> dict[str, dict]:
    out: dict[str, list[float]] = {}
    for _, source, value in scored:
        out.setdefault(source, []).append(value)
    return {s: {"n": len(v), "mean": sum(v) / len(v)} for s, v in sorted(out.items())}


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(epilog=exit_codes(partial=True))(explain)
    app.command(epilog=exit_codes(partial=True))(score)
