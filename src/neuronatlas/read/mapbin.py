"""The map's points as one binary buffer (`/api/map/points`), for 307,200 points and more.

As JSON the points of a GPT-2-small map are 3.6 MB of text that the browser must parse into
objects before it draws anything; at GPT-2 XL's size, 30 MB. As little-endian typed arrays
they are 22 bytes a point that the page views in place (`Float32Array` over the response
buffer) and hands to WebGL with no parsing. The layout, all little-endian:

    offset 0   8 bytes  magic b"NAMAP\\x00\\x01\\x00" (format version 1)
    offset 8   uint32   n, the number of points
    offset 12  uint32   flags: bit 0 the map is built (else a layer × neuron grid),
                        bit 1 the points were truncated at the cap
    offset 16  float32[n] x,  float32[n] y,  uint32[n] neuron,
               int32[n] fine cluster,  int32[n] coarse cluster,  uint16[n] layer

A cluster of -1 is UMAP/HDBSCAN noise, and NO_CLUSTER (-2**31) stands for JSON's null (no
map, or a map made before the hierarchy). The points come in (layer, neuron) order, as in
`/api/map`; the clusters and their labels are `/api/map/clusters`.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from neuronatlas.read.views import MapData

MAGIC = b"NAMAP\x00\x01\x00"
HEADER = struct.Struct("<8sII")
NO_CLUSTER = -(2**31)
BUILT, TRUNCATED = 1, 2
_FIELDS = (("x", "<f4"), ("y", "<f4"), ("neuron", "<u4"), ("cluster", "<i4"), ("coarse", "<i4"))


class MapPoints(NamedTuple):
    """The decoded buffer: one numpy array per field, aligned by point."""

    built: bool
    truncated: bool
    x: np.ndarray
    y: np.ndarray
    neuron: np.ndarray
    cluster: np.ndarray
    coarse: np.ndarray
    layer: np.ndarray


def _ids(values: list[int | None]) -> np.ndarray:
    return np.fromiter(
        (NO_CLUSTER if v is None else v for v in values), dtype="<i4", count=len(values)
    )


def encode_points(data: MapData) -> bytes:
    """The points of `read.map.map_data` (its texts are not sent) as one buffer."""
    cols = data.columns
    n = len(cols.layer)
    if max(cols.layer, default=0) > 0xFFFF:
        raise ValueError("a layer index above 65,535 does not fit the map's uint16 column")
    flags = (BUILT if data.built else 0) | (TRUNCATED if data.truncated else 0)
    parts = [
        HEADER.pack(MAGIC, n, flags),
        np.asarray(cols.x, dtype="<f4").tobytes(),
        np.asarray(cols.y, dtype="<f4").tobytes(),
        np.asarray(cols.neuron, dtype="<u4").tobytes(),
        _ids(cols.cluster).tobytes(),
        _ids(cols.coarse).tobytes(),
        np.asarray(cols.layer, dtype="<u2").tobytes(),
    ]
    return b"".join(parts)


def decode_points(buf: bytes) -> MapPoints:
    """Read a buffer written by `encode_points` (for Python clients of the API)."""
    if len(buf) < HEADER.size:
        raise ValueError(f"a map buffer has at least {HEADER.size} bytes, got {len(buf)}")
    magic, n, flags = HEADER.unpack_from(buf)
    if magic != MAGIC:
        raise ValueError(f"not a map points buffer (magic {magic!r}, expected {MAGIC!r})")
    want = HEADER.size + n * 22
    if len(buf) != want:
        raise ValueError(f"a map buffer of {n} points has {want} bytes, got {len(buf)}")
    out: dict[str, np.ndarray] = {}
    offset = HEADER.size
    for name, dtype in _FIELDS:
        out[name] = np.frombuffer(buf, dtype=dtype, count=n, offset=offset)
        offset += 4 * n
    layer = np.frombuffer(buf, dtype="<u2", count=n, offset=offset)
    return MapPoints(bool(flags & BUILT), bool(flags & TRUNCATED), layer=layer, **out)
