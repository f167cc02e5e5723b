"""`neuronatlas.Atlas`: one atlas file from Python and Jupyter.

    >>> atlas = Atlas("atlas.db")
    >>> atlas.neuron("L05N0123")        # in a notebook: explanations + token heat-maps
    >>> atlas.search("dogs", k=5)       # same results as /api/search and `neuronatlas search`

The same `neuronatlas.read` functions as the explorer's pages and JSON API sit behind every
method and return the same typed records (`neuronatlas.read.views`), so a notebook shows
exactly what the browser shows. Reads are bounded by a time limit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any, Self

import msgspec

from neuronatlas.ids import format_id
from neuronatlas.read import activate as read_activate
from neuronatlas.read import neuron as read_neuron
from neuronatlas.read import search as read_search
from neuronatlas.read.live import LiveModel, default_spec
from neuronatlas.read.render import HEATMAP_CSS, category_order, histogram_svg, record_row
from neuronatlas.read.views import (
    LiveNeuron,
    LiveStrongest,
    NeuronPage,
    SearchHit,
    SearchMode,
    to_builtins,
)
from neuronatlas.steer import DEFAULT_K, DEFAULT_NEW_TOKENS, SteerResult, parse_group
from neuronatlas.store import open_reader, open_writer, reader
from neuronatlas.store import trace as trace_store
from neuronatlas.store.browse import require_neuron, time_limit
from neuronatlas.trace.attribute import (
    DEFAULT_BATCH,
    DEFAULT_CANDIDATES,
    DEFAULT_MAX_NODES,
)
from neuronatlas.trace.build import DEFAULT_EDGE_THRESHOLD, DEFAULT_NODE_THRESHOLD
from neuronatlas.trace.records import TraceGraph, TraceSummary

_NOTEBOOK_CSS = (
    HEATMAP_CSS
    + """
.na-card{font-family:system-ui,sans-serif;font-size:14px;max-width:980px}
.na-card h3{margin:4px 0;font-family:ui-monospace,monospace}
.na-card table{border-collapse:collapse;font-size:13px;margin:6px 0}
.na-card td,.na-card th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}
.na-card .hist .bar{fill:#ff8c00}.na-card .hist .axis{fill:#888;font-size:11px}
.na-card .hist{max-width:560px}
"""
)


class Neuron(NeuronPage):
    """One neuron of an atlas: its page record (a `read.views.NeuronPage`, so
    `msgspec.to_builtins` and `msgspec.json.encode` take it as they are) that draws itself in
    a notebook. `neuron["field"]` reads a field of the page."""

    @classmethod
    def of(cls, page: NeuronPage) -> Neuron:
        return cls(**{f: getattr(page, f) for f in page.__struct_fields__})

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    @property
    def page(self) -> NeuronPage:
        """The page record itself (kept for code written when Neuron wrapped it)."""
        return self

    def to_dict(self) -> dict[str, Any]:
        """The page as plain dicts and lists (the JSON the API sends)."""
        out: dict[str, Any] = to_builtins(self.page)
        return out

    def __repr__(self) -> str:
        return f"<Neuron {self.id}: {self.explanation!r}>"

    def _repr_html_(self, records_per_category: int = 5) -> str:
        """Self-contained HTML (inline CSS, no scripts): explanations, histogram, heat-maps."""
        d = self.page
        rows = "".join(
            f"<tr><td>{escape(e.source)}</td><td>{escape(e.text)}</td>"
            f"<td>{_num(e.ev_correlation_score)}</td></tr>"
            for e in d.explanations
        )
        stats = d.stats
        parts = [
            f"<style>{_NOTEBOOK_CSS}</style><div class='na-card'>",
            f"<h3>{escape(d.id)}</h3>",
            f"<table><tr><th>source</th><th>explanation</th><th>score</th></tr>{rows}</table>",
            "<div>"
            + " · ".join(
                f"{k} {_num(getattr(stats, k))}"
                for k in ("max_activation", "mean", "variance", "skewness", "kurtosis")
            )
            + "</div>",
            "" if d.histogram is None else histogram_svg(d.histogram),
        ]
        if d.n2g:
            m = d.n2g.metrics
            parts.append(
                f"<div>N2G F1 {_num(m.get('f1'))} (baseline "
                f"{_num(m.get('baseline_token_f1'))})</div>"
            )
        for cat in category_order(d.records):
            parts.append(f"<div><b>{escape(cat)}</b></div>")
            parts.extend(
                record_row(r, stats.max_activation) for r in d.records[cat][:records_per_category]
            )
        parts.append("</div>")
        return "".join(parts)


class Results(list[SearchHit]):
    """Search results (`read.views.SearchHit`s) that render as a table in notebooks."""

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{escape(r.id)}</td><td>{escape(r.explanation or '')}</td>"
            f"<td>{_num(r.similarity)}</td><td>{_num(r.score)}</td></tr>"
            for r in self
        )
        return (
            f"<style>{_NOTEBOOK_CSS}</style><div class='na-card'><table><tr><th>id</th>"
            f"<th>explanation</th><th>similarity</th><th>score</th></tr>{rows}</table></div>"
        )


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


class Atlas:
    """An atlas file opened read-only. `model` overrides its meta model_id for live runs."""

    def __init__(
        self,
        path: str | Path,
        model: str | None = None,
        time_limit_s: float = 30.0,
        device: str = "auto",
    ):
        self.path = Path(path)
        self.time_limit_s = time_limit_s
        self._conn: sqlite3.Connection = open_reader(self.path, check_same_thread=False)
        self.meta = reader.meta(self._conn)
        self.live = LiveModel(model or default_spec(self.meta), self.meta, device)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def __repr__(self) -> str:
        return f"Atlas({str(self.path)!r}, model={self.meta.get('model_id')!r})"

    def __len__(self) -> int:
        with time_limit(self._conn, self.time_limit_s) as c:
            return reader.neuron_count(c)

    def ids(self, layer: int | None = None) -> list[str]:
        """Stored neuron ids in (layer, neuron) order, optionally of one layer."""
        with time_limit(self._conn, self.time_limit_s) as c:
            return reader.neuron_ids(c, layer)

    def neuron(self, neuron_id: str, records: int = read_neuron.DEFAULT_RECORDS) -> Neuron:
        """Everything about one neuron (as on its page). NeuronNotFound / BadNeuronId."""
        with time_limit(self._conn, self.time_limit_s) as c:
            return Neuron.of(read_neuron.neuron_detail(c, neuron_id, records=records))

    def search(self, query: str, k: int = 10, mode: SearchMode = "auto") -> Results:
        """Neurons for a query (semantic when the atlas has embeddings; `read.search.search`)."""
        with time_limit(self._conn, self.time_limit_s) as c:
            return Results(read_search.search(c, query, k, mode).results)

    def tokens(self, text: str, k: int = 10) -> Results:
        """Neurons whose stored records fire on the tokens of `text`."""
        with time_limit(self._conn, self.time_limit_s) as c:
            return Results(read_search.search(c, text, k, "tokens").results)

    def activate(self, text: str, k: int = 10) -> LiveStrongest:
        """Run the model live: the k strongest neurons on each token of `text`."""
        self.live.get()  # load first: loading must not count against the read time limit
        with time_limit(self._conn, self.time_limit_s) as c:
            return read_activate.live_strongest(c, self.live, text, k)

    def activations(self, text: str, neuron_id: str) -> LiveNeuron:
        """Run the model live: one neuron's activation per token (+ its N2G prediction)."""
        self.live.get()
        with time_limit(self._conn, self.time_limit_s) as c:
            return read_activate.live_neuron(c, self.live, text, neuron_id)

    def steer(
        self,
        neurons: str | Sequence[str],
        text: str,
        mode: str = "ablate",
        value: float | None = None,
        k: int = DEFAULT_K,
        new_tokens: int = DEFAULT_NEW_TOKENS,
        target: str | None = None,
    ) -> SteerResult:
        """Run the model live with stored neurons ablated, clamped or scaled at every
        position: one id, or a group (a list of ids, or ids separated by commas: at most
        `neuronatlas.steer.MAX_NEURONS`) edited together. A `neuronatlas.steer.SteerResult`:
        per-token KL and top-token changes, greedy continuations without and with the edit,
        and with `target` (one token) that next token's probability after the text, e.g.
        `atlas.steer(["L03N0010", "L05N0042"], "The capital of France is", target=" Paris")`.
        """
        with time_limit(self._conn, self.time_limit_s) as c:
            ids = [require_neuron(c, format_id(*n)) for n in parse_group(neurons)]
        return self.live.steer(text, ids, mode, value, k=k, new_tokens=new_tokens, target=target)

    def trace(
        self,
        text: str,
        target: str | None = None,
        *,
        group: str | None = None,
        max_nodes: int = DEFAULT_MAX_NODES,
        node_threshold: float = DEFAULT_NODE_THRESHOLD,
        edge_threshold: float = DEFAULT_EDGE_THRESHOLD,
        candidates: int = DEFAULT_CANDIDATES,
        batch_size: int = DEFAULT_BATCH,
        alpha: float = 1.0,
        progress: Callable[[int, int], None] | None = None,
    ) -> TraceGraph:
        """Run the model live: the attribution graph of the next token after `text` over the
        model's neurons (`neuronatlas.trace.trace`, which documents the options), its neuron
        nodes annotated with the atlas's primary explanation and map cluster. `target`: one
        token (" Paris"), None for the likeliest tokens. group="cluster" adds one supernode per
        map cluster. BadInput for bad input, ModelUnavailable without a model."""
        from neuronatlas.errors import BadInput
        from neuronatlas.trace.group import annotate_from_atlas

        if group not in (None, "cluster"):
            raise BadInput(f"group={group!r}: the only grouping is 'cluster'")
        graph = self.live.trace(
            text,
            target=target,
            progress=progress,
            max_nodes=max_nodes,
            node_threshold=node_threshold,
            edge_threshold=edge_threshold,
            candidates=candidates,
            batch_size=batch_size,
            alpha=alpha,
        )
        with time_limit(self._conn, self.time_limit_s) as c:
            return annotate_from_atlas(c, graph, "cluster" if group else None)

    def save_trace(self, graph: TraceGraph) -> int:
        """Store `graph` in the atlas file (the one write an Atlas makes); its id."""
        from neuronatlas.store.writer import now

        conn = open_writer(self.path)
        try:
            return trace_store.save_graph(
                conn,
                now(),
                graph.model,
                graph.prompt,
                graph.target,
                len(graph.nodes),
                len(graph.links),
                msgspec.json.encode(graph),
            )
        finally:
            conn.close()

    def traces(self) -> list[TraceSummary]:
        """The saved graphs, newest first."""
        with time_limit(self._conn, self.time_limit_s) as c:
            rows = trace_store.saved_graphs(c)
        return [
            TraceSummary(
                id=r.id,
                created_at=r.created_at,
                model=r.model,
                prompt=r.prompt,
                target=r.target,
                nodes=r.n_nodes,
                links=r.n_links,
            )
            for r in rows
        ]

    def saved_trace(self, graph_id: int) -> TraceGraph:
        """One saved graph; BadInput when the id is unknown."""
        from neuronatlas.errors import BadInput

        with time_limit(self._conn, self.time_limit_s) as c:
            body = trace_store.saved_graph(c, graph_id)
        if body is None:
            raise BadInput(f"no saved trace {graph_id} in {self.path}: list them with --list")
        return msgspec.json.decode(body, type=TraceGraph)
