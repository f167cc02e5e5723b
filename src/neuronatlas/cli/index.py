"""`neuronatlas index`: the token index (and optionally the excerpt full-text index) that
token search and the similar-by-tokens neighbours read."""

from __future__ import annotations

from typing import Annotated

import typer

from neuronatlas.cli.app import DbOption, SilentOption, console, exit_codes, run_stage
from neuronatlas.store import open_writer


def index(
    db: DbOption,
    excerpts: Annotated[
        bool,
        typer.Option(
            "--excerpts/--no-excerpts",
            help="Also (re)build the excerpt full-text index (slow: about as long as the import).",
        ),
    ] = True,
    silent: SilentOption = False,
) -> None:
    """Rebuild the token index and the excerpt full-text index from the stored records, and
    each neuron's similar neurons by shared tokens (what neuron pages show).

    Importers and the scraper build the indexes at the end; run it after changing records by
    hand, or once on an atlas built before similar neurons were stored.

    Example: neuronatlas index --db atlas.db
    """
    from neuronatlas.relations.stage import SIMILAR_TOKENS, SimilarSettings
    from neuronatlas.search.stage import STAGE, IndexSettings

    open_writer(db, create=False).close()  # refuse (or migrate) before the work
    counts = run_stage(STAGE, db, IndexSettings(excerpts=excerpts, force=True), silent).result
    similar = run_stage(SIMILAR_TOKENS, db, SimilarSettings(force=True), silent).result
    assert isinstance(counts, dict) and isinstance(similar, dict)
    console.print(
        f"token index: {counts['token_rows']} rows"
        + (f"; excerpt full text: {counts['excerpt_documents']} neurons" if excerpts else "")
        + f"; similar neurons by tokens: {similar.get('tokens', 0)} rows"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(epilog=exit_codes())(index)
