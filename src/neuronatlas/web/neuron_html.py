"""The neuron page's body (the `main` block of `templates/neuron.html`), drawn in Python.

The page people open is the explorer's busiest route. Under Jinja its body cost about as much
as its reads (~0.15 ms of ~1 ms in-process: a generator step per line, an escape and an
attribute look-up per expression, a list per loop); f-strings over the same values draw the
same HTML in a fraction of that (bench/README.md, "The neuron page's server cost"). The
surrounding page (head, header, footer, scripts) stays in the templates, shared with the
other pages. Every free text is escaped as Jinja's autoescape escapes it (`markupsafe`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from markupsafe import escape

from neuronatlas.read.first_view import record_tabs_html, trace_url
from neuronatlas.read.render import histogram_svg, with_code
from neuronatlas.read.views import Explanation, LiveStatus, NeuronPage, SearchHit, Stats

NO_SIMILAR = (
    "No similar neurons found: similarity by explanation needs embeddings\n"
    "      (<code>neuronatlas embed</code>), by tokens the token index "
    "(<code>neuronatlas index</code>)."
)
_SIMILAR_KINDS = (
    ("by_embedding", "by explanation", "cosine of explanation embeddings, −1…1"),
    ("by_tokens", "by tokens", "weighted Jaccard of peak tokens, 0…1"),
)
_N2G_METRICS = (
    ("f1", "F1"),
    ("baseline_token_f1", "baseline F1"),
    ("precision", "precision"),
    ("recall", "recall"),
)
_STEER_TARGET = "target next token, e.g. &quot; Paris&quot; (leading space kept)"
_STATS = ("max", "mean", "variance", "skewness", "kurtosis")


def neuron_main(
    n: NeuronPage,
    *,
    full: bool,
    page_size: int,
    max_text: int,
    live: LiveStatus,
    steer_limits: Mapping[str, Any],
    trace_limits: Mapping[str, Any],
) -> str:
    """The page's body: head and navigation, explanations, statistics and histogram, N2G,
    similar neurons, the live and steer forms, and the record tabs. `full`: the page drawn
    whole on the server (histogram, similar neurons, 50 records a category); otherwise the
    first view, whose script fetches those parts (`n.more`)."""
    return "".join(
        (
            _head(n, trace_limits),
            "" if full else _noscript(n.id),
            '\n<div class="grid">\n',
            _explanations(n.explanations),
            _activations(n),
            '</div>\n\n<div class="grid">\n',
            _n2g(n),
            _similar(n, full, live),
            "</div>\n\n",
            _live(n, max_text, live),
            _steer(n, live, steer_limits),
            _records(n, full, page_size),
        )
    )


def _head(n: NeuronPage, trace_limits: Mapping[str, Any]) -> str:
    primary = n.explanations[0] if n.explanations else None
    lead = escape(primary.text) if primary else '<span class="muted">No explanation stored.</span>'
    stale = "".join(
        f'<p class="notbuilt stale" data-stale="{escape(part)}">Out of date ({escape(part)}): '
        f"{with_code(why)}</p>"
        for part, why in n.stale.items()
    )
    trace = trace_url(n, trace_limits["max_chars"])
    trace_link = (
        f'<a class="btn" id="trace-link" href="{escape(trace)}" title="trace the next token '
        'after its strongest excerpt, up to the peak">Trace</a>'
        if trace
        else ""
    )
    prev, next_ = n.nav.prev, n.nav.next
    return f"""<section class="neuron-head">
  <div>
    <h1 id="neuron-id">{n.id}</h1>
    <div class="muted">layer {n.layer}, neuron {n.neuron} · source {escape(n.source)}</div>
    <p class="lead">{lead}</p>
    {stale}
  </div>
  <nav class="pager">
    <a class="btn" href="/neurons/{prev}" rel="prev" title="previous (←)">← {prev}</a>
    <a class="btn" href="/random" title="random (r)">Random</a>
    <a class="btn" href="/neurons/{next_}" rel="next" title="next (→)">{next_} →</a>
    {trace_link}
    <button class="btn ghost" type="button" id="permalink"
      data-url="/neurons/{n.id}">Copy link</button>
  </nav>
</section>
"""


def _noscript(nid: str) -> str:
    return f"""<noscript><p class="notbuilt">This page fetches its histogram, similar neurons
  and further records with JavaScript. <a href="/neurons/{nid}?view=full">The full page</a>
  has them all without it.</p></noscript>
"""


def _num(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _explanations(explanations: list[Explanation]) -> str:
    if not explanations:
        body = (
            '<p class="muted">No explanations yet. Run <code>neuronatlas n2g</code> or import '
            "OpenAI's.</p>"
        )
    else:
        rows = []
        for e in explanations:
            cells = "".join(
                f'\n        <td class="num">{_num(v, ".3f")}</td>'
                for v in (e.ev_correlation_score, e.rsquared_score, e.absolute_dev_explained_score)
            )
            scores = (
                ", ".join(
                    f'<span title="{escape(s.judge)}">{escape(s.scorer)} {s.score:.3f}</span>'
                    for s in e.scores
                )
                or "—"
            )
            rows.append(
                f'<tr><td><span class="tag">{escape(e.source)}</span></td>'
                f'<td>{escape(e.text)}</td>{cells}\n        <td class="scores">{scores}</td></tr>\n'
            )
        body = (
            '<table class="tbl">\n    <thead><tr><th>source</th><th>explanation</th>'
            '<th title="correlation score">ev corr.</th><th>R²</th>'
            '<th title="absolute deviation explained">abs. dev.</th>'
            '<th title="neuronatlas score: scorer (judge)">scorers</th></tr></thead>\n'
            f"    <tbody>\n{''.join(rows)}    </tbody>\n  </table>"
        )
    return f'<section class="card">\n  <h2>Explanations</h2>\n  {body}\n</section>\n\n'


def _stat_values(st: Stats) -> tuple[float | None, ...]:
    return (st.max_activation, st.mean, st.variance, st.skewness, st.kurtosis)


def _activations(n: NeuronPage) -> str:
    stats = "".join(
        f"<div><dt>{label}</dt><dd>{_num(v, '.4g')}</dd></div>\n"
        for label, v in zip(_STATS, _stat_values(n.stats), strict=True)
    )
    if n.histogram is not None:
        hist = histogram_svg(n.histogram)
    else:
        src = escape(n.more.get("histogram", ""))
        hist = (
            f'<div class="lazy hist-box" id="hist" data-src="{src}">'
            f'<a href="/neurons/{n.id}?view=full">The histogram is on the full page.</a></div>'
        )
    return f"""<section class="card">
  <h2>Activations</h2>
  <dl class="stats">
{stats}  </dl>
  <h3>Histogram of every stored record's activations <span class="muted">(log count)</span></h3>
  {hist}
</section>
"""


def _n2g(n: NeuronPage) -> str:
    if n.n2g:
        m = n.n2g.metrics
        metrics = "\n".join(
            f'<div class="metric"><b>{m[key]:.3f}</b><span>{label}</span></div>'
            for key, label in _N2G_METRICS
            if m.get(key) is not None
        )
        text = f"<p>{escape(n.n2g.explanation)}</p>" if n.n2g.explanation else ""
        svg = (
            f'<div class="graph"><img src="/api/neurons/{n.id}/graph.svg" '
            f'alt="N2G graph of {n.id}"></div>'
            if n.n2g.has_svg
            else ""
        )
        body = f'<div class="metrics">\n{metrics}\n    </div>\n    {text}\n    {svg}'
    else:
        body = f'<p class="notbuilt">{with_code(n.unavailable.get("n2g"))}</p>'
    return f'<section class="card" id="n2g">\n  <h2>Neuron to Graph</h2>\n  {body}\n</section>\n\n'


def _hits(hits: list[SearchHit]) -> str:
    items = []
    for s in hits:
        sim = (
            f'<span class="sim" title="{escape(s.similarity_measure or "")}">'
            f"{s.similarity:.2f}</span>"
            if s.similarity is not None
            else ""
        )
        items.append(
            f'<li><a href="/neurons/{s.id}">{s.id}</a>\n          {sim}\n'
            f'          <span class="expl">{escape(s.explanation or "")}</span></li>\n'
        )
    return "".join(items)


def _similar(n: NeuronPage, full: bool, live: LiveStatus) -> str:
    lazy = "" if full else f' class="lazy" data-src="{escape(n.more.get("similar", ""))}"'
    if n.similar:
        lists = []
        for key, label, measure in _SIMILAR_KINDS:
            hits = getattr(n.similar, key)
            if hits:
                lists.append(
                    f'<h3>{label} <span class="muted">({measure})</span></h3>\n'
                    f'      <ul class="results compact">\n{_hits(hits)}      </ul>\n'
                )
        if not n.similar.by_embedding and not n.similar.by_tokens:
            lists.append(f'<p class="notbuilt">{NO_SIMILAR}</p>\n')
        body = "".join(lists)
    elif full:
        body = f'<p class="notbuilt">{with_code(n.unavailable.get("similar"))}</p>'
    else:
        body = (
            f'<a href="/neurons/{n.id}?view=full#similar">Similar neurons are on the full page.</a>'
        )
    logits = (
        ""
        if live.error
        else '<h3>Logit effects</h3>\n  <div id="logits"><button type="button" class="ghost" '
        f'id="logits-btn" data-neuron="{n.id}">Show the tokens this neuron promotes and '
        "suppresses</button></div>\n"
    )
    return f"""<section class="card" id="similar">
  <h2>Similar neurons</h2>
  <div id="similar-body" data-empty="{NO_SIMILAR}"{lazy}>
  {body}
  </div>
  {logits}</section>
"""


def _no_model(what: str, msg_id: str, live: LiveStatus) -> str:
    return f"""<p class="notbuilt" id="{msg_id}">{what}{escape(live.error)}.
    Start the server with <code>--model SPEC</code> (a hub id or a local model folder).</p>
"""


def _live(n: NeuronPage, max_text: int, live: LiveStatus) -> str:
    if live.error:
        body = _no_model("Live activations are unavailable here: ", "live-msg", live)
    else:
        loads = "" if live.loaded else " (loads on first use)"
        body = f"""<form id="live-form" data-neuron="{n.id}"
    data-max="{n.stats.max_activation or 0}">
    <textarea id="live-text" maxlength="{max_text}" rows="3"
      placeholder="Type text to see {n.id}'s activation on each token"></textarea>
    <div class="row"><button type="submit">Run</button><span class="muted"
      id="live-msg">Runs {escape(live.spec)} on the server{loads}.</span></div>
  </form>
  <div id="live-out"></div>
"""
    return f'<section class="card" id="live">\n  <h2>Live test</h2>\n  {body}</section>\n\n'


def _steer(n: NeuronPage, live: LiveStatus, lim: Mapping[str, Any]) -> str:
    if live.error:
        body = _no_model("Steering needs the live model: ", "steer-msg", live)
    else:
        mean = _num(n.stats.mean, ".4g")
        steer_text = (
            f"Text to run with {n.id} ablated, clamped or scaled "
            f"(at most {lim['max_tokens']} tokens)"
        )
        steer_also = f"with other neurons: L03N0010, L05N0042 (at most {lim['max_neurons']} in all)"
        body = f"""<form id="steer-form" data-neuron="{n.id}"
    data-max="{n.stats.max_activation or 0}">
    <textarea id="steer-text" maxlength="{lim["max_chars"]}" rows="3"
      placeholder="{steer_text}"></textarea>
    <div class="row">
      <select id="steer-mode" aria-label="what to do to the neuron">
        <option value="ablate">ablate (set to 0)</option>
        <option value="clamp">clamp (set to value)</option>
        <option value="scale">scale (multiply by value)</option>
      </select>
      <input id="steer-value" type="number" step="any" min="-{lim["max_value"]}"
        max="{lim["max_value"]}" aria-label="value" placeholder="value" disabled>
      <button type="submit">Steer</button>
      <span class="muted" id="steer-msg">Runs {escape(live.spec)} twice: as it is and with
        the change. For mean ablation, clamp to the mean ({mean}).</span>
    </div>
    <div class="row">
      <input id="steer-also" type="text" maxlength="{lim["max_neurons"] * 13}"
        aria-label="other neurons to change with this one" placeholder="{steer_also}">
      <input id="steer-target" type="text" maxlength="{lim["max_target_chars"]}"
        aria-label="target next token" placeholder="{_STEER_TARGET}">
    </div>
  </form>
  <div id="steer-out"></div>
"""
    return f"""<section class="card" id="steer">
  <h2>Steer <span class="muted">(change this neuron, alone or with others, at every position
    and compare the model's predictions)</span></h2>
  {body}</section>

"""


def _records(n: NeuronPage, full: bool, page_size: int) -> str:
    scale = n.stats.max_activation
    return f"""<section class="card" id="records" data-scale="{"" if scale is None else scale}"
  data-page="{page_size}">
  <h2>Records <span class="muted">(colour: activation / neuron max; hover a token for its
    value)</span></h2>
  {record_tabs_html(n, full, page_size)}
</section>
"""
