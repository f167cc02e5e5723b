"""No orphans: when a process holding worker processes is killed with SIGKILL, its workers
(and multiprocessing's helper processes) exit too, within seconds. Linux (reads /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openai_fixtures import write_source

POOL_PARENT = """
import os, sys, time
from neuronatlas.workers import worker_pool

if __name__ == "__main__":
    pool = worker_pool(2)
    {pool.submit(os.getpid).result() for _ in range(8)}  # both workers started
    for _ in range(2):
        pool.submit(time.sleep, 600)  # both workers busy, as during an import
    print("ready", flush=True)
    time.sleep(600)
"""


def _children() -> dict[int, list[int]]:
    """ppid → pids of every live process."""
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out.setdefault(int(fields[1]), []).append(int(entry.name))
    return out


def descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def assert_gone_after_sigkill(parent: subprocess.Popen, children: set[int]) -> None:
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(p) for p in children):
        time.sleep(0.1)
    left = sorted(p for p in children if alive(p))
    for p in left:  # do not leave them behind on the shared machine
        os.kill(p, signal.SIGKILL)
    assert not left, f"still running 15 s after the parent's SIGKILL: {left}"


def _at_least(n: int, pids: set[int]) -> set[int] | None:
    return pids if len(pids) >= n else None


def _wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_pool_workers_and_helpers_die_with_a_killed_parent():
    parent = subprocess.Popen(
        [sys.executable, "-c", POOL_PARENT], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout.readline().strip() == "ready"
        children = descendants(parent.pid)
        assert len(children) >= 3, children  # two workers and the resource tracker
    except BaseException:
        parent.kill()
        raise
    assert_gone_after_sigkill(parent, children)


@pytest.mark.slow
def test_a_killed_import_openai_leaves_no_process_behind(tmp_path):
    src = write_source(
        tmp_path / "big", n_layers=2, n_neurons=3000, broken=False, nan_literal=False, n_tokens=4
    )
    cli = [sys.executable, "-c", "from neuronatlas.cli import main; main()"]
    parent = subprocess.Popen(
        [*cli, "import-openai", str(src), "--db", str(tmp_path / "a.db"), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        children = _wait_for(lambda: _at_least(3, descendants(parent.pid)), 60, "the workers")
    except BaseException:
        parent.kill()
        raise
    assert parent.poll() is None, "the import finished before it could be killed"
    assert_gone_after_sigkill(parent, children)
