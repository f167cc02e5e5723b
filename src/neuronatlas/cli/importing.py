"""`neuronatlas import-openai`, `import-seed` and `export`: OpenAI files or the seed notebook's
database in, OpenAI/Parquet out."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from neuronatlas.cli.app import (
    EXIT_PARTIAL,
    DbOption,
    SilentOption,
    console_err,
    exit_codes,
    run_stage,
)


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


#: --overwrite of both importers (one definition, one help text)
OverwriteOption = Annotated[
    bool,
    typer.Option(help="Re-import neurons already imported (default: skip them, so reruns resume)."),
]


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
            help="The model id recorded in the atlas (a hub id or folder, used by live "
            "features). gpt2-small (12 x 3072) and gpt2-xl (48 x 6400) also give the shape, "
            "which an https source needs; any other id takes its shape from the files. "
            "Default: the export's neuronatlas.json, else the GPT-2 model of that shape."
        ),
    ] = None,
    layers: Annotated[str | None, typer.Option(help="Only these layers, e.g. 0-3 or 0,5.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Parser processes (default: one per CPU core; 0 parses in this process)."
        ),
    ] = None,
    overwrite: OverwriteOption = False,
    silent: SilentOption = False,
) -> None:
    """Import OpenAI neuron-explainer explanations and activation records into an atlas.

    Resumable and idempotent: neurons already imported are skipped. Broken or missing files
    are named on stderr, the rest is imported, and the exit code is 3. A folder written by
    `neuronatlas export --format openai` also gives back each explanation's source, scores
    and the model (its neuronatlas.json); N2G graphs and embeddings are not in OpenAI's
    format: run `n2g`, `embed` and `map` on the new atlas.

    Example: neuronatlas import-openai openai:gpt2-small --db gpt2.db --layers 0-1
    """
    from neuronatlas.openai.importer import ImportConfig, ImportResult, plan_import
    from neuronatlas.openai.stage import IMPORT_OPENAI
    from neuronatlas.store import check_writer

    check_writer(db)  # refuse a file that is not an atlas before reading the source
    plan = plan_import(
        ImportConfig(
            source=source, model=model, layers=layers, workers=workers, overwrite=overwrite
        )
    )
    if not silent:
        extras = (
            ""
            if plan.manifest is None
            else f", with a neuronatlas export's sources, scores and model ({plan.model_id})"
        )
        console_err.print(
            f"Found {escape(plan.description)}{escape(extras)}; "
            f"{len(plan.neurons):,} neurons to visit.",
            highlight=False,
            soft_wrap=True,
        )
    report = run_stage(IMPORT_OPENAI, db, plan.config, silent)  # plans again: a listing
    result = report.result
    assert isinstance(result, ImportResult)
    for skipped in result.skipped:
        sys.stderr.write(f"skipped {skipped.line()}\n")
    console_err.print(
        f"Imported {result.imported:,} neurons into {escape(str(db))}"
        f" ({result.already_done:,} already there, {len(result.skipped):,} skipped"
        f", {result.requests:,} HTTP requests).",
        highlight=False,
        soft_wrap=True,
    )
    if report.partial:
        raise typer.Exit(EXIT_PARTIAL)


#: Exit code of `import-seed` when SEED.db is not the notebook's database (the argument is
#: wrong, as for a usage error).
EXIT_NOT_SEED = 2


def import_seed(
    seed: Annotated[
        Path,
        typer.Argument(
            metavar="SEED.db",
            dir_okay=False,
            help="The seed notebook's SQLite database (its neurons and activations tables). "
            "Only read, never changed.",
        ),
    ],
    db: DbOption,
    embedder: Annotated[
        str,
        typer.Option(
            help="The embedder that made neurons.explanation_embedding (the notebook's is "
            "all-mpnet-base-v2): the tag of the imported vectors, and what semantic search "
            "embeds queries with."
        ),
    ] = "all-mpnet-base-v2",
    overwrite: OverwriteOption = False,
    silent: SilentOption = False,
) -> None:
    """Import the seed notebook's own SQLite database (records, explanations, embeddings).

    Its neurons with OpenAI's explanation, three scores and moments, its top and random
    records in the notebook's order, and its explanation embeddings tagged all-mpnet-base-v2
    (so search and similar neurons use them). The notebook stores no map: run
    `neuronatlas map` afterwards.

    Resumable and idempotent: neurons already imported are skipped. Bad rows are named on
    stderr, the rest is imported, and the exit code is 3. A file without the notebook's
    tables or columns exits with 2, naming what is missing.

    Example: neuronatlas import-seed seed.db --db gpt2-small.db
    """
    from neuronatlas.errors import NotASeedDatabase
    from neuronatlas.openai.seed_import import SeedImportConfig, SeedImportResult, describe_seed
    from neuronatlas.openai.stage import IMPORT_SEED

    config = SeedImportConfig(seed=seed, overwrite=overwrite, embedder=embedder)
    try:
        found = describe_seed(config, db)
    except NotASeedDatabase as exc:
        console_err.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(EXIT_NOT_SEED) from None
    if not silent:
        console_err.print(f"Found {escape(found)}.", highlight=False, soft_wrap=True)
    report = run_stage(IMPORT_SEED, db, config, silent)
    result = report.result
    assert isinstance(result, SeedImportResult)
    for skipped in result.skipped:
        sys.stderr.write(f"skipped {skipped.line()}\n")
    if result.orphan_records:
        sys.stderr.write(
            f"ignored {result.orphan_records:,} activations rows whose neuron_id is no row of "
            "neurons\n"
        )
    if not silent:
        console_err.print(
            f"Imported {result.imported:,} neurons and {result.embedded:,} embeddings into "
            f"{escape(str(db))} ({result.already_done:,} already there, "
            f"{len(result.skipped):,} skipped; model {result.model_id or 'unknown'}).",
            highlight=False,
            soft_wrap=True,
        )
    if report.partial:
        raise typer.Exit(EXIT_PARTIAL)


class ExportFormat(StrEnum):
    openai = "openai"
    parquet = "parquet"


def export(
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write into.")],
    db: DbOption,
    format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="openai: explanations/ + collated-activations/ (OpenAI's files, unchanged) "
            "and neuronatlas.json + neuronatlas/ (sources, scores, the model) that "
            "import-openai reads back; parquet: one table per relation.",
        ),
    ],
    silent: SilentOption = False,
) -> None:
    """Export an atlas as OpenAI neuron-explainer files or Parquet tables.

    Neither carries everything: N2G graphs, embeddings and the map stay behind (rerun `n2g`,
    `embed`, `map` after an import). The atlas file itself is the lossless export: copy it.

    Example: neuronatlas export --db gpt2.db --format openai exported/
    """
    if format is ExportFormat.parquet:
        from neuronatlas.openai.export import export_parquet

        counts = export_parquet(db, out)
        shown = ", ".join(f"{n:,} {t}" for t, n in counts.items())
        console_err.print(
            f"Wrote {shown} rows under {escape(str(out))}.", highlight=False, soft_wrap=True
        )
        return
    from neuronatlas.openai.export import export_openai

    with _bar("export", silent) as progress:
        result = export_openai(db, out, progress)
    console_err.print(
        f"Wrote {result.neurons:,} neurons ({result.files:,} files) under {escape(str(out))}.",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("import-openai", epilog=exit_codes(partial=True))(import_openai)
    app.command("import-seed", epilog=exit_codes(partial=True))(import_seed)
    app.command("export", epilog=exit_codes())(export)
