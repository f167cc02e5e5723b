"""How a record's activation values are stored: float32 BLOBs when exact, JSON text otherwise.

Model activations are float32, and OpenAI's files hold float32 values widened to float64, so
4 little-endian bytes per value keep them exactly at a fifth of the size of their JSON text
(sql/005_float32_values.sql). A record holding any finite value that float32 cannot represent
exactly (e.g. a hand-written 0.1) keeps compact JSON text, so every stored value reads back
as the identical double. NaN and ±inf mean "no value" (OpenAI writes them as null): in a BLOB
they are NaN, in JSON null.

Encoding works on a whole neuron's records at once, so the per-value work runs in numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import msgspec
import numpy as np

_encode_json = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder(list[float | None]).decode

F32 = np.dtype("<f4")


class StoredValues(NamedTuple):
    """One record's values as stored: exactly one of `f32` / `json` is set."""

    f32: bytes | None
    json: str | None
    max_activation: float | None
    peak_index: int | None


def encode(records: Sequence[Sequence[float | None]]) -> list[StoredValues]:
    """Store-ready values of many records (one neuron's), with each record's max and peak."""
    out: list[StoredValues | None] = [None] * len(records)
    by_length: dict[int, list[int]] = {}
    for i, values in enumerate(records):
        by_length.setdefault(len(values), []).append(i)
    for length, rows in by_length.items():
        if length == 0:
            for i in rows:
                out[i] = StoredValues(None, "[]", None, None)
            continue
        # None becomes NaN; one array per record length keeps this a few numpy calls.
        block = records if len(rows) == len(records) else [records[i] for i in rows]
        for i, stored in zip(rows, _encode_block(np.array(block, dtype=np.float64)), strict=False):
            out[i] = stored
    return out  # type: ignore[return-value]


def _encode_block(wide: np.ndarray) -> list[StoredValues]:
    finite = np.isfinite(wide)
    all_finite = bool(finite.all())
    with np.errstate(over="ignore", invalid="ignore"):
        narrow = wide.astype(F32)
    if all_finite:
        exact = (narrow.astype(np.float64) == wide).all(axis=1).tolist()
        masked = wide
    else:
        exact = np.where(finite, narrow.astype(np.float64) == wide, True).all(axis=1).tolist()
        narrow[~finite] = np.nan
        masked = np.where(finite, wide, -np.inf)
    peaks = masked.argmax(axis=1)
    tops = masked[np.arange(len(wide)), peaks].tolist()
    peaks = peaks.tolist()
    raw = narrow.tobytes()
    step = 4 * wide.shape[1]
    out = []
    for row, ok in enumerate(exact):
        top, peak = tops[row], peaks[row]
        if top == -math.inf:
            top, peak = None, None
        if ok:
            out.append(StoredValues(raw[row * step : (row + 1) * step], None, top, peak))
        else:
            vals = [
                v if f else None
                for v, f in zip(wide[row].tolist(), finite[row].tolist(), strict=False)
            ]
            out.append(StoredValues(None, encode_json(vals), top, peak))
    return out


def decode(f32: bytes | None, json: str | bytes | None) -> list[float | None]:
    """A stored record's values as doubles (None where the source had none)."""
    if f32 is None:
        return _decode_json(json) if json is not None else []
    wide = np.frombuffer(f32, dtype=F32).astype(np.float64)
    missing = np.isnan(wide)
    if missing.any():
        return [None if m else v for v, m in zip(wide.tolist(), missing.tolist(), strict=False)]
    out: list[float | None] = wide.tolist()
    return out


def encode_json(values: Sequence[float | None]) -> str:
    """Values as compact JSON text (shortest round-trip spellings, None as null)."""
    return _encode_json(values).decode()
