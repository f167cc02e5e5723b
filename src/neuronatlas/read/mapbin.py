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


# ---- version 2: quantised, tiled, level-of-detail order (`/api/map/points/compact`) ----------
#
# What the page needs to draw 307,200 points at once: a software-rendered WebGL frame costs
# about the same per point submitted whether the point is on screen or clipped, so the page
# must submit only the points of the tiles in view, and when too many are in view, an even
# sample of each tile. The buffer is ordered for exactly that: points sorted into a
# GRID × GRID raster of tiles over the map's bounding box (row-major, tile = ty * GRID + tx,
# y upwards), each tile's points in a seeded random order, so every prefix of a tile is a
# uniform sample of it. One point is one 12-byte row, so WebGL reads the coordinates straight
# from the buffer (a strided attribute) and nothing is parsed or copied:
#
#     offset 0   8 bytes  magic b"NAMAP\x00\x02\x00" (format version 2)
#     offset 8   uint32   n        offset 12  uint32 flags (as version 1)
#     offset 16  uint32   GRID     offset 20  uint32 0 (reserved)
#     offset 24  float32  x0, x1, y0, y1: the bounding box the coordinates are quantised to
#     offset 40  uint32[GRID² + 1]  where each tile's rows start (the last: n)
#     then n rows of 12 bytes: uint16 x, uint16 y (0..65535 across the box), uint16 fine
#     cluster, uint16 coarse cluster (NOISE16 = -1, NONE16 = no cluster), uint32 identity
#     (layer << 20 | neuron)
#
# 12 bytes a point instead of 22; the coordinates keep 1/65,535 of the map's extent, finer
# than a pixel until the view is zoomed in 50× on a 1,280-pixel-wide map.

MAGIC2 = b"NAMAP\x00\x02\x00"
HEADER2 = struct.Struct("<8sIIII4f")
GRID = 16
ROW = np.dtype([("x", "<u2"), ("y", "<u2"), ("cluster", "<u2"), ("coarse", "<u2"), ("id", "<u4")])
NOISE16, NONE16 = 0xFFFE, 0xFFFF
NEURON_BITS = 20


class CompactPoints(NamedTuple):
    """A decoded version-2 buffer: the points in the buffer's (tile, level-of-detail) order,
    coordinates dequantised, and where each tile's points start."""

    points: MapPoints
    box: tuple[float, float, float, float]
    grid: int
    tile_starts: np.ndarray


def _ids16(values: list[int | None], what: str) -> np.ndarray:
    ids = np.fromiter((-2 if v is None else v for v in values), dtype=np.int64, count=len(values))
    if ids.size and ids.max() >= NOISE16:
        raise ValueError(f"a {what} cluster id above {NOISE16 - 1:,} does not fit the uint16 map")
    return np.where(ids == -2, NONE16, np.where(ids == -1, NOISE16, ids)).astype("<u2")


def _quantise(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo
    if span <= 0:
        return np.zeros(len(v), dtype="<u2")
    return np.clip(np.rint((v - lo) / span * 65535.0), 0, 65535).astype("<u2")


def encode_compact(data: MapData, grid: int = GRID, seed: int = 0) -> bytes:
    """The points of `read.map.map_data` as a version-2 buffer (see above); deterministic
    for a given map, so a cached answer and a fresh one are the same bytes."""
    cols = data.columns
    n = len(cols.layer)
    layer = np.asarray(cols.layer, dtype=np.int64)
    neuron = np.asarray(cols.neuron, dtype=np.int64)
    if n and (layer.max() >= 1 << (32 - NEURON_BITS) or neuron.max() >= 1 << NEURON_BITS):
        raise ValueError(
            f"the compact map holds layers below {1 << (32 - NEURON_BITS):,} and neurons below "
            f"{1 << NEURON_BITS:,}; use /api/map/points for this atlas"
        )
    x = np.asarray(cols.x, dtype=np.float64)
    y = np.asarray(cols.y, dtype=np.float64)
    x0, x1 = (float(x.min()), float(x.max())) if n else (0.0, 1.0)
    y0, y1 = (float(y.min()), float(y.max())) if n else (0.0, 1.0)
    rows = np.empty(n, dtype=ROW)
    rows["x"], rows["y"] = _quantise(x, x0, x1), _quantise(y, y0, y1)
    rows["cluster"] = _ids16(cols.cluster, "fine")
    rows["coarse"] = _ids16(cols.coarse, "coarse")
    rows["id"] = (layer << NEURON_BITS | neuron).astype("<u4")
    tx = np.minimum(rows["x"].astype(np.int64) * grid // 65536, grid - 1)
    ty = np.minimum(rows["y"].astype(np.int64) * grid // 65536, grid - 1)
    tile = ty * grid + tx
    # a random key within each tile: a stable sort by tile keeps it, so prefixes are samples
    shuffle = np.random.default_rng(seed).permutation(n)
    order = shuffle[np.argsort(tile[shuffle], kind="stable")]
    starts = np.searchsorted(tile[order], np.arange(grid * grid + 1)).astype("<u4")
    flags = (BUILT if data.built else 0) | (TRUNCATED if data.truncated else 0)
    head = HEADER2.pack(MAGIC2, n, flags, grid, 0, x0, x1, y0, y1)
    return head + starts.tobytes() + rows[order].tobytes()


def decode_compact(buf: bytes) -> CompactPoints:
    """Read a buffer written by `encode_compact` (for Python clients and the tests)."""
    if len(buf) < HEADER2.size:
        raise ValueError(f"a compact map buffer has at least {HEADER2.size} bytes, got {len(buf)}")
    magic, n, flags, grid, _, x0, x1, y0, y1 = HEADER2.unpack_from(buf)
    if magic != MAGIC2:
        raise ValueError(f"not a compact map buffer (magic {magic!r}, expected {MAGIC2!r})")
    at = HEADER2.size + 4 * (grid * grid + 1)
    if len(buf) != at + n * ROW.itemsize:
        raise ValueError(
            f"a compact map buffer of {n} points has {at + n * ROW.itemsize} bytes, got {len(buf)}"
        )
    starts = np.frombuffer(buf, dtype="<u4", count=grid * grid + 1, offset=HEADER2.size)
    rows = np.frombuffer(buf, dtype=ROW, count=n, offset=at)

    def ids(v: np.ndarray) -> np.ndarray:
        out = v.astype("<i4")
        return np.where(v == NONE16, NO_CLUSTER, np.where(v == NOISE16, -1, out)).astype("<i4")

    pts = MapPoints(
        built=bool(flags & BUILT),
        truncated=bool(flags & TRUNCATED),
        x=(x0 + rows["x"] / 65535.0 * (x1 - x0)).astype("<f4"),
        y=(y0 + rows["y"] / 65535.0 * (y1 - y0)).astype("<f4"),
        neuron=(rows["id"] & ((1 << NEURON_BITS) - 1)).astype("<u4"),
        cluster=ids(rows["cluster"]),
        coarse=ids(rows["coarse"]),
        layer=(rows["id"] >> NEURON_BITS).astype("<u2"),
    )
    return CompactPoints(pts, (x0, x1, y0, y1), grid, starts)
