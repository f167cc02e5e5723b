"""Engine-independent sharding of a scrape: the corpus pre-tokenised into shard files with a
manifest of hashes, the job id, and where each shard's state lives.

Layout under a work folder (which every worker must see: a shared file system on a cluster;
never put the SQLite atlas itself there):

    shards/{corpus_key}/manifest.json     what was tokenised, how, and each shard's sha256
    shards/{corpus_key}/{i:05d}.npy       int32 [n_windows, context] token windows of shard i
    states/{job}/job.json                 what the job computes (for humans and checks)
    states/{job}/{i:05d}.npz              shard i's scrape state (written atomically)

Window ids are global: shard i holds windows `first_window .. first_window + n_windows - 1`
of the corpus's window stream (`corpus.iter_windows`), which are the ids the local runner
gives them, so the merged state does not depend on how the corpus was cut.

The job id hashes the model identity, the manifest, the statistics config, the layers, the
dtype and the code version: a state file under `states/{job}/` can only have come from the
same computation, so a resumed job keeps every state that exists and computes the rest.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np

from neuronatlas.atomic import write_atomic
from neuronatlas.scrape.config import StatsConfig

TOKENS_PER_SHARD = 1 << 20
"""Default shard size: about 2^20 tokens (4 MiB of int32 tokens)."""
MIN_SHARDS = 8
"""A corpus smaller than MIN_SHARDS × TOKENS_PER_SHARD is still cut into this many shards,
so that a small job still spreads over the workers."""
MANIFEST = "manifest.json"


def digest(obj: object) -> str:
    """A stable 16-hex-digit hash of a JSON-able object (keys sorted)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Shard:
    """One shard: its index, global window range and the hash of its token file."""

    index: int
    first_window: int
    n_windows: int
    file: str
    sha256: str


@dataclass
class Manifest:
    """A pre-tokenised corpus: `windows` windows of `context` tokens in `shards`."""

    folder: Path
    context: int
    windows: int
    shards: list[Shard]
    source: dict

    @property
    def key(self) -> str:
        """Identity of the tokenised corpus (the shard hashes included)."""
        return digest(
            {
                "context": self.context,
                "windows": self.windows,
                "source": self.source,
                "shards": [asdict(s) for s in self.shards],
            }
        )

    def tokens(self, shard: Shard) -> np.ndarray:
        return read_shard(self.folder, shard, self.context)

    def save(self) -> None:
        doc = {
            "context": self.context,
            "windows": self.windows,
            "source": self.source,
            "shards": [asdict(s) for s in self.shards],
        }
        write_atomic(self.folder / MANIFEST, lambda f: f.write(json.dumps(doc, indent=1).encode()))

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        doc = json.loads((folder / MANIFEST).read_text())
        return cls(
            folder,
            int(doc["context"]),
            int(doc["windows"]),
            [Shard(**s) for s in doc["shards"]],
            doc["source"],
        )


def read_shard(folder: Path, shard: Shard, context: int) -> np.ndarray:
    """int32 [n_windows, context] of a shard, checked against the manifest's sha256 (a worker
    on another node must not scrape a stale or half-copied file)."""
    path = Path(folder) / shard.file
    if file_sha256(path) != shard.sha256:
        raise ValueError(f"{path}: content does not match the manifest's sha256")
    tokens = np.load(path, allow_pickle=False)
    if tokens.shape != (shard.n_windows, context):
        raise ValueError(f"{path}: shape {tokens.shape}, expected {(shard.n_windows, context)}")
    return tokens


def _save_array(block: np.ndarray, f: BinaryIO) -> None:
    np.save(f, block, allow_pickle=False)


def shard_windows(total: int, context: int, n_shards: int | None) -> int:
    """Windows per shard: ⌈total / n_shards⌉ when asked for n shards (a few small corpora get
    fewer), else ≈ TOKENS_PER_SHARD tokens but at most ⌈total / MIN_SHARDS⌉."""
    if total < 1:
        return 1
    if n_shards is not None:
        if n_shards < 1:
            raise ValueError("the number of shards must be ≥ 1")
        return math.ceil(total / n_shards)
    return max(1, min(TOKENS_PER_SHARD // context, math.ceil(total / MIN_SHARDS)))


def prepare_shards(
    windows: Iterator[tuple[int, np.ndarray]],
    context: int,
    source: dict,
    root: Path,
    n_shards: int | None = None,
) -> Manifest:
    """Pre-tokenise once: reuse `root/shards/{key}` if its manifest exists, else stream the
    windows to disk (constant memory), cut them into shards and write the manifest last.

    `source` must identify the window stream (corpus, tokenizer, context, BOS policy, window
    limit, requested shard count): it names the folder, so equal sources share one tokenisation.
    """
    folder = Path(root) / "shards" / digest({"source": source, "shards": n_shards})
    if (folder / MANIFEST).exists():
        return Manifest.load(folder)
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "windows.tmp"
    total = 0
    with raw.open("wb") as f:
        for expected, (wid, tokens) in enumerate(windows):
            if wid != expected:
                raise ValueError(f"window ids must run 0, 1, 2, ...; got {wid} at {expected}")
            f.write(np.ascontiguousarray(tokens, np.int32).tobytes())
            total += 1
    flat = (
        np.memmap(raw, np.int32, "r", shape=(total, context))
        if total
        else np.zeros((0, context), np.int32)
    )
    per = shard_windows(total, context, n_shards)
    shards = []
    for index, first in enumerate(range(0, total, per)):
        block = np.array(flat[first : first + per])
        name = f"{index:05d}.npy"
        write_atomic(folder / name, partial(_save_array, block))
        shards.append(Shard(index, first, len(block), name, file_sha256(folder / name)))
    del flat
    raw.unlink()
    manifest = Manifest(folder, context, total, shards, source)
    manifest.save()
    return manifest


def model_identity(name: str, revision: str | None, folder: str | None) -> dict:
    """What pins a model's weights: the hub revision when known; for a local folder without
    one, its config.json's hash and every file's size (content hashes of tens of GB would cost
    minutes; a changed checkpoint almost always changes a size or the config)."""
    ident: dict = {"name": name, "revision": revision}
    if revision is None and folder and Path(folder).is_dir():
        base = Path(folder)
        files = sorted(p for p in base.rglob("*") if p.is_file())
        ident["files"] = {str(p.relative_to(base)): p.stat().st_size for p in files}
        config = base / "config.json"
        if config.exists():
            ident["config_sha256"] = file_sha256(config)
    return ident


def job_id(
    model: dict,
    manifest: Manifest,
    config: StatsConfig,
    layers: list[int],
    dtype: str,
    code_version: str,
) -> str:
    """hash(model identity, corpus manifest, statistics config, layers, dtype, code version)."""
    return digest(
        {
            "model": model,
            "manifest": manifest.key,
            "stats": config.to_dict(),
            "layers": list(layers),
            "dtype": dtype,
            "code_version": code_version,
        }
    )


def states_dir(root: Path, job: str) -> Path:
    return Path(root) / "states" / job


def state_path(root: Path, job: str, shard: Shard) -> Path:
    """Where shard `shard`'s state of job `job` is (or will be) written."""
    return states_dir(root, job) / f"{shard.index:05d}.npz"


def missing_shards(root: Path, job: str, manifest: Manifest) -> list[Shard]:
    """Shards whose state file does not exist: the work a (resumed) job still has to do.
    States are written atomically, so an existing file is a complete one."""
    return [s for s in manifest.shards if not state_path(root, job, s).exists()]
