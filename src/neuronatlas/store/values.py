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

from collections.abc import Sequence

import msgspec
import numpy as np

_encode_json = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder(list[float | None]).decode

F32 = np.dtype("<f4")


class StoredValues(msgspec.Struct, array_like=True, frozen=True):
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
        wide = np.array([records[i] for i in rows], dtype=np.float64)
        for i, stored in zip(rows, _encode_block(wide)):
            out[i] = stored
    return out  # type: ignore[return-value]


def _encode_block(wide: np.ndarray) -> list[StoredValues]:
    finite = np.isfinite(wide)
    with np.errstate(over="ignore", invalid="ignore"):
        narrow = wide.astype(F32)
    exact = np.where(finite, narrow.astype(np.float64) == wide, True).all(axis=1)
    narrow[~finite] = np.nan
    masked = np.where(finite, wide, -np.inf)
    peaks = masked.argmax(axis=1)
    tops = masked[np.arange(len(wide)), peaks]
    out = []
    for row, ok, top, peak in zip(range(len(wide)), exact.tolist(), tops.tolist(),
                                  peaks.tolist()):
        if top == -np.inf:
            top, peak = None, None
        if ok:
            out.append(StoredValues(narrow[row].tobytes(), None, top, peak))
        else:
            values = [v if f else None for v, f in zip(wide[row].tolist(), finite[row])]
            out.append(StoredValues(None, encode_json(values), top, peak))
    return out


def decode(f32: bytes | None, json: str | bytes | None) -> list[float | None]:
    """A stored record's values as doubles (None where the source had none)."""
    if f32 is None:
        return _decode_json(json) if json is not None else []
    values = np.frombuffer(f32, dtype=F32)
    if np.isnan(values).any():
        return [None if v != v else v for v in values.astype(np.float64).tolist()]
    return values.astype(np.float64).tolist()


def encode_json(values: Sequence[float | None]) -> str:
    """Values as compact JSON text (shortest round-trip spellings, None as null)."""
    return _encode_json(values).decode()
