"""The neuron page: what it shows first, all of it, one category's records, the histogram,
and the stored neighbours it links to.

The HTML page, `/api/neurons/{id}` and its parts, `neuronatlas show --json` and
`Atlas.neuron` all return these records (`read.views`), so a page and its JSON twin cannot
disagree. The N2G section comes from `read.graph` and the similar neurons from
`read.relations`; a section whose stage is not built is named under `unavailable`, not a
failed page.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from itertools import accumulate
from typing import Any

import msgspec
import numpy as np

from neuronatlas.errors import NeuronNotFound
from neuronatlas.ids import canonical
from neuronatlas.read.graph import n2g_summary
from neuronatlas.read.relations import DEFAULT_SIMILAR, similar_or_reason
from neuronatlas.read.render import histogram
from neuronatlas.read.views import (
    Explanation,
    Histogram,
    Nav,
    NeuronPage,
    NeuronRef,
    NeuronSummary,
    Record,
    RecordPage,
    Similar,
    Stats,
)
from neuronatlas.store import browse, derived, reader

MAX_RECORDS = 50
#: Records per category of the full view (`records=` asks for up to 50).
DEFAULT_RECORDS = 10
#: Top records of the first view: what a page shows before anyone scrolls or switches tabs.
FIRST_RECORDS = 5


def neuron_detail(
    conn: sqlite3.Connection,
    neuron_id: str,
    records: int = DEFAULT_RECORDS,
    similar_k: int = DEFAULT_SIMILAR,
) -> NeuronPage:
    """Everything the neuron page shows (the full view): explanations, stats, the first
    `records` records of each category, the histogram of all stored values, N2G, similar
    neurons, navigation."""
    nid = canonical(neuron_id)
    head = reader.neuron_head(conn, nid)
    shown, counts, hist = _records(reader.record_rows(conn, nid), records)
    unavailable: dict[str, str] = {}
    return _page(
        conn,
        head,
        shown,
        counts,
        histogram=hist,
        similar=similar_or_reason(conn, nid, similar_k, unavailable),
        unavailable=unavailable,
        more={},
    )


def neuron_first(
    conn: sqlite3.Connection, neuron_id: str, records: int = FIRST_RECORDS
) -> NeuronPage:
    """What the neuron page shows first, in a few index seeks and one bounded range read:
    explanations, stats, N2G, navigation, the count of each category and the first
    `records` records of the first category (`top` when stored).

    The sections that need every stored record or a join (the histogram, similar neurons,
    the other categories' records) are left out, each named under `more` with the endpoint
    that serves it: a first answer that reads ~60 records to draw one histogram costs five
    times one that does not (bench/README.md, "Explorer at the demo's size")."""
    nid = canonical(neuron_id)
    head, counts, prev, next_ = reader.first_head(conn, nid)
    first = _first_category(counts)
    shown: dict[str, list[Record]] = {}
    if first is not None and records:
        shown[first] = _decoded(reader.category_rows(conn, nid, first, 0, records))
    base = f"/api/neurons/{nid}"
    more = {"histogram": f"{base}/histogram", "similar": f"{base}/similar"}
    for cat, n in counts.items():
        sent = len(shown.get(cat, ()))
        if n > sent:
            more[f"records.{cat}"] = f"{base}/records?category={cat}" + (
                f"&offset={sent}" if sent else ""
            )
    return _page(
        conn,
        head,
        shown,
        counts,
        histogram=None,
        similar=None,
        unavailable={},
        more=more,
        nav=Nav(prev=prev, next=next_),
    )


def _first_category(counts: dict[str, int]) -> str | None:
    """The category a page shows first: `top` when stored, else the first by name."""
    if "top" in counts:
        return "top"
    return min(counts) if counts else None


def _page(
    conn: sqlite3.Connection,
    head: reader.NeuronHead,
    shown: dict[str, list[Record]],
    counts: dict[str, int],
    *,
    histogram: Histogram | None,
    similar: Similar | None,
    unavailable: dict[str, str],
    more: dict[str, str],
    nav: Nav | None = None,
) -> NeuronPage:
    """A NeuronPage from its parts; N2G, and navigation unless given, are read here (two
    seeks each)."""
    nid = head.id
    if nav is None:
        nav = Nav(prev=browse.neighbour(conn, nid, -1), next=browse.neighbour(conn, nid, +1))
    return NeuronPage(
        id=nid,
        layer=head.layer,
        neuron=head.neuron,
        source=head.source,
        stats=msgspec.convert(head.stats, Stats, from_attributes=True),
        explanations=msgspec.convert(head.explanations, list[Explanation], from_attributes=True),
        records=shown,
        record_counts=counts,
        truncated=any(n > len(shown.get(c, ())) for c, n in counts.items()),
        histogram=histogram,
        nav=nav,
        n2g=n2g_summary(conn, nid, unavailable),
        similar=similar,
        unavailable=unavailable,
        more=more,
        stale=derived.stale_parts(conn, nid),
    )


def neuron_records(
    conn: sqlite3.Connection,
    neuron_id: str,
    category: str,
    offset: int = 0,
    limit: int = DEFAULT_RECORDS,
) -> RecordPage:
    """`limit` stored records of one category of a neuron from rank `offset` on. A category
    the neuron does not have is NeuronNotFound, naming the ones it has."""
    nid = browse.require_neuron(conn, neuron_id)
    counts = reader.record_counts(conn, nid)
    if category not in counts:
        stored = ", ".join(sorted(counts)) or "none"
        raise NeuronNotFound(f"{nid} has no {category!r} records (stored categories: {stored})")
    rows = reader.category_rows(conn, nid, category, offset, limit)
    return RecordPage(nid, category, offset, counts[category], _decoded(rows))


def neuron_histogram(conn: sqlite3.Connection, neuron_id: str) -> Histogram:
    """The histogram of every stored activation of a neuron (the value texts only, in one
    parse; no tokens are read)."""
    nid = browse.require_neuron(conn, neuron_id)
    return histogram(_all_values(reader.value_texts(conn, nid)))


_tokens = msgspec.json.Decoder(list[str]).decode
_floats = msgspec.json.Decoder(list[float]).decode
_floats_or_none = msgspec.json.Decoder(list[float | None]).decode


def _records(
    rows: list[tuple[Any, ...]], limit: int
) -> tuple[dict[str, list[Record]], dict[str, int], Histogram]:
    """The first `limit` records of each category, the count per category, and the histogram
    of every stored value. All the rows' value texts are parsed in one msgspec call (a
    neuron's ~60 records at once); shown records are sliced from that array."""
    flat = _all_values([row[2] for row in rows])
    keep: list[int] = []
    counts: dict[str, int] = {}
    for i, row in enumerate(rows):
        seen = counts.get(row[0], 0)
        counts[row[0]] = seen + 1
        if seen < limit:
            keep.append(i)
    shown: dict[str, list[Record]] = {}
    for i, record in zip(keep, _built(rows, flat, keep), strict=True):
        shown.setdefault(rows[i][0], []).append(record)
    return shown, counts, histogram(flat)


def _decoded(rows: list[tuple[Any, ...]]) -> list[Record]:
    """Every row as a Record, their value texts parsed in one call."""
    return _built(rows, _all_values([row[2] for row in rows]), range(len(rows)))


def _built(rows: list[tuple[Any, ...]], flat: np.ndarray, keep: Iterable[int]) -> list[Record]:
    """Records of the rows at `keep`, their values sliced from `flat` (the values of all
    `rows` in order) and read as the library reads them (`store.values.decode`): float32
    spellings rounded back to their float32, NaN as None. The rounding and NaN test run once
    over all values, not per record."""
    # a JSON array of numbers and nulls: one value more than its commas, none in "[]"
    sizes = [0 if len(r[2]) <= 2 else r[2].count(",") + 1 for r in rows]
    starts = [0, *accumulate(sizes)]  # a handful of records: plain Python beats numpy here
    f32 = [bool(r[3]) for r in rows]
    if all(f32):
        flat = flat.astype(np.float32).astype(np.float64)
    elif any(f32):  # rows of exact doubles stay as they are (they may not fit a float32)
        mask = np.repeat(np.array(f32), sizes)
        flat = flat.copy()
        flat[mask] = flat[mask].astype(np.float32)
    nan = bool(np.isnan(flat).any())
    out = []
    for i in keep:
        _, tokens, _, _, top, peak = rows[i]
        values: list[float | None] = flat[starts[i] : starts[i + 1]].tolist()
        if nan:
            values = [None if v != v else v for v in values]  # NaN is the only value != itself
        out.append(Record(_tokens(tokens), values, top, peak))
    return out


def _all_values(texts: list[str]) -> np.ndarray:
    """Every value of the value texts (JSON arrays) as one float64 array, NaN for null."""
    joined = "[" + ",".join(t[1:-1] for t in texts if len(t) > 2) + "]"
    if "null" not in joined:
        return np.array(_floats(joined), dtype=np.float64)
    wide = [math.nan if v is None else v for v in _floats_or_none(joined)]
    return np.array(wide, dtype=np.float64)


def summary(conn: sqlite3.Connection, neuron_id: str) -> NeuronSummary:
    """A stored neuron's id and primary explanation; BadNeuronId / NeuronNotFound."""
    nid = browse.require_neuron(conn, neuron_id)
    return msgspec.convert(browse.summaries(conn, [nid])[nid], NeuronSummary, from_attributes=True)


def step(conn: sqlite3.Connection, neuron_id: str, by: int) -> NeuronRef:
    """The stored neuron after (by=+1) or before (by=-1) a stored one, wrapping around."""
    return NeuronRef(browse.neighbour(conn, browse.require_neuron(conn, neuron_id), by))


def random_neuron(conn: sqlite3.Connection) -> NeuronRef:
    return NeuronRef(browse.random_neuron(conn))
