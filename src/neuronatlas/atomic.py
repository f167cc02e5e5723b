"""Atomic file writes: a reader, a resumed run or a rerun sees the whole file or none of it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(
    path: str | Path, write: Callable[[BinaryIO], object], durable: bool = True
) -> None:
    """Call `write(file)` on a temporary `*.part` file beside `path`, then rename it over `path`.

    durable: fsync before the rename, so a power cut cannot leave an empty file (checkpoints,
    shard states); caches of re-downloadable files skip it for speed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
