"""Corpora as token windows: text sources (`sources`) cut into fixed-length windows with
deterministic ids and an explicit BOS policy (`windows`)."""

from neuronatlas.corpus.sources import Source, default_corpus_path, open_source
from neuronatlas.corpus.windows import (
    BOS_CHOICES,
    BosPolicy,
    WindowBatch,
    batch_windows,
    iter_windows,
    resolve_bos,
)

__all__ = [
    "BOS_CHOICES",
    "BosPolicy",
    "Source",
    "WindowBatch",
    "batch_windows",
    "default_corpus_path",
    "iter_windows",
    "open_source",
    "resolve_bos",
]
