"""A small pool of read-only connections, each lent out under a time limit.

SQLite connections are not safe to share between threads mid-statement, and FastAPI runs
sync routes on a thread pool; so every request borrows its own connection and returns it.
"""

from __future__ import annotations

import queue
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from neuronatlas.errors import QueryTimeout
from neuronatlas.store import open_reader
from neuronatlas.store.browse import time_limit, tune_reader


class ReaderPool:
    """`size` read-only connections to one atlas; `borrow()` lends one under a time limit."""

    def __init__(self, path: str | Path, size: int = 8, wait_s: float = 10.0):
        self.path = Path(path)
        self.wait_s = wait_s
        self._free: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._all = [open_reader(self.path, check_same_thread=False) for _ in range(size)]
        for conn in self._all:
            tune_reader(conn)
            self._free.put(conn)

    @contextmanager
    def borrow(self, seconds: float) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._free.get(timeout=self.wait_s)
        except queue.Empty:
            raise QueryTimeout(
                f"the server is busy: no database connection free within {self.wait_s:g} s"
            ) from None
        try:
            with time_limit(conn, seconds):
                yield conn
        finally:
            self._free.put(conn)

    def close(self) -> None:
        for conn in self._all:
            conn.close()
