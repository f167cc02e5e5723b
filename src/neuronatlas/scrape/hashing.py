"""Deterministic per-(neuron, window) sample keys, so reservoirs merge exactly.

A reservoir keeps, per neuron, the windows with the smallest key. Because the key depends only
on (seed, stream, layer, neuron, window id) and not on arrival order, the sample of a union of
shards is the smallest-key windows of the shards' samples: the same whatever the sharding.
Keys are 62-bit non-negative int64 values from the splitmix64 finalizer (uniform enough for
sampling; not cryptographic).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

EMPTY_KEY = np.iinfo(np.int64).max  # sorts after every real key
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
STREAM_RANDOM = 1
STREAM_QUANTILE = 2


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on uint64 arrays (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    x = x ^ (x >> np.uint64(30))
    x = x * _C1
    x = x ^ (x >> np.uint64(27))
    x = x * _C2
    return x ^ (x >> np.uint64(31))


@lru_cache(maxsize=256)
def neuron_salts(seed: int, stream: int, layer: int, d_mlp: int) -> np.ndarray:
    """uint64 [d_mlp]: one salt per neuron of a layer for one sampling stream (cached; do not
    modify the returned array)."""
    head = mix64(np.array([seed * 1_000_003 + stream * 10_007 + layer], dtype=np.uint64))
    return mix64(head ^ (np.arange(d_mlp, dtype=np.uint64) * _GOLDEN))


def window_keys(salts: np.ndarray, window_ids: np.ndarray) -> np.ndarray:
    """int64 [neurons, windows] keys: 32 hash bits above the window id's 31 bits, so keys are
    distinct per window and order by (hash, window id). Window ids must be ≤ 2^31 − 2."""
    wids = np.asarray(window_ids, dtype=np.int64)
    w = mix64(wids.astype(np.uint64) + _GOLDEN)
    keys = mix64(salts[:, None] ^ w[None, :])
    return ((keys >> np.uint64(32)).astype(np.int64) << np.int64(31)) | wids[None, :]
