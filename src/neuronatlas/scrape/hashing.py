"""Deterministic per-(neuron, window) sample keys, so reservoirs merge exactly.

A reservoir keeps, per neuron, the windows with the smallest key. Because the key depends only
on (seed, stream, layer, neuron, window id) and not on arrival order, the sample of a union of
shards is the smallest-key windows of the shards' samples: the same whatever the sharding.
Keys are 62-bit non-negative int64 values from the splitmix64 finalizer (uniform enough for
sampling; not cryptographic).

Computed in torch on the state's device. torch has no general uint64 arithmetic, so the
finalizer runs on int64 with the same bits: multiplication wraps modulo 2^64 on every torch
backend, and a logical right shift is an arithmetic one masked to its low bits. The keys equal
those of a uint64 implementation bit for bit (tests compare them with numpy's).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

EMPTY_KEY = 2**63 - 1  # sorts after every real key


def _signed(x: int) -> int:
    """The int64 with the bits of the uint64 `x`."""
    return x - (1 << 64) if x >= 1 << 63 else x


_C1 = _signed(0xBF58476D1CE4E5B9)
_C2 = _signed(0x94D049BB133111EB)
_GOLDEN = _signed(0x9E3779B97F4A7C15)
STREAM_RANDOM = 1
STREAM_QUANTILE = 2


def _shr(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def mix64(x: torch.Tensor) -> torch.Tensor:
    """splitmix64 finalizer on int64 tensors holding uint64 bit patterns (wrapping)."""
    x = x ^ _shr(x, 30)
    x = x * _C1
    x = x ^ _shr(x, 27)
    x = x * _C2
    return x ^ _shr(x, 31)


@lru_cache(maxsize=256)
def neuron_salts(seed: int, stream: int, layer: int, d_mlp: int, device: str = "cpu"):
    """int64 [d_mlp] on `device`: one salt per neuron of a layer for one sampling stream
    (cached per device; do not modify the returned tensor)."""
    import torch

    head = mix64(torch.tensor([_signed((seed * 1_000_003 + stream * 10_007 + layer) % (1 << 64))]))
    salts = mix64(head ^ (torch.arange(d_mlp, dtype=torch.int64) * _GOLDEN))
    return salts.to(device)


def window_keys(salts: torch.Tensor, window_ids: torch.Tensor) -> torch.Tensor:
    """int64 [neurons, windows] keys: 32 hash bits above the window id's 31 bits, so keys are
    distinct per window and order by (hash, window id). Window ids must be ≤ 2^31 − 2."""
    w = mix64(window_ids + _GOLDEN)
    keys = mix64(salts[:, None] ^ w[None, :])
    return (_shr(keys, 32) << 31) | window_ids[None, :]
