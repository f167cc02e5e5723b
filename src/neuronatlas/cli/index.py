"""`neuronatlas index`: the token index (and optionally the excerpt full-text index) that
token search and the similar-by-tokens neighbours read."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated

import typer

from neuronatlas.cli.app import DbOption, SilentOption, app, console, exit_codes
from neuronatlas.store import open_writer


@app.command(epilog=exit_codes())
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
    from neuronatlas.relations.similar import precompute_similar
    from neuronatlas.store.search import rebuild_search_indexes

    conn = open_writer(db, create=False)
    try:
        counts = rebuild_search_indexes(conn, excerpts=excerpts)
        with (
            console.status("similar neurons by tokens", spinner="dots")
            if not silent
            else nullcontext()
        ):
            similar = precompute_similar(conn, ["tokens"])["tokens"]
    finally:
        conn.close()
    console.print(
        f"token index: {counts['token_rows']} rows"
        + (f"; excerpt full text: {counts['excerpt_documents']} neurons" if excerpts else "")
        + f"; similar neurons by tokens: {similar} rows"
    )
