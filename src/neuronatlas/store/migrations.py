"""Ordered schema migrations, recorded in the database.

Each migration is a file `sql/NNN_name.sql`; NNN is its version. Opening a database for writing
applies the missing ones in order, each in its own transaction, and records it in
`schema_version`. A database newer than this code is refused rather than misread, by readers
and writers alike (`connection.probe_atlas` reads the version without changing the file; the
check in `migrate` is the last guard for a connection opened some other way).

Some data conversions need Python (e.g. the shortest float32 spellings of 006): the functions
in `MIGRATION_FUNCTIONS` are callable from the migration scripts, and only there — the schema's
views and triggers use built-in SQL alone, so any SQLite client can use them.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from importlib import resources

from neuronatlas.errors import SchemaTooNew
from neuronatlas.store import values

_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

#: SQL name → (number of arguments, Python function), registered while migrating.
MIGRATION_FUNCTIONS = {"blob_to_json": (1, values.blob_to_json)}


def available() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped with this code, in order."""
    found = []
    for entry in resources.files("neuronatlas.store").joinpath("sql").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in store/sql: {versions}")
    return found


@cache
def newest_version() -> int:
    """The highest migration shipped with this code (read once: the files never change)."""
    return max((v for v, _, _ in available()), default=0)


def current_version(conn: sqlite3.Connection) -> int:
    """The highest applied migration, 0 for an empty database."""
    has = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if not has:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply every missing migration; return the versions applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    applied = {r[0] for r in conn.execute("SELECT version FROM schema_version")}
    shipped = available()
    newest = max((v for v, _, _ in shipped), default=0)
    if applied and max(applied) > newest:
        raise SchemaTooNew(
            f"database schema {max(applied)} is newer than this neuronatlas (knows up to "
            f"{newest}): upgrade neuronatlas (pip install -U neuronatlas) to use it"
        )
    done = []
    if any(v not in applied for v, _, _ in shipped):
        for fname, (nargs, fn) in MIGRATION_FUNCTIONS.items():
            conn.create_function(fname, nargs, fn, deterministic=True)
    for version, name, sql in shipped:
        if version in applied:
            continue
        now = datetime.now(UTC).isoformat(timespec="seconds")
        script = (
            f"BEGIN;\n{sql}\n"
            f"INSERT INTO schema_version(version, name, applied_at) "
            f"VALUES ({version}, '{name}', '{now}');\nCOMMIT;"
        )
        try:
            conn.executescript(script)
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        done.append(version)
    if done:
        _reclaim(conn)
    return done


def _reclaim(conn: sqlite3.Connection) -> None:
    """Give back the pages of tables a migration rebuilt (006 rewrites `records`, most of an
    atlas): without this the file keeps their size as free pages."""
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    if free > 1024 and free > pages // 8:
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def apply_stage_migrations(conn: sqlite3.Connection, stage: str, scripts: Sequence[str]) -> int:
    """Run the scripts of a stage's own tables (`Stage.migrations`) that this atlas lacks.

    A stage that lives outside the core schema numbers its scripts by their place in the
    list; the meta key `stage_schema:<stage>` records how many ran, so each runs once, in
    its own transaction with that record. Returns how many ran now."""
    key = f"stage_schema:{stage}"
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    done = int(row[0]) if row else 0
    for i, sql in enumerate(scripts[done:], start=done + 1):
        quoted = key.replace("'", "''")
        script = (
            f"BEGIN;\n{sql}\n"
            f"INSERT INTO meta(key, value) VALUES ('{quoted}', '{i}') "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value;\nCOMMIT;"
        )
        try:
            conn.executescript(script)
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return max(0, len(scripts) - done)
