"""How a record's activation values are stored: compact JSON text, short when float32 allows.

Model activations are float32, and OpenAI's files hold float32 values widened to float64. Such
a record is stored as JSON with each value's shortest float32 spelling (`0.12345679`, not the
widened double's `0.12345679104328156`): about 11 characters a value instead of ~20, and text
that any SQLite client reads as it is, so the seed's `activations` relation is a plain column
(sql/006_sql_relations.sql). The spelling names the same float32 — parse it and round to
float32 — and the row's `values_f32` flag tells the library to do that rounding, so every value
reads back as the identical double. A record holding any finite value that float32 cannot
represent exactly (e.g. a hand-written 0.1) keeps the shortest spellings of its doubles
(flag 0). NaN and ±inf mean "no value" (OpenAI writes them as null): JSON null.

Encoding works on a whole block of records at once (`f32_json_rows`): numpy finds the rows that
need care, orjson spells each row (its float32 formatting gives the shortest spelling that
names the same float32), and no text is parsed back: a scrape writes millions of records, and
reading every spelling back cost as much as writing it (bench/README.md, "Writing the scrape
against its forward passes"). What replaces that check is a proof: an exhaustive scan of all
finite float32 (bench/f32_spelling_scan.py) found that only the patterns in
`DOUBLE_ROUNDING` do not read back, so rows holding one take the exact doubles; a sample of
each block is still read back, so a different orjson that spells differently is noticed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import msgspec
import numpy as np
import orjson

_encode_json = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder(list[float | None]).decode
_decode_flat = msgspec.json.Decoder(list[float]).decode
_NUMPY = orjson.OPT_SERIALIZE_NUMPY

F32 = np.dtype("<f4")

#: float32 bit patterns (sign bit cleared) whose shortest spelling, read as a double and then
#: rounded to float32, gives a neighbour (double rounding): ±7.038531e-26 reads back as
#: ±7.0385313e-26. The only ones among all 4,278,190,080 finite float32 (bench/f32_spelling_scan.py,
#: orjson 3.13 and msgspec 0.23; tests/test_store_values.py checks them against the installed
#: versions).
DOUBLE_ROUNDING = np.array([0x15AE43FD], dtype=np.uint32)

#: `f32_json_rows` reads back one row in this many (the first of each stretch), see there.
SAMPLE_EVERY = 64


class StoredValues(NamedTuple):
    """One record's values as stored."""

    json: str  # compact JSON array: what the `activations` relation shows
    f32: bool  # every value is a float32, spelled with float32's shortest digits
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
                out[i] = StoredValues("[]", True, None, None)
            continue
        # None becomes NaN; one array per record length keeps this a few numpy calls.
        block = records if len(rows) == len(records) else [records[i] for i in rows]
        for i, stored in zip(rows, _encode_block(np.array(block, dtype=np.float64)), strict=True):
            out[i] = stored
    return out  # type: ignore[return-value]


def encode_f32(block: np.ndarray) -> tuple[list[str], list[float | None], list[int | None]]:
    """Store-ready values of the rows of a 2-D float32 (or float16) array — a scrape's
    records — as three lists: texts, maxima, peak indices. The same as `encode` of the rows
    as lists of doubles (every value is a float32, so each row is stored with `values_f32`
    set), without making a Python float of each value: that round trip cost a scrape more
    than spelling the values did."""
    block = np.asarray(block)
    if block.ndim != 2:
        raise ValueError(f"encode_f32 takes a 2-D array, not shape {block.shape}")
    rows, width = block.shape
    if rows == 0:
        return [], [], []
    if width == 0:
        return ["[]"] * rows, [None] * rows, [None] * rows
    narrow = np.ascontiguousarray(block, dtype=F32)
    finite = np.isfinite(narrow)
    if finite.all():
        peaks = narrow.argmax(axis=1)
        tops: list[float | None] = narrow[np.arange(rows), peaks].astype(np.float64).tolist()
        return f32_json_rows(narrow), tops, peaks.tolist()
    # NaN and ±inf are "no value": spelled null, never a row's maximum
    masked = np.where(finite, narrow, -np.inf)
    peak_arr = masked.argmax(axis=1)
    top_arr = masked[np.arange(rows), peak_arr].astype(np.float64)
    none = top_arr == -math.inf
    tops = [None if n else t for t, n in zip(top_arr.tolist(), none.tolist(), strict=True)]
    peaks_out: list[int | None] = [
        None if n else p for p, n in zip(peak_arr.tolist(), none.tolist(), strict=True)
    ]
    return f32_json_rows(np.where(finite, narrow, np.float32(np.nan))), tops, peaks_out


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
        narrow[~finite] = np.nan  # orjson writes NaN as null
        masked = np.where(finite, wide, -np.inf)
    peaks = masked.argmax(axis=1)
    tops = masked[np.arange(len(wide)), peaks].tolist()
    peaks = peaks.tolist()
    f32_rows = [row for row, ok in enumerate(exact) if ok]
    spelled = f32_json_rows(narrow if len(f32_rows) == len(exact) else narrow[f32_rows])
    texts = dict(zip(f32_rows, spelled, strict=True))
    out = []
    for row, ok in enumerate(exact):
        top, peak = tops[row], peaks[row]
        if top == -math.inf:
            top, peak = None, None
        if ok:
            out.append(StoredValues(texts[row], True, top, peak))
        else:
            vals = [
                v if f else None
                for v, f in zip(wide[row].tolist(), finite[row].tolist(), strict=True)
            ]
            out.append(StoredValues(encode_json(vals), False, top, peak))
    return out


def f32_json(vector: np.ndarray) -> str:
    """A float32 vector as compact JSON: shortest float32 spellings, NaN as null.

    Checked: each spelling, parsed as a double and rounded to float32, must give the value
    back (an exhaustive run over all 4.28e9 finite float32 found 2 that do not, through the
    double rounding). A vector that fails is spelled with its exact doubles instead, which
    read back through float32 just the same, only longer.
    """
    vector = np.ascontiguousarray(vector, dtype=F32)
    text = spell_f32(vector)
    if np.array_equal(decode_f32(text), vector, equal_nan=True):
        return text
    wide = vector.astype(np.float64).tolist()
    return encode_json([None if math.isnan(v) else v for v in wide])


def f32_json_rows(block: np.ndarray) -> list[str]:
    """`f32_json` of every row of a 2-D float32 array, the same texts, without reading each
    text back: rows holding a `DOUBLE_ROUNDING` pattern are spelled with their exact doubles
    (what `f32_json`'s check does for them), rows holding NaN / ±inf take the one-row path,
    and every other row is orjson's spelling as it is.

    One row in `SAMPLE_EVERY` is still read back (about 1/64 of the old check's cost): the
    scan that proves `DOUBLE_ROUNDING` complete was run with one orjson, and the package only
    asks for orjson ≥ 3.9; should an installed version spell some values differently and
    wrongly, the sample catches it unless it is rare, and the block is then checked in full."""
    block = np.ascontiguousarray(block, dtype=F32)
    if block.ndim != 2:
        raise ValueError(f"f32_json_rows takes a 2-D array, not shape {block.shape}")
    rows, width = block.shape
    if rows == 0 or width == 0:
        return ["[]"] * rows
    finite = np.isfinite(block).all(axis=1)
    if not finite.all():
        out = [""] * rows
        for i in np.flatnonzero(~finite).tolist():
            out[i] = f32_json(block[i])
        keep = np.flatnonzero(finite)
        for i, text in zip(keep.tolist(), f32_json_rows(block[keep]), strict=True):
            out[i] = text
        return out
    texts = spell_f32_rows(block)
    magnitude = block.view(np.uint32) & np.uint32(0x7FFFFFFF)
    exact = set(np.flatnonzero(np.isin(magnitude, DOUBLE_ROUNDING).any(axis=1)).tolist())
    sample = [i for i in range(0, rows, SAMPLE_EVERY) if i not in exact]
    if not _reads_back([texts[i] for i in sample], block[sample]).all():
        exact.update(np.flatnonzero(~_reads_back(texts, block)).tolist())
    for i in exact:
        texts[i] = encode_json(block[i].astype(np.float64).tolist())
    return texts


def _reads_back(texts: list[str], block: np.ndarray) -> np.ndarray:
    """Per row: does each text, read as a reader does (doubles rounded to float32), give the
    row's float32 back? The texts are joined into one flat JSON array: one C call."""
    if not texts:
        return np.ones(0, dtype=bool)
    flat = "[" + ",".join(t[1:-1] for t in texts) + "]"
    back = np.fromiter(_decode_flat(flat), dtype=np.float64, count=block.size)
    same: np.ndarray = (back.astype(F32).reshape(block.shape) == block).all(axis=1)
    return same


def spell_f32_rows(block: np.ndarray) -> list[str]:
    """orjson's shortest spellings of each row of a finite 2-D float32 array: one call per
    row (as fast as one call for the whole block, which must then be cut into rows)."""
    dumps = orjson.dumps
    return [dumps(row, option=_NUMPY).decode() for row in block]


def spell_f32(vector: np.ndarray) -> str:
    """orjson's shortest float32 spellings of a contiguous float32 vector (NaN as null)."""
    return orjson.dumps(vector, option=_NUMPY).decode()


def decode(text: str | bytes, f32: bool | int) -> list[float | None]:
    """A stored record's values as doubles (None where the source had none).

    `f32`: the text spells float32 values; each is rounded back to its float32.
    """
    wide = _decode_json(text)
    if not f32 or not wide:
        return wide
    if None in wide:
        arr = np.array([math.nan if v is None else v for v in wide], dtype=F32)
        out = arr.astype(np.float64).tolist()
        return [None if v is None else x for v, x in zip(wide, out, strict=True)]
    result: list[float | None] = np.array(wide, dtype=F32).astype(np.float64).tolist()
    return result


def decode_f32(text: str | bytes) -> np.ndarray:
    """A JSON array of float32 spellings (an embedding) as a float32 vector; null = NaN."""
    wide = _decode_json(text)
    if None in wide:
        return np.array([math.nan if v is None else v for v in wide], dtype=F32)
    return np.array(wide, dtype=F32)


def blob_to_json(blob: bytes | None) -> str | None:
    """Little-endian float32 bytes (the schema-5 and embedding BLOBs) as `f32_json` text."""
    return None if blob is None else f32_json(np.frombuffer(blob, dtype=F32))


def encode_json(values: Sequence[float | None]) -> str:
    """Values as compact JSON text (shortest round-trip spellings, None as null)."""
    return _encode_json(values).decode()
