"""The explorer decodes a neuron's records in one batch (one parse, one float32 rounding and
one NaN test over all values); every record must read exactly as `store.values.decode`
reads its row alone, whatever mix of float32 rows, exact-double rows, empty rows and missing
values the neuron has."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from neuronatlas.read import neuron as read_neuron
from neuronatlas.store import values

_value = st.one_of(
    st.none(),
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.floats(-1e30, 1e30),  # doubles (most are no float32): stored as exact doubles
)
_record = st.lists(_value, max_size=6)


def _row(cat: str, vals: list[float | None]) -> tuple:
    stored = values.encode([vals])[0]
    return (cat, '["a"]', stored.json, stored.f32, stored.max_activation, stored.peak_index)


def _same(got: list[float | None], want: list[float | None]) -> bool:
    return len(got) == len(want) and all(
        (g is None and w is None)
        or (g is not None and w is not None and g == w)
        or (g is not None and w is not None and math.isnan(g) and math.isnan(w))
        for g, w in zip(got, want, strict=True)
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["top", "random"]), _record), max_size=8))
def test_batched_decoding_reads_each_record_as_decode_does(recs):
    rows = [_row(c, v) for c, v in recs]
    decoded = read_neuron._decoded(rows)
    for row, record in zip(rows, decoded, strict=True):
        assert _same(record.activations, values.decode(row[2], row[3])), row
        assert (record.max_activation, record.peak_index) == (row[4], row[5])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["top", "random", "quantile_0"]), _record), max_size=8))
def test_shown_records_and_histogram_count_every_row(recs):
    rows = sorted((_row(c, v) for c, v in recs), key=lambda r: r[0])
    shown, counts, hist = read_neuron._records(rows, limit=2)
    for cat, n in counts.items():
        want = [values.decode(r[2], r[3]) for r in rows if r[0] == cat][:2]
        assert len(shown[cat]) == min(n, 2)
        assert all(_same(r.activations, w) for r, w in zip(shown[cat], want, strict=True))
    finite = sum(v is not None for _, vals in recs for v in vals)
    assert sum(hist.counts) == finite
