"""Every command that takes --db answers a file that is not a usable atlas with one line on
stderr naming the file and what to do, exit code 2 and no traceback, and leaves the file as
it was (byte for byte, no -wal/-shm beside it). Readers still read a locked or read-only atlas;
writers wait for a lock (briefly here), then refuse; writers that create atlases may create
one where there is none.

One table: a row per kind of file, a column per command, run in-process through the console
script's own `main` (so the exit code is the one a shell sees)."""

from __future__ import annotations

import gc
import os
import random
import shutil
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from embed_fixtures import build_atlas
from neuronatlas.cli import main
from neuronatlas.store import open_reader, probe_atlas
from neuronatlas.store.migrations import newest_version
from openai_fixtures import write_source
from synthetic import older_schema

#: row → (how to make the file in a folder, from the master atlas; what its message says)
Maker = Callable[[Path, Path], Path]


def _missing(folder: Path, master: Path) -> Path:
    return folder / "missing.db"


def _folder(folder: Path, master: Path) -> Path:
    (folder / "atlas.db").mkdir()
    return folder / "atlas.db"


def _random(folder: Path, master: Path) -> Path:
    (folder / "noise.db").write_bytes(random.Random(7).randbytes(40_000))
    return folder / "noise.db"


def _empty(folder: Path, master: Path) -> Path:
    (folder / "empty.db").touch()
    return folder / "empty.db"


def _truncated(folder: Path, master: Path) -> Path:
    data = master.read_bytes()
    (folder / "cut.db").write_bytes(data[: len(data) // 2])
    return folder / "cut.db"


def _foreign(folder: Path, master: Path) -> Path:
    path = folder / "shop.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")  # the mode that invites -wal/-shm leftovers
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers(name) VALUES ('Ada')")
    conn.commit()
    conn.close()
    return path


def _newer(folder: Path, master: Path) -> Path:
    path = Path(shutil.copy(master, folder / "future.db"))
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (999, 'future', 'later')")
    conn.commit()
    conn.close()
    return path


def _older(folder: Path, master: Path) -> Path:
    path = folder / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    older_schema(conn, 6)  # schema 5, as released before the SQL relations
    conn.close()
    return path


def _copy(folder: Path, master: Path) -> Path:
    return Path(shutil.copy(master, folder / "atlas.db"))


def _read_only_file(folder: Path, master: Path) -> Path:
    path = _copy(folder, master)
    path.chmod(0o444)
    return path


def _read_only_folder(folder: Path, master: Path) -> Path:
    inner = folder / "shelf"
    inner.mkdir()
    path = _copy(inner, master)
    inner.chmod(0o555)
    return path


ROWS: dict[str, tuple[Maker, str]] = {
    "missing": (_missing, "no such atlas"),
    "folder": (_folder, "is a folder"),
    "random": (_random, "not a SQLite database"),
    "empty": (_empty, "no atlas"),
    "truncated": (_truncated, "truncated"),
    "foreign": (_foreign, "another application's SQLite database (tables: customers)"),
    "newer": (_newer, "schema 999"),
    "older": (_older, "neuronatlas migrate --db"),
    "locked": (_copy, "is locked"),
    "read_only_file": (_read_only_file, "is read-only"),
    "read_only_folder": (_read_only_folder, "read-only folder"),
}

#: command → its arguments ({db} and {source} filled in)
COMMANDS = {
    "show": ["show", "L00N0001", "--db", "{db}"],
    "search": ["search", "dogs", "--fulltext", "--db", "{db}"],
    "serve": ["serve", "--db", "{db}"],
    "n2g": ["n2g", "--db", "{db}", "--neurons", "L09N0009", "--silent"],
    "embed": ["embed", "--db", "{db}", "--embedder", "test-hashing", "--silent"],
    "migrate": ["migrate", "--db", "{db}"],
    "import-openai": ["import-openai", "{source}", "--db", "{db}", "--workers", "0", "--silent"],
}
READERS = ("show", "search", "serve")

#: exit codes other than 2: readers read a locked or read-only atlas; writers migrate an
#: older one; importing creates an atlas where there is none; n2g's stranger id is skipped (3).
EXPECTED = {
    **{(c, r): 0 for c in READERS for r in ("locked", "read_only_file", "read_only_folder")},
    ("n2g", "older"): 3,
    ("embed", "older"): 0,
    ("migrate", "older"): 0,
    ("import-openai", "missing"): 0,
    ("import-openai", "empty"): 0,
    ("import-openai", "older"): 0,
}
#: what a stage that needs an atlas says about a file with none: the commands that make one
FIRST = "neuronatlas scrape --model MODEL --db"


@pytest.fixture(scope="module")
def master(tmp_path_factory) -> Path:
    return build_atlas(tmp_path_factory.mktemp("master") / "atlas.db")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_source(tmp_path_factory.mktemp("src"), n_layers=1, n_neurons=2, broken=False)


def _snapshot(folder: Path, locked: bool) -> dict[str, bytes | None]:
    """Every file under the folder with its bytes (a held lock's -wal/-shm by name only:
    readers register in the shared memory file)."""
    out: dict[str, bytes | None] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            side = p.name.endswith(("-wal", "-shm"))
            out[str(p.relative_to(folder))] = None if locked and side else p.read_bytes()
    return out


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    """The console script's `main`, in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    saved = sys.argv
    sys.argv = ["neuronatlas", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
    gc.collect()  # readers the command left open close now, as they would at exit
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("row", list(ROWS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_file_that_is_not_a_usable_atlas(
    command, row, master, source, tmp_path, capsys, monkeypatch
):
    import embed_fixtures  # noqa: F401  (registers the test-hashing embedder)

    served: list[object] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: served.append(app))
    monkeypatch.setenv("NEURONATLAS_LOCK_TIMEOUT", "0.2")
    make, says = ROWS[row]
    db = make(tmp_path, master)
    holder = None
    if row == "locked":  # another writer inside its transaction
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    before = _snapshot(tmp_path, row == "locked")
    args = [a.format(db=db, source=source) for a in COMMANDS[command]]
    try:
        code, _out, err = _run(args, capsys)
        after = _snapshot(tmp_path, row == "locked")
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
        for p in (tmp_path, tmp_path / "shelf"):
            if p.is_dir():
                p.chmod(0o755)

    want = EXPECTED.get((command, row), 2)
    assert code == want, (args, err)
    assert "Traceback" not in err
    if want == 2:
        assert after == before, "a refused file must stay as it was"
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert str(db) in lines[0] and says in lines[0], lines[0]
        if row == "empty" and command in ("n2g", "embed"):
            assert FIRST in lines[0]  # which command to run first
        assert not served
    elif command in READERS:
        assert after == before, "a reader changes nothing and leaves nothing behind"
        assert served if command == "serve" else True
    else:  # the writer made or migrated an atlas, which readers now take
        assert probe_atlas(db).version == newest_version()
        open_reader(db).close()
        assert not os.path.exists(f"{db}-wal")


def test_a_writer_waits_for_a_lock_and_goes_on_when_it_is_released(master, tmp_path, monkeypatch):
    """The lock timeout is a wait, not a refusal at first sight: a writer that gets the lock
    within it proceeds."""
    import threading

    from neuronatlas.store import open_writer

    db = _copy(tmp_path, master)
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: holder.execute("ROLLBACK"))
    release.start()
    monkeypatch.setenv("NEURONATLAS_LOCK_TIMEOUT", "20")
    try:
        conn = open_writer(db, create=False)
    finally:
        release.join()
    conn.close()
    holder.close()


def test_a_reader_changes_nothing_and_leaves_no_files(master, tmp_path):
    """Even a `mode=ro` open of a WAL file leaves -wal/-shm behind; a reader must not."""
    from neuronatlas.store import reader

    db = _copy(tmp_path, master)
    before = _snapshot(tmp_path, False)
    conn = open_reader(db)
    assert reader.neuron_ids(conn)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM meta")
    conn.close()
    assert _snapshot(tmp_path, False) == before
