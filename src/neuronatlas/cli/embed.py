"""`neuronatlas embed`: the embed stage, a vector for every new or changed explanation."""

from __future__ import annotations

from typing import Annotated

import typer

from neuronatlas.cli.app import (
    DbOption,
    SilentOption,
    console,
    exit_codes,
    run_stage,
    say_what_is_stale,
)
from neuronatlas.store import open_writer


def embed(
    db: DbOption,
    embedder: Annotated[
        str | None,
        typer.Option(
            "--embedder",
            help="all-mpnet-base-v2 (offline), all-MiniLM-L6-v2 (offline), a local "
            "sentence-transformers folder or a hub id (online). Default: the atlas's embedder, "
            "else all-mpnet-base-v2.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Texts per batch.")] = 64,
    all_explanations: Annotated[
        bool,
        typer.Option(
            "--all-explanations", help="Embed every explanation, not only each neuron's primary."
        ),
    ] = False,
    reembed: Annotated[
        bool,
        typer.Option("--reembed", help="Replace every stored vector (needed to switch embedders)."),
    ] = False,
    silent: SilentOption = False,
) -> None:
    """Embed new or changed explanations (unit float32 vectors tagged with the embedder).

    Example: neuronatlas embed --db atlas.db --embedder all-MiniLM-L6-v2
    """
    from neuronatlas.embed.embed import EmbedConfig, EmbedResult
    from neuronatlas.embed.stage import STAGE
    from neuronatlas.relations.stage import SIMILAR, SimilarSettings

    config = EmbedConfig(
        embedder=embedder, batch_size=batch_size, all_explanations=all_explanations, reembed=reembed
    )
    open_writer(db, create=False).close()  # refuse (or migrate) before loading an embedder
    result = run_stage(STAGE, db, config, silent).result
    assert isinstance(result, EmbedResult)
    run_stage(SIMILAR, db, SimilarSettings(), silent)  # new vectors: new neighbours
    console.print(
        f"{result.embedder}: embedded {result.embedded}, {result.unchanged} already current"
    )
    say_what_is_stale(db)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(epilog=exit_codes())(embed)
