"""`neuronatlas n2g`: build Neuron2Graph graphs for stored neurons (thin over n2g.run)."""

from __future__ import annotations

from typing import Annotated

import typer

from neuronatlas.cli.app import (
    EXIT_PARTIAL,
    DbOption,
    DeviceOption,
    SilentOption,
    console_err,
    exit_codes,
    run_stage,
)


def n2g(
    db: DbOption,
    neurons: Annotated[
        str | None,
        typer.Option("--neurons", help="Comma-separated neuron ids (L05N0123, L5N123 or 5:123)."),
    ] = None,
    layer: Annotated[
        int | None, typer.Option("--layer", help="Every stored neuron of layer L.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every stored neuron.")] = False,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model hub id or folder; default: the model the atlas names."),
    ] = None,
    reference_settings: Annotated[
        bool,
        typer.Option("--reference-settings", help="The reference code's thresholds and choices."),
    ] = False,
    substitutes: Annotated[
        str | None,
        typer.Option(
            "--substitutes",
            help="Substitute sources in order: model, embedding, casing, "
            "distilbert (comma-separated). Default: model.",
        ),
    ] = None,
    casings: Annotated[
        str | None,
        typer.Option(
            "--casings",
            help="word_to_casings.json (lowercase word → [[casing, count], ...]) for "
            "the casing source; default: spaCy's en_lexeme_prob table.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Rebuild neurons that already have a graph.")
    ] = False,
    batch_neurons: Annotated[
        int,
        typer.Option(
            "--batch-neurons",
            min=1,
            help="Neurons of one layer that share forward passes (chosen at random from "
            "the layer, seeded; scores can differ in the last float bits with the batches' "
            "make-up).",
        ),
    ] = 16,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="local (this process) or ray (an actor pool on a Ray cluster; needs "
            "the optional ray extra).",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="--engine ray: join this cluster; default: a local Ray.",
            metavar="ADDR",
        ),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards",
            help="--engine ray: number of actors (default: one per free CPU).",
            metavar="N",
        ),
    ] = None,
    device: DeviceOption = "auto",
    silent: SilentOption = False,
) -> None:
    """Build, evaluate and store a Neuron2Graph graph per neuron (resumable).

    Each graph predicts its neuron's activation from token patterns; its firing-token
    precision/recall/F1 against token and n-gram lookup baselines, its ev_correlation_score and
    an explanation (source 'n2g') are stored. Neurons that already have a graph are skipped.
    Each batch holds neurons of one layer chosen at random (seeded by the n2g seed) and the
    batches run in a random order, and a run stopped early leaves random neurons built; a
    rerun builds the rest. Up to 2,048 neurons are pruned before they are built, so the bar
    counts thousands of model tokens (what a neuron costs varies 20-fold) and its time left
    follows the work, with the graphs done beside it. The graphs
    are those of id-order batches; scores can differ in the last float bits (about 1e-10
    relative) with the batches' make-up, as they do with --batch-neurons.

    Example: neuronatlas n2g --db atlas.db --layer 3
    """
    from neuronatlas.errors import BadInput
    from neuronatlas.n2g.run import RunReport
    from neuronatlas.n2g.stage import STAGE, N2GStageSettings
    from neuronatlas.store import open_writer

    if engine not in ("local", "ray"):
        raise BadInput(f"--engine {engine!r}: choose local or ray")
    open_writer(db, create=False).close()  # refuse (or migrate) before loading the model
    settings = N2GStageSettings(
        model=model,
        device=device,
        neurons=tuple(n.strip() for n in neurons.split(",") if n.strip()) if neurons else (),
        layer=layer,
        all_neurons=all_,
        overwrite=overwrite,
        reference_settings=reference_settings,
        substitutes=tuple(s.strip() for s in substitutes.split(",") if s.strip())
        if substitutes
        else (),
        casings=casings,
        batch_neurons=batch_neurons,
    )
    settings.n2g_settings()  # a bad --substitutes is named before anything runs
    if engine == "local" and (ray_address or shards):
        raise BadInput("--ray-address and --shards need --engine ray")
    if not settings.chosen:  # the stage would take the strongest per layer: a build's choice
        raise BadInput("say which neurons: --neurons ID,ID,..., --layer L or --all")
    if engine == "ray":
        from dataclasses import asdict

        from neuronatlas.scale.stage import N2G_ON_RAY, RayN2GSettings

        on_ray = RayN2GSettings(
            **asdict(settings), ray_address=ray_address, workers=shards, quiet=silent
        )
        stage_report = run_stage(N2G_ON_RAY, db, on_ray, silent)
    else:
        stage_report = run_stage(STAGE, db, settings, silent)
    report = stage_report.result
    assert isinstance(report, RunReport)
    for nid, why in report.failed:
        console_err.print(f"skipped {nid}: {why}", highlight=False)
    c = report.counters
    console_err.print(
        f"n2g: {len(report.done)} built, {len(report.already)} already had a graph, "
        f"{len(report.failed)} skipped in {report.seconds:.1f}s"
        + (f"; {c.get('tokens', 0)} model tokens in {c.get('passes', 0)} passes" if c else ""),
        highlight=False,
    )
    if stage_report.partial:
        raise typer.Exit(EXIT_PARTIAL)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(epilog=exit_codes(partial=True))(n2g)
