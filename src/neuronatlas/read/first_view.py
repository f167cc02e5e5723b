"""The neuron page's first view: its excerpts drawn as readable text, coloured by the browser.

A heat-map span per token (`render.records_html`: colour, label and tooltip on each of a page's
~320 tokens) was most of what the server drew for the page people open, and ~80 % of its bytes
(bench/README.md, "The neuron page people open"). The first view draws each excerpt instead as
its tokens in bare `<span>`s, the peak token marked, with the values alongside in one
attribute (`values_attr`); `web/static/neuron.js` colours them exactly as `render._spans`
would have. Without JavaScript the excerpts stay readable (text, peak in bold, each record's
max) and the page links to its `?view=full` twin, drawn whole by `render.records_html`.
"""

from __future__ import annotations

import math
from base64 import b64encode
from collections.abc import Sequence
from functools import lru_cache
from html import escape
from urllib.parse import quote, urlencode

import numpy as np

from neuronatlas.read.render import _row, _shown_all, category_order, records_html
from neuronatlas.read.views import NeuronPage, Record


def values_attr(values: Sequence[float | None]) -> str:
    """A record's `data-f32="..."` (or `data-f64`): its values, little-endian, base64; NaN
    where there is none.

    Activations are stored as float32 (float32 values, or exact doubles from JSON imports),
    so the browser colours and labels (`%.3f`) the very value the server would have drawn,
    never a rounded copy: float32 when every value is one (5.3 characters a value, ~2.5x
    shorter than the nine digits a float32 needs as text), float64 otherwise."""
    width, raw = _packed(values)
    return f'data-f{width}="{_b64(raw)}"'


def _packed(values: Sequence[float | None]) -> tuple[int, bytes]:
    """The values as float32 bytes when that loses nothing, else as float64 bytes."""
    wide = np.array([math.nan if v is None else v for v in values], dtype="<f8")
    with np.errstate(over="ignore"):
        narrow = wide.astype("<f4")
    if np.array_equal(narrow, wide, equal_nan=True):
        return 32, narrow.tobytes()
    return 64, wide.tobytes()


def _b64(raw: bytes) -> str:
    return b64encode(raw).decode("ascii")


def plain_records_html(records: Sequence[Record]) -> str:
    """Each record as `render.record_row` lays it out (its max, then its excerpt), the excerpt
    as uncoloured token spans with its values (`values_attr`) for the page's script.

    Like `render.records_html`, the tokens and values of all the records are escaped and
    converted in one pass each."""
    tokens: list[str] = []
    values: list[float | None] = []
    bounds = [0]
    for r in records:
        n = min(len(r.tokens), len(r.activations))
        tokens += r.tokens[:n]
        values += r.activations[:n]
        bounds.append(bounds[-1] + n)
    shown, (width, raw) = _shown_all(tokens), _packed(values)
    size = width // 8
    rows = []
    for r, a, b in zip(records, bounds, bounds[1:], strict=False):
        peak = r.peak_index
        if peak is not None and 0 <= peak < b - a:  # bold without the script too (.na-peak)
            p = a + peak
            peak_span = f'<span class="na-peak">{shown[p]}</span>'
            body = _bare(shown[a:p]) + peak_span + _bare(shown[p + 1 : b])
        else:
            body = _bare(shown[a:b])
        data = _b64(raw[size * a : size * b])
        rows.append(_row(r, f'<div class="na-heat" data-f{width}="{data}">{body}</div>'))
    return "".join(rows)


def _bare(shown: list[str]) -> str:
    """Escaped tokens, each in a `<span>` of its own."""
    return "<span>" + "</span><span>".join(shown) + "</span>" if shown else ""


def record_tabs_html(n: NeuronPage, full: bool, page_size: int) -> str:
    """The records card's tab strip and one body per category (`category_order`), the first
    open: the records the page holds (`records_html` on the full page, `plain_records_html`
    on the first view), how many of the category's total they are and where the rest is.

    Drawn here rather than in the template: a dozen expressions per category under Jinja's
    escaping cost the first view more than its records (~0.15 ms of a ~1 ms page)."""
    cats = category_order(n.record_counts)
    if not cats:
        return '<p class="muted">No records stored.</p>'
    base = f"/neurons/{n.id}"
    api = f"/api/neurons/{n.id}/records?category="
    scale = n.stats.max_activation
    tabs, bodies = [], []
    for i, cat in enumerate(cats):
        name, quoted = _category_text(cat)
        total, shown = n.record_counts.get(cat, 0), n.records.get(cat, [])
        src = api + quoted
        tabs.append(
            f'<button type="button" role="tab" data-tab="{name}" class="{"on" if i == 0 else ""}">'
            f'{name} <span class="muted">{total}</span></button>'
        )
        rows = (records_html(shown, scale) if full else plain_records_html(shown)) if shown else ""
        more = ""
        if total > len(shown):
            if full:
                link = (
                    f'<a class="more" href="{src}&amp;offset={len(shown)}&amp;limit={page_size}">'
                    f"The next {page_size} as JSON.</a>"
                )
            else:
                link = (
                    f'<a class="more" href="{base}?view=full#records">'
                    f"Up to {page_size} of each category on the full page.</a>"
                )
            more = (
                f'<p class="muted more-row">Showing <span class="n-shown">{len(shown)}</span> '
                f"of {total}. {link}</p>"
            )
        bodies.append(
            f'<div class="tab-body" data-body="{name}" data-shown="{len(shown)}" '
            f'data-total="{total}" data-src="{src}"{" hidden" if i else ""}>'
            f'<div class="rows">{rows}</div>{more}</div>'
        )
    return f'<div class="tabs" role="tablist">{"".join(tabs)}</div>{"".join(bodies)}'


@lru_cache(maxsize=256)
def _category_text(category: str) -> tuple[str, str]:
    """A category's name escaped for HTML, and quoted for a URL then escaped: the same few
    names (top, random, quantile_N) on every page, so worked out once each."""
    return escape(category), escape(quote(category, safe=""))


def trace_url(n: NeuronPage, max_chars: int) -> str | None:
    """The page's Trace link: the next token after the strongest excerpt, read up to its peak
    (the last 64 tokens, at most `max_chars` characters), with this neuron in focus; None
    without a top record that has a peak. Built here, not in the template, where joining and
    quoting the tokens was a sixth of what the rest of the page cost to draw."""
    top = n.records.get("top")
    if not top or top[0].peak_index is None:
        return None
    peak = top[0].peak_index
    text = "".join(top[0].tokens[max(0, peak - 63) : peak + 1])[-max_chars:]
    return "/trace?" + urlencode({"text": text, "focus": n.id})
