"""Worker processes that never outlive the process that started them.

A `ProcessPoolExecutor` worker blocks on its task queue, and the queue's pipe stays open in
every worker, so when the parent is killed (SIGKILL gives it no chance to clean up) the
workers, and multiprocessing's forkserver and resource tracker beside them, wait forever.
`worker_pool` avoids all of it:

- workers are started with "spawn" (a fresh interpreter, safe while other threads run, as the
  OpenAI download thread does) and are the parent's own children: there is no forkserver;
- each worker's initializer asks Linux to SIGKILL it when its parent dies
  (`prctl(PR_SET_PDEATHSIG)`), and, as a fallback where prctl is missing, a daemon thread
  exits the worker once its parent pid changes (it is re-parented when the parent dies);
- the resource tracker exits by itself once the parent and the workers are gone (it stops at
  end of file on its pipe, which they hold).

PR_SET_PDEATHSIG fires when the *thread* that started the worker exits, so submit work from a
thread that lives as long as the pool (the importer submits from its calling thread).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

_PR_SET_PDEATHSIG = 1
#: How often the fallback thread looks at the parent pid (seconds).
WATCH_INTERVAL = 0.5


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when `parent_pid` (its parent) dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCH_INTERVAL)
    os._exit(1)


def _init_worker(
    parent_pid: int, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]
) -> None:
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


def worker_pool(
    workers: int,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A process pool whose workers exit when this process dies (see the module docstring)."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(os.getpid(), initializer, initargs),
    )
