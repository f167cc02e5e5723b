"""Opening an atlas file: one writer in WAL mode, readers read-only by URI."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from neuronatlas.errors import AtlasNotFound, SchemaTooOld
from neuronatlas.store.migrations import current_version, migrate, newest_version


def open_writer(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the atlas for writing and bring its schema up to date.

    Autocommit mode (`isolation_level=None`): writers open their own `BEGIN ... COMMIT`
    around each batch, so a crash loses at most the batch in flight.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=60.0)
    # 16 KiB pages for new files (no effect on existing ones): activation records are
    # ~1.3 KB rows, which fill 4 KiB pages only ~65%; 16 KiB pages ~92%, fewer writes.
    conn.execute("PRAGMA page_size=16384")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe in WAL mode
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB
    migrate(conn)
    return conn


def open_reader(path: str | Path, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open the atlas read-only (`mode=ro`): a reader can never change the file.

    So it cannot migrate either: an atlas with older migrations applied is refused with the
    command that brings it up to date, instead of failing later on a missing column.
    """
    path = Path(path)
    if not path.exists():
        raise AtlasNotFound(
            f"{path}: no such atlas. Build one with `neuronatlas demo` or "
            f"`neuronatlas import-openai SOURCE --db {path}`"
        )
    uri = f"file:{path.resolve()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=check_same_thread)
    conn.row_factory = sqlite3.Row
    _require_current(conn, path)
    return conn


def _require_current(conn: sqlite3.Connection, path: Path) -> None:
    """Raise SchemaTooOld when some shipped migration is missing from a non-empty atlas."""
    have = current_version(conn)
    newest = newest_version()
    if 0 < have < newest:
        conn.close()
        raise SchemaTooOld(
            f"{path}: written by an older neuronatlas (schema {have}, this one reads {newest})."
            f" Migrate it in place with `neuronatlas migrate --db {path}` (a large atlas takes"
            " minutes; the file stays valid if it is interrupted)"
        )


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error); joins a transaction already open, so
    batches nest inside a caller's larger one."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
