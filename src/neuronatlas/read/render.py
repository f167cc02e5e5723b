"""HTML fragments shared by the pages and the notebook API: token heat-maps and histograms.

Pure functions from the read model's records to self-contained HTML/SVG strings (escaped), so
the server's templates and `Atlas.neuron(...)._repr_html_` draw excerpts the same way with no
JavaScript.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from html import escape

import numpy as np

from neuronatlas.read.views import Histogram, Record

# Class-prefixed so the rules can be dropped into a notebook without touching its own styles.
HEATMAP_CSS = """
.na-heat{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;
 line-height:1.9;white-space:pre-wrap;word-break:break-word;margin:0 0 6px 0}
.na-tok{position:relative;border-radius:3px;padding:1px 0;cursor:default}
.na-tok:hover{outline:1px solid #888}
.na-tok:hover::after{content:attr(data-v);position:absolute;left:0;top:-1.9em;z-index:5;
 background:#222;color:#fff;font-size:11px;padding:1px 5px;border-radius:3px;white-space:nowrap}
.na-peak{font-weight:700}
.na-row{display:flex;gap:10px;align-items:baseline}
.na-max{font-family:ui-monospace,monospace;font-size:12px;color:#888;min-width:4.5em;
 text-align:right}
"""


def with_code(message: str | None) -> str:
    """A message with `backticked` commands shown as <code>, everything else escaped."""
    parts = escape(message or "").split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _colour(value: float | None, scale: float) -> str:
    """Orange for positive activations, blue for negative, alpha ∝ |value| / scale."""
    if value is None or scale <= 0 or not math.isfinite(value):
        return "transparent"
    alpha = min(1.0, abs(value) / scale)
    if value >= 0:
        return f"rgba(255,140,0,{alpha:.3f})"
    return f"rgba(80,140,255,{0.6 * alpha:.3f})"


def _shown(token: str) -> str:
    return escape(token.replace("\n", "⏎\n").replace("\t", "⇥"))


def heatmap_html(
    tokens: Sequence[str],
    values: Sequence[float | None],
    scale: float | None = None,
    peak: int | None = None,
) -> str:
    """One excerpt as coloured token spans; hovering a token shows its value.

    scale: the activation drawn at full colour (the neuron's max, so excerpts compare);
    defaults to this excerpt's own max.

    The spans are drawn by `_spans`, for the excerpts of a whole page at once when it comes
    through `records_html`.
    """
    n = min(len(tokens), len(values))
    if scale is None:
        finite = [abs(v) for v in values[:n] if v is not None and math.isfinite(v)]
        scale = max(finite, default=0.0)
    peaks = [peak] if peak is not None and 0 <= peak < n else []
    return f'<div class="na-heat">{"".join(_spans(tokens[:n], values[:n], scale, peaks))}</div>'


def _spans(
    tokens: Sequence[str], values: Sequence[float | None], scale: float, peaks: list[int]
) -> list[str]:
    """One `<span>` per token (as many tokens as values), `peaks` marked as peaks.

    A page draws a few hundred tokens, so the work is done per call, not per token: values
    formatted by one C-level `%` call, colours looked up from numpy's arithmetic, tokens
    escaped in one pass over them all. `_colour` and `_shown` say what each span holds
    (tests/test_render.py holds this to them)."""
    n = len(values)
    vals = [math.nan if v is None else v for v in values]
    wide = np.array(vals, dtype=np.float64)
    finite = np.isfinite(wide)
    labels = ("%.3f\0" * n % tuple(vals)).split("\0")
    if n and not finite.all():
        for i, v in enumerate(values):
            if v is None:
                labels[i] = "NaN"
    colours = _colours(wide, finite & (not scale <= 0), scale)
    classes = ["na-tok"] * n
    for p in peaks:
        classes[p] = "na-tok na-peak"
    return [
        f'<span class="{c}" style="background:{bg}" data-v="{lab}" title="{lab}">{tok}</span>'
        for c, bg, lab, tok in zip(classes, colours, labels, _shown_all(tokens), strict=False)
    ]


# Every colour `_colour` can give, by index: transparent, then orange at alpha 0.000 ... 1.000,
# then blue at 0.000 ... 1.000 (its alpha is 0.6 × |value| / scale, so it stops at 0.600).
_COLOURS = np.array(
    ["transparent"]
    + [f"rgba(255,140,0,{k / 1000:.3f})" for k in range(1001)]
    + [f"rgba(80,140,255,{k / 1000:.3f})" for k in range(1001)],
    dtype=object,
)


def _colours(wide: np.ndarray, coloured: np.ndarray, scale: float) -> list[str]:
    """`_colour` of every value, looked up rather than formatted: the alpha's three decimals
    are `rint(alpha * 1000)` except within 1e-6 of a half, where the product's rounding error
    could pick the other side; those few are formatted as `_colour` formats them."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # fmin, like Python's min(1.0, x), keeps 1.0 when x is NaN (a NaN scale)
        alpha = np.fmin(1.0, np.abs(wide) / scale)
    negative = wide < 0
    alpha[negative] *= 0.6
    alpha[~coloured] = 0.0
    thousandths = alpha * 1000
    index = np.rint(thousandths).astype(np.int64) + np.where(negative, 1002, 1)
    index[~coloured] = 0
    out: list[str] = _COLOURS[index].tolist()
    near = coloured & (np.abs(thousandths - np.floor(thousandths) - 0.5) < 1e-6)
    for i in np.flatnonzero(near).tolist():
        out[i] = _colour(float(wide[i]), scale)
    return out


def _shown_all(tokens: Sequence[str]) -> list[str]:
    """`_shown` of every token, as a few `str.replace` passes over them joined (a translate
    table costs a dict lookup per character)."""
    if not tokens:
        return []
    joined = "\0".join(tokens)
    if joined.count("\0") != len(tokens) - 1:  # a token holds the separator itself
        return [_shown(t) for t in tokens]
    return escape(joined.replace("\n", "⏎\n").replace("\t", "⇥")).split("\0")


def record_row(record: Record, scale: float | None) -> str:
    """A stored record: its max on the left, the heat-map on the right."""
    body = heatmap_html(record.tokens, record.activations, scale, record.peak_index)
    return _row(record, body)


def _row(record: Record, body: str) -> str:
    top = record.max_activation
    head = "—" if top is None else f"{top:.2f}"
    return f'<div class="na-row"><span class="na-max">{head}</span>{body}</div>'


def records_html(records: Sequence[Record], scale: float | None) -> str:
    """`record_row` of each record, joined: the tokens of all of them drawn in one `_spans`
    call (one numpy pass and two `%` calls for the page's few hundred tokens)."""
    if scale is None:  # each excerpt is drawn at its own max
        return "".join(record_row(r, None) for r in records)
    tokens: list[str] = []
    values: list[float | None] = []
    peaks: list[int] = []
    bounds = [0]
    for r in records:
        n = min(len(r.tokens), len(r.activations))
        if r.peak_index is not None and 0 <= r.peak_index < n:
            peaks.append(bounds[-1] + r.peak_index)
        tokens += r.tokens[:n]
        values += r.activations[:n]
        bounds.append(bounds[-1] + n)
    spans = _spans(tokens, values, scale, peaks)
    return "".join(
        _row(r, f'<div class="na-heat">{"".join(spans[a:b])}</div>')
        for r, a, b in zip(records, bounds, bounds[1:], strict=False)
    )


def histogram(values: np.ndarray, bins: int = 40) -> Histogram:
    """Edges and counts of the finite values (NaN means "no value" and is dropped): the
    page's histogram and its JSON twin. One numpy pass over every stored value."""
    xs = values[np.isfinite(values)]
    if xs.size == 0:
        return Histogram(edges=[], counts=[])
    lo, hi = float(xs.min()), float(xs.max())
    if hi == lo:  # one bin's worth around a constant (+1 vanishes beyond 2**53)
        hi = lo + max(1.0, abs(lo) * 2.0**-20)
    # equal-width bins by arithmetic (np.histogram's general path costs ~5x more); the top
    # edge belongs to the last bin, as in np.histogram
    where = ((xs - lo) * (bins / (hi - lo))).astype(np.int64)
    np.clip(where, 0, bins - 1, out=where)
    counts = np.bincount(where, minlength=bins)
    edges = lo + (hi - lo) * np.arange(bins + 1) / bins
    return Histogram(edges=[round(e, 6) for e in edges.tolist()], counts=counts.tolist())


def histogram_svg(hist: Histogram, width: int = 560, height: int = 140) -> str:
    """Bars of a histogram on a log-count axis (activations are heavy-tailed), as inline SVG."""
    counts, edges = hist.counts, hist.edges
    if not counts:
        return '<p class="muted">No stored activations.</p>'
    pad_b, pad_l = 18, 4
    top = math.log1p(max(counts))
    bar_w = (width - pad_l) / len(counts)
    bars = []
    for i, c in enumerate(counts):
        h = 0 if c == 0 else max(1.0, (height - pad_b) * math.log1p(c) / top)
        x = pad_l + i * bar_w
        tip = f"{edges[i]:.3g} to {edges[i + 1]:.3g}: {c}"
        bars.append(
            f'<rect x="{x:.1f}" y="{height - pad_b - h:.1f}" width="{max(bar_w - 1, 1):.1f}" '
            f'height="{h:.1f}" class="bar"><title>{escape(tip)}</title></rect>'
        )
    labels = (
        f'<text x="{pad_l}" y="{height - 4}" class="axis">{edges[0]:.3g}</text>'
        f'<text x="{width}" y="{height - 4}" text-anchor="end" class="axis">{edges[-1]:.3g}</text>'
    )
    return (
        f'<svg class="hist" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="histogram of stored activations">{"".join(bars)}{labels}</svg>'
    )


def category_order(categories: Iterable[str]) -> list[str]:
    """Record categories as a reader expects them: top, quantiles in numeric order, random."""

    def key(c: str) -> tuple[int, int, str]:
        if c == "top":
            return (0, 0, c)
        if c == "random":
            return (2, 0, c)
        m = re.search(r"(\d+)$", c)
        return (1, int(m.group(1)) if m else 0, c)

    return sorted(categories, key=key)
