"""`neuronatlas migrate`: bring an atlas written by an older neuronatlas up to date."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from neuronatlas.cli.app import DbOption, SilentOption, console, exit_codes, neuron_bar


def migrate(
    db: DbOption,
    characters: Annotated[
        bool,
        typer.Option(
            "--characters",
            help="Also repair records that show U+FFFD for characters the tokenizer split into "
            "byte pieces (atlases scraped before whole characters): cuts the recorded corpus "
            "into windows again with the model's tokenizer (both must be on this machine), "
            "re-decodes the matching records, rewrites their neurons' top-token explanations "
            "and rebuilds the search indexes.",
        ),
    ] = False,
    silent: SilentOption = False,
) -> None:
    """Apply, in place, every schema migration the atlas lacks (each in its own transaction,
    so an interrupted run leaves a valid atlas that the next run finishes).

    Read-only commands (show, search, serve, …) refuse an older atlas and name this command;
    commands that write (build, scrape, n2g, explain, …) migrate on their own.

    Example: neuronatlas migrate --db atlas.db --characters
    """
    from neuronatlas.store import open_writer, probe_atlas
    from neuronatlas.store.migrations import current_version

    was = probe_atlas(db).version
    started = time.monotonic()
    conn = open_writer(db, create=False)  # refuses what is not an atlas, or a newer one
    now = current_version(conn)
    conn.close()
    if now == was:
        console.print(f"{db}: schema {now}, already up to date", soft_wrap=True)
    else:
        took = time.monotonic() - started
        console.print(f"{db}: schema {was} → {now} in {took:.1f} s", soft_wrap=True)
    if characters:
        _repair_characters(db, silent)


def _repair_characters(db, silent: bool) -> None:
    from neuronatlas.scrape.characters import repair_characters

    started = time.monotonic()
    if silent:
        report = repair_characters(db)
    else:
        with neuron_bar("corpus windows") as (update, task):
            report = repair_characters(
                db, lambda done, total: update(task, completed=done, total=total or None)
            )
    b, a = report.before, report.after
    console.print(
        f"{db}: whole characters: {report.excerpts_repaired} excerpts re-decoded "
        f"({report.windows_read} corpus windows read), {len(report.neurons)} neurons, "
        f"{report.explanations_rewritten} top-token explanations rewritten in "
        f"{time.monotonic() - started:.1f} s; records with U+FFFD {b.records} → {a.records}, "
        f"explanations {b.explanations} → {a.explanations} (primary {b.primary_explanations} "
        f"→ {a.primary_explanations})",
        soft_wrap=True,
    )
    left = {k: v for k, v in a.by_source.items() if v}
    if left:
        console.print(
            "explanations still holding U+FFFD, by source: "
            + ", ".join(f"{k} {v}" for k, v in sorted(left.items()))
            + " (rerun that stage with --overwrite, e.g. neuronatlas n2g)",
            soft_wrap=True,
        )
    if report.note:
        console.print(report.note, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(epilog=exit_codes())(migrate)
