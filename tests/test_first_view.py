"""The neuron page's first view: its excerpts are the full page's heat-maps without the colour
(which the browser paints from `data-f32` or `data-f64`), and those values are the stored
ones, exactly."""

from __future__ import annotations

import math
import re
from base64 import b64decode

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from neuronatlas.read.first_view import plain_records_html, record_tabs_html, values_attr
from neuronatlas.read.render import records_html
from neuronatlas.read.views import Nav, NeuronPage, Record, Stats

values = st.one_of(
    st.none(),
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    # as stored: float32 (the smallest subnormal, the largest, a rounding half)
    st.sampled_from([float(np.float32(x)) for x in (0.0, -0.0, 1e-45, -3.4e38, 0.0005, -0.0005)]),
)
records = st.lists(
    st.tuples(
        st.lists(st.tuples(st.text(max_size=6), values), max_size=12),  # NUL, <, & too
        st.one_of(st.none(), st.integers(-1, 12)),
        st.one_of(st.none(), st.floats(width=32, allow_nan=False)),
    ),
    max_size=6,
)


def as_records(drawn) -> list[Record]:
    return [
        Record(
            tokens=[t for t, _ in pairs],
            activations=[v for _, v in pairs],
            max_activation=top,
            peak_index=peak,
        )
        for pairs, peak, top in drawn
    ]


def uncoloured(full: str) -> str:
    """The full page's heat-maps with each span's colour, value and tooltip taken off."""
    full = re.sub(r'<span class="na-tok na-peak" [^>]*>', '<span class="na-peak">', full)
    return re.sub(r'<span class="na-tok" [^>]*>', "<span>", full)


@settings(max_examples=300, deadline=None)
@given(records, st.one_of(st.none(), st.floats(allow_nan=False)))
def test_first_view_rows_are_the_full_rows_less_their_colour(drawn, scale):
    recs = as_records(drawn)
    plain = plain_records_html(recs)
    assert re.sub(r' data-f(32|64)="[^"]*"', "", plain) == uncoloured(records_html(recs, scale))
    assert len(re.findall(r'class="na-heat" data-f(?:32|64)="', plain)) == len(recs)


def decoded(attr: str) -> tuple[int, np.ndarray]:
    width, text = re.fullmatch(r'data-f(32|64)="([A-Za-z0-9+/=]*)"', attr).groups()
    return int(width), np.frombuffer(b64decode(text, validate=True), dtype=f"<f{int(width) // 8}")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(values, st.floats()), max_size=70))  # float32 values, any doubles
def test_the_browser_gets_the_stored_values_exactly(vals):
    width, got = decoded(values_attr(vals))
    want = np.array([math.nan if v is None else v for v in vals], dtype=np.float64)
    np.testing.assert_array_equal(got.astype(np.float64), want)
    assert (np.signbit(got) == np.signbit(want))[~np.isnan(want)].all()
    with np.errstate(over="ignore"):  # beyond float32's range: inf, not the value
        as_f32 = all(v is None or math.isnan(v) or float(np.float32(v)) == v for v in vals)
    assert width == (32 if as_f32 else 64)  # the short form whenever it loses nothing


def page(counts: dict[str, int], shown: dict[str, list[Record]]) -> NeuronPage:
    return NeuronPage(
        id="L01N0002",
        layer=1,
        neuron=2,
        source="test",
        stats=Stats(None, None, None, None, 2.0, None),
        explanations=[],
        records=shown,
        record_counts=counts,
        truncated=True,
        histogram=None,
        nav=Nav(prev="L01N0001", next="L01N0003"),
        n2g=None,
        similar=None,
        unavailable={},
        more={},
    )


def test_record_tabs_in_reading_order_with_where_the_rest_is():
    rec = Record(tokens=["a", "<b>"], activations=[1.0, -2.0], max_activation=1.0, peak_index=0)
    n = page({"random": 3, "top": 7, 'q&"x': 1, "quantile_1": 0}, {"top": [rec, rec]})
    html = record_tabs_html(n, full=False, page_size=50)
    tabs = re.findall(r'data-tab="([^"]*)"', html)
    assert tabs == ["top", "q&amp;&quot;x", "quantile_1", "random"]  # category_order
    assert html.count(" hidden") == 3 and 'data-body="top" data-shown="2" data-total="7"' in html
    assert 'data-src="/api/neurons/L01N0002/records?category=q%26%22x"' in html
    assert html.count('class="na-heat" data-f32=') == 2 and "&lt;b&gt;" in html
    assert html.count("more-row") == 3  # all but quantile_1, which holds none
    assert 'href="/neurons/L01N0002?view=full#records"' in html
    full = record_tabs_html(n, full=True, page_size=50)
    assert full.count('class="na-tok') == 4 and "data-f32" not in full
    assert 'href="/api/neurons/L01N0002/records?category=top&amp;offset=2&amp;limit=50"' in full
    assert record_tabs_html(page({}, {}), False, 50) == '<p class="muted">No records stored.</p>'


def test_first_head_is_the_four_reads_it_replaces(synthetic_atlas):
    """`reader.first_head` (one statement) gives what `neuron_head`, `record_counts` and both
    `browse.neighbour`s give, wrapping around at the first and last neuron, and refuses a
    neuron the atlas does not hold as `neuron_head` does."""
    import pytest

    from neuronatlas.errors import NeuronNotFound
    from neuronatlas.store import browse, open_reader, reader

    conn = open_reader(synthetic_atlas("first_head", layers=2, per_layer=3))
    ids = reader.neuron_ids(conn)
    assert len(ids) == 6
    for nid in ids:
        got = reader.first_head(conn, nid)
        assert got.head == reader.neuron_head(conn, nid)
        assert list(got.counts.items()) == list(reader.record_counts(conn, nid).items())
        assert got.counts == {"random": 2, "top": 3}
        assert (got.prev, got.next) == (
            browse.neighbour(conn, nid, -1),
            browse.neighbour(conn, nid, 1),
        )
    assert reader.first_head(conn, ids[0]).prev == ids[-1]
    assert reader.first_head(conn, ids[-1]).next == ids[0]
    with pytest.raises(NeuronNotFound, match="L07N0000 is not in this atlas"):
        reader.first_head(conn, "L07N0000")
    conn.close()
