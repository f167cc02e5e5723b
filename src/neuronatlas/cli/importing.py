"""`neuronatlas import-openai` and `neuronatlas export`: OpenAI files in, OpenAI/Parquet out."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from neuronatlas.cli.app import EXIT_PARTIAL, DbOption, SilentOption, app, console_err


@contextmanager
def _bar(label: str, silent: bool):
    """A rich progress bar on stderr (neurons/s, ETA); yields a `(done, total)` callback."""
    if silent:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class _Rate(TextColumn):
        def render(self, task):  # neurons per second
            speed = task.finished_speed or task.speed
            return super().render(task) if speed is None else f"{speed:,.0f} neurons/s"

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _Rate(""),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console_err, transient=False) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@app.command("import-openai")
def import_openai(
    source: Annotated[
        str,
        typer.Argument(
            help="A folder (seed layout explanations/ + activations/, or OpenAI's explanations/ + "
            "collated-activations/, maybe under gpt2-small/ or data/), an https base URL, "
            "or openai:gpt2-small / openai:gpt2-xl."
        ),
    ],
    db: DbOption,
    model: Annotated[
        str | None,
        typer.Option(
            help="gpt2-small (12 x 3072) or gpt2-xl (48 x 6400): the shape when the source "
            "cannot tell (https URLs), and the model id recorded in the atlas."
        ),
    ] = None,
    layers: Annotated[str | None, typer.Option(help="Only these layers, e.g. 0-3 or 0,5.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Parser processes (default: one per CPU core; 0 parses in this process)."
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Re-import neurons already imported (default: skip them, so reruns resume)."
        ),
    ] = False,
    silent: SilentOption = False,
) -> None:
    """Import OpenAI neuron-explainer explanations and activation records into an atlas.

    Resumable and idempotent: neurons already imported are skipped. Broken or missing files
    are named on stderr, the rest is imported, and the exit code is 3.

    Example: neuronatlas import-openai openai:gpt2-small --db gpt2.db --layers 0-1
    """
    from neuronatlas.openai.importer import ImportConfig, plan_import, run_import
    from neuronatlas.store import check_writer

    check_writer(db)  # refuse a file that is not an atlas before reading the source
    plan = plan_import(
        ImportConfig(
            source=source, model=model, layers=layers, workers=workers, overwrite=overwrite
        )
    )
    if not silent:
        console_err.print(
            f"Found {escape(plan.description)}; {len(plan.neurons):,} neurons to visit.",
            highlight=False,
            soft_wrap=True,
        )
    with _bar("import", silent) as progress:
        result = run_import(plan, db, progress)
    for skipped in result.skipped:
        sys.stderr.write(f"skipped {skipped.line()}\n")
    if not silent:
        console_err.print(
            f"Imported {result.imported:,} neurons into {escape(str(db))}"
            f" ({result.already_done:,} already there, {len(result.skipped):,} skipped"
            f", {result.requests:,} HTTP requests).",
            highlight=False,
            soft_wrap=True,
        )
    if result.skipped:
        raise typer.Exit(EXIT_PARTIAL)


class ExportFormat(StrEnum):
    openai = "openai"
    parquet = "parquet"


@app.command("export")
def export(
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write into.")],
    db: DbOption,
    format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="openai: explanations/ + collated-activations/ that import-openai "
            "reads back; parquet: one table per relation.",
        ),
    ],
    silent: SilentOption = False,
) -> None:
    """Export an atlas as OpenAI neuron-explainer files or Parquet tables.

    Example: neuronatlas export --db gpt2.db --format openai exported/
    """
    if format is ExportFormat.parquet:
        from neuronatlas.openai.export import export_parquet

        counts = export_parquet(db, out)
        if not silent:
            shown = ", ".join(f"{n:,} {t}" for t, n in counts.items())
            console_err.print(
                f"Wrote {shown} rows under {escape(str(out))}.", highlight=False, soft_wrap=True
            )
        return
    from neuronatlas.openai.export import export_openai

    with _bar("export", silent) as progress:
        result = export_openai(db, out, progress)
    if not silent:
        console_err.print(
            f"Wrote {result.neurons:,} neurons ({result.files:,} files) under {escape(str(out))}.",
            highlight=False,
            soft_wrap=True,
        )
