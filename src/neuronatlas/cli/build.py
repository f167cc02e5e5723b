"""`neuronatlas demo` and `neuronatlas build`: every stage in one command, then serve."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from neuronatlas.cli.app import DeviceOption, SilentOption, console_err, exit_codes, stages_of
from neuronatlas.cli.serve import check_device
from neuronatlas.stage import Stage

if TYPE_CHECKING:
    from neuronatlas.pipeline import BuildSettings, StageProgress

#: Tokens the demo scrapes (`pipeline.DEMO_TOKENS`, which this module imports only when a
#: build runs, keeping `neuronatlas --help` fast; tests/test_stage_recipe.py checks they agree).
DEMO_TOKENS = 131_072
#: The demo's N2G graphs per layer and time budget (`pipeline.BuildSettings`'s, likewise).
DEMO_N2G_PER_LAYER = 1
DEMO_N2G_SECONDS = 90.0


def _run_with_progress(
    db: Path,
    settings: BuildSettings,
    silent: bool,
    also: StageProgress | None = None,
    stages: tuple[Stage[Any], ...] | None = None,
) -> None:
    """Run the build under one progress display: an overall bar with ETA and one per stage.
    `also` is told every progress event too (the explorer's build status)."""
    from neuronatlas.pipeline import build_atlas, stage_weight
    from neuronatlas.stages import STAGES
    from neuronatlas.store import check_writer

    stages = STAGES if stages is None else stages
    check_writer(db)  # refuse a file that is not an atlas before loading a model
    if silent:
        results = build_atlas(db, settings, also, stages)
    else:
        weights = {name: stage_weight(name, settings, stages) for name in settings.stages}
        total = sum(weights.values())
        columns = (
            TextColumn("{task.description:<10}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("[dim]{task.fields[detail]}"),
        )
        with Progress(*columns, console=console_err) as bars:
            overall = bars.add_task("atlas", total=total, detail="")
            tasks: dict[str, TaskID] = {}
            base = {
                name: sum(weights[n] for n in settings.stages[:i])
                for i, name in enumerate(settings.stages)
            }

            def on_progress(stage: str, fraction: float, detail: str) -> None:
                if stage not in tasks:
                    tasks[stage] = bars.add_task(stage, total=1.0, detail="")
                bars.update(tasks[stage], completed=fraction, detail=detail)
                bars.update(
                    overall, completed=base[stage] + weights[stage] * fraction, detail=stage
                )
                if also is not None:
                    also(stage, fraction, detail)

            results = build_atlas(db, settings, on_progress, stages)
    for r in results:
        state = "reused" if r.skipped else f"{r.seconds:,.0f} s"
        console_err.print(f"  {r.stage:<8} {state:>8}  {r.detail}", highlight=False)


# --llm for both demo and build (one definition, one help text)
LlmOption = Annotated[
    str | None,
    typer.Option(
        "--llm",
        metavar="SPEC",
        help="Also write explanations in words with this LLM (e.g. local:smollm2, "
        "openai:MODEL, http(s)://HOST/v1:MODEL) and rank each neuron's explanations by "
        "the embedding scorer. Default: LLM-free explanations only.",
    ),
]
LlmPerLayerOption = Annotated[
    int,
    typer.Option(help="--llm: explain this many strongest neurons per layer; 0 = all.", min=0),
]


def demo(
    db: Annotated[Path, typer.Option("--db", help="The atlas file to build or reuse.")] = Path(
        "atlas.db"
    ),
    port: Annotated[int, typer.Option(help="Port to serve on.", min=0, max=65535)] = 8000,
    host: Annotated[
        str, typer.Option(help="Interface to bind (loopback by default).")
    ] = "127.0.0.1",
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Build only; do not serve.")] = False,
    model: Annotated[
        str,
        typer.Option(help="Model: `default` (offline Gemma-3-270M), a hub id or a local folder."),
    ] = "default",
    corpus: Annotated[
        str,
        typer.Option(
            help="Corpus: `default` (offline Wikipedia extracts), a file or hf:NAME[:SPLIT]."
        ),
    ] = "default",
    tokens: Annotated[int, typer.Option(help="Tokens to scrape.", min=64)] = DEMO_TOKENS,
    embedder: Annotated[
        str,
        typer.Option(
            help="Sentence embedder for the map and search "
            "(all-mpnet-base-v2 is the seed's, ~5x slower)."
        ),
    ] = "all-MiniLM-L6-v2",
    n2g_per_layer: Annotated[
        int, typer.Option(help="N2G graphs per layer (strongest neurons).", min=0)
    ] = DEMO_N2G_PER_LAYER,
    n2g_seconds: Annotated[
        float, typer.Option(help="Time budget for N2G, seconds.")
    ] = DEMO_N2G_SECONDS,
    device: DeviceOption = "auto",
    llm: LlmOption = None,
    llm_per_layer: LlmPerLayerOption = 8,
    silent: SilentOption = False,
) -> None:
    """Build the atlas of the offline default model over the offline corpus, serving it
    from the start.

    The explorer shows the build's progress (stage, share done, time left; JSON at
    /api/build) until the scrape is written, then neuron pages and search while the later
    stages run, and the map once it is made. Every stage is resumable: run it again and it
    reuses what is done, serving in seconds.

    Example: neuronatlas demo --db atlas.db --port 8000

    Example: neuronatlas demo --db atlas.db --llm local:smollm2 --llm-per-layer 4
    """
    from neuronatlas.pipeline import BuildSettings

    settings = BuildSettings(
        model=model,
        corpus=corpus,
        tokens=tokens,
        embedder=embedder,
        n2g_per_layer=n2g_per_layer,
        n2g_seconds=n2g_seconds,
        device=device,
        llm=llm,
        llm_per_layer=llm_per_layer,
    )
    if not no_serve:
        _build_while_serving(db, settings, silent, host, port, device)
        return
    started = time.monotonic()
    _run_with_progress(db, settings, silent)
    console_err.print(f"atlas {db} ready in {time.monotonic() - started:,.0f} s", highlight=False)


def _build_while_serving(
    db: Path, settings: BuildSettings, silent: bool, host: str, port: int, device: str
) -> None:
    """Serve from the start while the build runs in a thread: the progress page until the
    scrape is written, then neuron pages and search, then the map (see `web.building`)."""
    import threading

    import uvicorn

    from neuronatlas.build_status import BuildStatus
    from neuronatlas.pipeline import stage_weight, stages_to_run
    from neuronatlas.store import check_writer
    from neuronatlas.web import create_app
    from neuronatlas.web.building import BuildingApp

    check_device(device)
    check_writer(db)  # a file that is not an atlas: one line, before a server or a model
    model = None if settings.model == "default" else settings.model
    status = BuildStatus(
        [stage.name for stage in stages_to_run(settings)],
        lambda name: stage_weight(name, settings),
    )
    local = host in ("127.0.0.1", "localhost", "::1")

    def explorer():
        return create_app(db, model=model, device=device, compress=not local)

    def build() -> None:
        started = time.monotonic()
        try:
            _run_with_progress(db, settings, silent, also=status)
        except BaseException as exc:
            status.finish(exc)
            console_err.print(
                f"the build stopped: {exc}; what is built stays served. Run the same command "
                "again to resume.",
                highlight=False,
                soft_wrap=True,
            )
            return
        status.finish()
        console_err.print(
            f"atlas {db} ready in {time.monotonic() - started:,.0f} s", highlight=False
        )

    worker = threading.Thread(target=build, name="neuronatlas-build", daemon=True)
    worker.start()
    shown = f"[{host}]" if ":" in host else host
    console_err.print(
        f"neuronatlas: serving {db} at [bold]http://{shown}:{port}/[/] while it is built "
        "(progress first, neuron pages and search once the scrape is written, the map when "
        "it is ready; Ctrl-C stops, a rerun resumes)",
        highlight=False,
        soft_wrap=True,
    )
    uvicorn.run(BuildingApp(status, explorer, db), host=host, port=port, log_level="warning")
    if worker.is_alive():
        console_err.print(
            "stopped before the build finished: run the same command again to resume",
            highlight=False,
        )


def build(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Option(help="Model: a hub id (e.g. gpt2), a local folder, or `default`.")
    ],
    corpus: Annotated[
        str,
        typer.Option(help="Corpus: hf:NAME[:SPLIT], a .txt/.jsonl/.parquet file, or `default`."),
    ],
    db: Annotated[Path, typer.Option("--db", help="The atlas file.")],
    tokens: Annotated[int, typer.Option(help="Tokens to scrape.", min=64)] = 1_000_000,
    context: Annotated[int, typer.Option(help="Tokens per excerpt.")] = 64,
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 16,
    embedder: Annotated[str, typer.Option(help="Sentence embedder.")] = "all-mpnet-base-v2",
    n2g_per_layer: Annotated[int, typer.Option(help="N2G graphs per layer.", min=0)] = 8,
    n2g_seconds: Annotated[float, typer.Option(help="Time budget for N2G, seconds.")] = 600.0,
    device: DeviceOption = "auto",
    llm: LlmOption = None,
    llm_per_layer: LlmPerLayerOption = 8,
    stages: Annotated[
        str | None,
        typer.Option(
            "--stages",
            help="Run only these stages, comma-separated, e.g. scrape,index,explain "
            "(default: every stage of the build, in order).",
            metavar="NAMES",
        ),
    ] = None,
    silent: SilentOption = False,
) -> None:
    """Build a full atlas (scrape, explanations, N2G, embeddings, map) of any causal LM.

    Example: neuronatlas build --model gpt2 --corpus hf:Skylion007/openwebtext --db gpt2.db

    Example: neuronatlas build --model gpt2 --corpus c.txt --db gpt2.db --llm openai:gpt-4o-mini
    """
    from neuronatlas.pipeline import BuildSettings

    settings = BuildSettings(
        model=model,
        corpus=corpus,
        tokens=tokens,
        context=context,
        scrape_batch_size=batch_size,
        embedder=embedder,
        n2g_per_layer=n2g_per_layer,
        n2g_seconds=n2g_seconds,
        device=device,
        llm=llm,
        llm_per_layer=llm_per_layer,
    )
    registry = stages_of(ctx)
    if stages is not None:
        settings.stages = _stage_names(stages, registry)
    _run_with_progress(db, settings, silent, stages=registry)


def _stage_names(value: str, registry: tuple[Stage[Any], ...]) -> tuple[str, ...]:
    """--stages NAMES as names of the registry (BadInput naming the known ones otherwise)."""
    from neuronatlas.errors import BadInput

    names = tuple(n.strip() for n in value.split(",") if n.strip())
    known = [stage.name for stage in registry]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise BadInput(f"--stages {value!r}: unknown {unknown}; choose from {', '.join(known)}")
    return names


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(epilog=exit_codes())(demo)
    app.command(epilog=exit_codes())(build)
