"""The server's HTML fragments: the fast heat-map loop draws exactly what its definition
(`_colour` per value, the newline/tab marks, then `html.escape`) draws."""

from __future__ import annotations

import html
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from neuronatlas.read.render import _colour, heatmap_html, record_row, records_html
from neuronatlas.read.views import Record


def reference(tokens, values, scale=None, peak=None) -> str:
    """heatmap_html as first written: one helper call per token."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
    if scale is None:
        scale = max(finite, default=0.0)
    spans = []
    for i, (tok, v) in enumerate(zip(tokens, values, strict=False)):
        label = "NaN" if v is None else f"{v:.3f}"
        cls = "na-tok na-peak" if i == peak else "na-tok"
        shown = html.escape(tok.replace("\n", "⏎\n").replace("\t", "⇥"))
        spans.append(
            f'<span class="{cls}" style="background:{_colour(v, scale)}" '
            f'data-v="{label}" title="{label}">{shown}</span>'
        )
    return f'<div class="na-heat">{"".join(spans)}</div>'


values = st.one_of(
    st.none(),
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-45, -1e-45, 3.4e38, -3.4e38, 0.0005, -0.0005]),
)
scales = st.one_of(st.none(), st.floats(allow_nan=True), st.sampled_from([0.0, -1.0, 1e-30]))


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(st.text(max_size=6), values), max_size=12),  # NUL, newlines, quotes too
    scales,
    st.one_of(st.none(), st.integers(-1, 12)),
)
def test_heatmap_html_matches_its_definition(pairs, scale, peak):
    tokens = [t for t, _ in pairs]
    vals = [v for _, v in pairs]
    assert heatmap_html(tokens, vals, scale, peak) == reference(tokens, vals, scale, peak)


def test_tokens_are_escaped_and_marked():
    out = heatmap_html(['<a href="x">\n', "\t&'"], [1.0, -0.0], 2.0, peak=0)
    assert "&lt;a href=&quot;x&quot;&gt;⏎\n" in out and "⇥&amp;&#x27;" in out
    assert 'class="na-tok na-peak" style="background:rgba(255,140,0,0.500)"' in out
    assert 'data-v="-0.000"' in out and "rgba(255,140,0,0.000)" in out


def test_colours_at_the_rounding_halves_are_formatted_exactly():
    """Alphas at k + 0.5 thousandths (where a looked-up colour could round the wrong way)."""
    vals = [(k + 0.5) / 1000 for k in range(1000)] + [-(k + 0.5) / 1000 for k in range(1000)]
    for scale in (1.0, 0.6, 3.0, 1e-3 * 7):
        toks = ["x"] * len(vals)
        assert heatmap_html(toks, vals, scale) == reference(toks, vals, scale)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(st.text(max_size=4), values), max_size=8),
            st.one_of(st.none(), st.integers(-1, 8)),
            st.one_of(st.none(), st.floats(allow_nan=False)),
        ),
        max_size=6,
    ),
    scales,
)
def test_a_pages_records_drawn_together_match_each_drawn_alone(records, scale):
    """records_html (one pass for all of a page's tokens) == record_row of each, joined."""
    recs = [
        Record(
            tokens=[t for t, _ in pairs],
            activations=[v for _, v in pairs],
            max_activation=top,
            peak_index=peak,
        )
        for pairs, peak, top in records
    ]
    assert records_html(recs, scale) == "".join(record_row(r, scale) for r in recs)
