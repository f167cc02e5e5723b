"""`neuronatlas migrate`: bring an atlas written by an older neuronatlas up to date."""

from __future__ import annotations

import time

from neuronatlas.cli.app import DbOption, app, console, exit_codes


@app.command(epilog=exit_codes())
def migrate(db: DbOption) -> None:
    """Apply, in place, every schema migration the atlas lacks (each in its own transaction,
    so an interrupted run leaves a valid atlas that the next run finishes).

    Read-only commands (show, search, serve, …) refuse an older atlas and name this command;
    commands that write (build, scrape, n2g, explain, …) migrate on their own.

    Example: neuronatlas migrate --db atlas.db
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
