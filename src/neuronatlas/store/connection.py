"""Opening an atlas file: one writer in WAL mode, readers that never change it.

Both open functions first *probe* the path without changing a byte of it (`probe_atlas`) and
refuse, with one line naming the file and the fix, whatever is not an atlas they can use: a
missing file (readers), a folder, an empty file, random bytes, a truncated file, another
application's SQLite database, an atlas of another schema version, a locked or read-only atlas
(writers). Every command opens atlases through these two functions, so each inherits the same
checks; the errors are `errors.AtlasUnusable`, which the CLI turns into exit code 2.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from neuronatlas.errors import (
    AtlasLocked,
    AtlasNotFound,
    AtlasReadOnly,
    BadInput,
    NotAnAtlas,
    SchemaTooNew,
    SchemaTooOld,
)
from neuronatlas.store.migrations import migrate, newest_version

#: Seconds a writer waits for another process's write lock (env var; default 60).
LOCK_TIMEOUT_ENV = "NEURONATLAS_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT_S = 60.0

_MAGIC = b"SQLite format 3\x00"
_HEADER = 100  # bytes of the SQLite file header


def _build_hint(path: Path) -> str:
    return (
        f"`neuronatlas scrape --model MODEL --db {path}` or `neuronatlas import-openai SOURCE "
        f"--db {path}` (`neuronatlas demo` builds a small one)"
    )


@dataclass(frozen=True)
class AtlasProbe:
    """What a path holds, as far as an atlas goes. Anything else raised `NotAnAtlas`."""

    path: Path
    kind: Literal["missing", "empty", "atlas"]
    #: The highest migration applied (0 unless kind is "atlas").
    version: int = 0
    #: The file is in WAL mode (readers of it could leave -wal/-shm files behind).
    wal: bool = False


def probe_atlas(path: str | Path) -> AtlasProbe:
    """Say whether `path` is missing, empty (no tables: a new atlas may be created there) or
    an atlas of some schema version; raise `NotAnAtlas` for anything else.

    Reads the header by hand (so random bytes and truncated files are caught before SQLite
    sees them), then the table names through a read-only connection that creates nothing: an
    `immutable` one when no writer is active (no `-wal` beside the file), since even a
    `mode=ro` open of a WAL file creates `-wal`/`-shm` files it cannot remove.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return AtlasProbe(path, "missing")
    except NotADirectoryError:
        raise NotAnAtlas(
            f"{path}: a part of this path is a file, not a folder: give the atlas's own path"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise NotAnAtlas(
            f"{path} is a folder, not an atlas file: pass the atlas's .db file "
            f"(e.g. --db {path / 'atlas.db'})"
        )
    if not stat.S_ISREG(st.st_mode):
        raise NotAnAtlas(f"{path} is not a regular file: pass an atlas's .db file")
    if st.st_size == 0:
        return AtlasProbe(path, "empty")
    try:
        with path.open("rb") as f:
            head = f.read(_HEADER)
    except PermissionError:
        raise NotAnAtlas(
            f"{path} cannot be read (permission denied): make it readable (chmod u+r {path})"
        ) from None
    if len(head) < _HEADER or not head.startswith(_MAGIC):
        raise NotAnAtlas(
            f"{path} is not an atlas: it is not a SQLite database. Check the --db path"
        )
    _check_length(path, head, st.st_size)
    wal = head[18] == 2 and head[19] == 2
    # a writer at work (its -wal, or a rollback journal) is read through SQLite's locks
    immutable = not (_sidecar(path, "-wal").exists() or _sidecar(path, "-journal").exists())
    try:
        with closing(_connect_ro(path, immutable=immutable)) as conn:
            names = {
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
                    " AND name NOT LIKE 'sqlite^_%' ESCAPE '^'"
                )
            }
            if not names:
                return AtlasProbe(path, "empty", wal=wal)
            if "schema_version" not in names:
                listed = ", ".join(sorted(names)[:6]) + (", …" if len(names) > 6 else "")
                raise NotAnAtlas(
                    f"{path} is another application's SQLite database (tables: {listed}), "
                    f"not an atlas: pass an atlas file; neuronatlas does not write into it"
                )
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise NotAnAtlas(
            f"{path} is damaged, not a readable atlas (SQLite: {exc}): restore it from a copy "
            f"or build it again"
        ) from None
    version = int(row[0] or 0)
    if version == 0:  # schema_version created, first migration never committed
        return AtlasProbe(path, "empty", wal=wal)
    return AtlasProbe(path, "atlas", version, wal)


def _check_length(path: Path, head: bytes, size: int) -> None:
    """A file shorter than the page count its header records was cut (a partial copy or
    download): refuse it before a query runs into the missing pages."""
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    # the count is valid only where the change counter equals "version-valid-for"
    if pages and head[24:28] == head[92:96] and size < pages * page_size:
        raise NotAnAtlas(
            f"{path} is damaged: truncated ({size:,} bytes where its header records "
            f"{pages:,} pages of {page_size:,}). Restore it from a complete copy or build it again"
        )


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _uri(path: Path, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"file:{quote(str(path.resolve()))}?{query}"


def _connect_ro(path: Path, immutable: bool, check_same_thread: bool = True) -> sqlite3.Connection:
    params = {"mode": "ro", **({"immutable": "1"} if immutable else {})}
    return sqlite3.connect(_uri(path, **params), uri=True, check_same_thread=check_same_thread)


def _marked_writable(path: Path) -> bool:
    """Writable by this process and not marked read-only (no write bit), which even root,
    whom permissions do not stop, respects: a read-only atlas is one nobody meant to change."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & 0o222) and os.access(path, os.W_OK)


def lock_timeout() -> float:
    """Seconds a writer waits for another writer's lock (`NEURONATLAS_LOCK_TIMEOUT`)."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise BadInput(f"{LOCK_TIMEOUT_ENV}={raw!r}: give the seconds to wait, e.g. 60")
    return value


# -- readers ------------------------------------------------------------------------------


def open_reader(path: str | Path, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open the atlas read-only: a reader never changes the file, nor leaves files beside it.

    So it cannot migrate either: an atlas with older migrations applied is refused with the
    command that brings it up to date, instead of failing later on a missing column; a newer
    one is refused rather than misread. A writer holding the atlas does not stop a reader.
    """
    probe = probe_atlas(path)
    refuse_for_reading(probe)
    conn = _reader_connection(probe, check_same_thread)
    conn.row_factory = sqlite3.Row
    return conn


def refuse_for_reading(probe: AtlasProbe) -> None:
    """Raise the one-line error for an atlas that `open_reader` cannot read."""
    path, have, newest = probe.path, probe.version, newest_version()
    if probe.kind == "missing":
        raise AtlasNotFound(f"{path}: no such atlas. Build one with {_build_hint(path)}")
    if probe.kind == "empty":
        raise NotAnAtlas(
            f"{path} holds no atlas (an empty database): build one first with {_build_hint(path)}"
        )
    if have > newest:
        raise _too_new(path, have, newest)
    if have < newest:
        raise SchemaTooOld(
            f"{path}: written by an older neuronatlas (schema {have}, this one reads {newest})."
            f" Migrate it in place with `neuronatlas migrate --db {path}` (a large atlas takes"
            " minutes; the file stays valid if it is interrupted)"
        )


def _too_new(path: Path, have: int, newest: int) -> SchemaTooNew:
    return SchemaTooNew(
        f"{path}: written by a newer neuronatlas (schema {have}; this one knows up to "
        f"{newest}). Upgrade neuronatlas (pip install -U neuronatlas) to use it"
    )


def _reader_connection(probe: AtlasProbe, check_same_thread: bool) -> sqlite3.Connection:
    """A connection that cannot write and leaves nothing behind.

    A rollback-journal file: `mode=ro`. A WAL file with a writer at work (its `-wal`
    exists): `mode=ro` beside the writer's files. A WAL file in a read-only file or folder,
    which no writer will open (`open_writer` refuses): `immutable`, which creates nothing.
    Otherwise a read-write open with `query_only`: SQLite removes the `-wal`/`-shm` files
    that the last connection to close created, which a `mode=ro` connection cannot do.
    """
    path = probe.path
    if not probe.wal or _sidecar(path, "-wal").exists():
        return _connect_ro(path, immutable=False, check_same_thread=check_same_thread)
    if not (_marked_writable(path) and _marked_writable(path.resolve().parent)):
        return _connect_ro(path, immutable=True, check_same_thread=check_same_thread)
    conn = sqlite3.connect(
        _uri(path, mode="rw"), uri=True, check_same_thread=check_same_thread, timeout=5.0
    )
    conn.execute("PRAGMA query_only=ON")
    return conn


# -- the writer ---------------------------------------------------------------------------


def open_writer(path: str | Path, *, create: bool = True) -> sqlite3.Connection:
    """Open the atlas for writing and bring its schema up to date; with `create`, a missing
    or empty file becomes a new atlas (scrape, import, build), without it such a file is
    refused naming the commands that create one (the stages that add to an atlas).

    Autocommit mode (`isolation_level=None`): writers open their own `BEGIN ... COMMIT`
    around each batch, so a crash loses at most the batch in flight. Another process's write
    lock is waited for (`lock_timeout()`), then refused as `AtlasLocked`.
    """
    path = Path(path)
    probe = probe_atlas(path)
    refuse_for_writing(probe, create=create)
    if probe.kind == "missing":
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=lock_timeout())
    try:
        if probe.kind == "atlas":
            _claim(conn, path)
        # 16 KiB pages for new files (no effect on existing ones): activation records are
        # ~1.3 KB rows, which fill 4 KiB pages only ~65%; 16 KiB pages ~92%, fewer writes.
        conn.execute("PRAGMA page_size=16384")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe in WAL mode
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA cache_size=-65536")  # 64 MiB
        migrate(conn)
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc):
            raise _locked(path) from None
        raise
    except BaseException:
        conn.close()
        raise
    return conn


def check_writer(path: str | Path, *, create: bool = True) -> None:
    """Every refusal of `open_writer` (lock included), leaving the file as it is: for a
    command to fail at once rather than after loading a model or scraping for an hour."""
    path = Path(path)
    probe = probe_atlas(path)
    refuse_for_writing(probe, create=create)
    if probe.kind == "atlas":
        with closing(sqlite3.connect(path, isolation_level=None, timeout=lock_timeout())) as conn:
            _claim(conn, path)


def refuse_for_writing(probe: AtlasProbe, *, create: bool) -> None:
    """Raise the one-line error for a path that `open_writer` must not write."""
    path = probe.path
    if probe.kind == "missing" and not create:
        raise AtlasNotFound(f"{path}: no such atlas. Build one first with {_build_hint(path)}")
    if probe.kind == "empty" and not create:
        raise NotAnAtlas(f"{path} holds no atlas yet: create one first with {_build_hint(path)}")
    if probe.version > newest_version():
        raise _too_new(path, probe.version, newest_version())
    folder = _existing_folder(path)
    if probe.kind != "missing" and not _marked_writable(path):
        raise AtlasReadOnly(
            f"{path} is read-only and this command writes it: make it writable "
            f"(chmod u+w {path}) or work on a copy"
        )
    if not _marked_writable(folder):
        raise AtlasReadOnly(
            f"{folder} is a read-only folder: writing {path} needs its -wal and -shm files "
            f"beside it. Make the folder writable or copy the atlas to one that is"
        )


def _existing_folder(path: Path) -> Path:
    """The folder the writer will create files in (its nearest existing ancestor when the
    atlas's folders are still to be made)."""
    folder = path.resolve().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _claim(conn: sqlite3.Connection, path: Path) -> None:
    """Take and drop the write lock: waits up to the connection's timeout for another writer,
    then refuses with a message instead of SQLite's bare `database is locked` mid-run."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise _locked(path) from None
        raise
    conn.execute("ROLLBACK")


def _locked(path: Path) -> AtlasLocked:
    return AtlasLocked(
        f"{path} is locked: another process is writing it (waited {lock_timeout():g} s). Run "
        f"this again when it has finished, or wait longer with {LOCK_TIMEOUT_ENV}=SECONDS"
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
