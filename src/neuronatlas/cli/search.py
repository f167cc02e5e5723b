"""`neuronatlas search | tokens | similar`: finding neurons by a query, by tokens, by a neuron."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from neuronatlas.cli.app import (
    DbOption,
    JsonOption,
    console,
    exit_codes,
    print_json,
    reload_hint,
)
from neuronatlas.read.views import SearchHit, SearchMode
from neuronatlas.store import open_reader

KOption = Annotated[int, typer.Option("--k", min=1, max=1000, help="How many results.")]
SearchK = Annotated[int, typer.Option("--k", min=1, max=100, help="How many results (1-100).")]


def _results_table(
    rows: list[SearchHit], title: str, measure: str | None, extra: str | None = None
) -> None:
    """Hits as a table whose similarity column names its measure (read.views.MEASURES)."""
    from neuronatlas.read.views import MEASURES

    label = "similarity" if measure is None else MEASURES[measure].label
    table = Table(title=title, show_header=True, header_style="bold")
    for col in ("id", label, "score", *([extra] if extra else []), "explanation"):
        table.add_column(col)
    for r in rows:
        cells = [r.id, _num(r.similarity), _num(r.score)]
        if extra:
            cells.append(escape(repr(getattr(r, extra))))
        cells.append(escape(r.explanation or ""))
        table.add_row(*cells)
    console.print(table)


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def search(
    query: Annotated[str, typer.Argument(metavar="QUERY", help="What the neuron responds to.")],
    db: DbOption,
    k: SearchK = 10,
    json: JsonOption = False,
    fulltext: Annotated[
        bool,
        typer.Option(
            "--fulltext", help="FTS5 word search over explanations and top excerpts instead."
        ),
    ] = False,
    embedder: Annotated[
        str | None,
        typer.Option(
            "--embedder", help="Query embedder (default: the one the atlas was embedded with)."
        ),
    ] = None,
) -> None:
    """Semantic search over explanations: neurons whose explanation means QUERY.

    similarity = cosine of the query's and the explanation's embeddings (−1…1); with
    --fulltext, the full-text rank −bm25 (higher = better, unbounded). Each hit names its
    measure in similarity_measure. --json prints the hits as /api/search does (its
    `results`).

    Example: neuronatlas search "words about the weather" --db atlas.db --k 5 --json
    """
    from neuronatlas.read.search import search as run_search

    mode: SearchMode = "fulltext" if fulltext else "semantic"
    conn = open_reader(db)
    started = time.perf_counter()
    result = run_search(conn, query, k, mode, embedder=embedder)
    if mode == "semantic":  # the query embedder was loaded for this one query
        reload_hint("the query embedder", time.perf_counter() - started)
    if json:
        print_json(result.results)
        return
    _results_table(
        result.results,
        f"{'full-text' if fulltext else 'semantic'} search: {query}",
        None if result.mode == "substring" else result.mode,
    )


def tokens(
    text: Annotated[str, typer.Argument(metavar="TEXT", help="Text whose tokens to look up.")],
    db: DbOption,
    k: SearchK = 10,
    json: JsonOption = False,
) -> None:
    """Neurons whose stored top records peak on TEXT's tokens (from the token index).

    similarity = share of the neuron's top-record peak mass on these tokens (0-1). --json
    prints the hits as /api/tokens does (its `results`).

    Example: neuronatlas tokens " Paris" --db atlas.db --json
    """
    from neuronatlas.read.search import search as run_search

    result = run_search(open_reader(db), text, k, "tokens")
    if json:
        print_json(result.results)
        return
    _results_table(result.results, f"tokens: {text!r}", "tokens", extra="token")


def similar(
    neuron_id: Annotated[str, typer.Argument(metavar="ID", help="L05N0123, L5N123 or 5:123.")],
    db: DbOption,
    k: KOption = 10,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Also relate by weights and show logit effects (hub id, folder or 'default').",
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Neurons similar to ID: by explanation embedding (cosine, −1…1), by shared peak
    tokens (weighted Jaccard, 0…1) and, with --model, by weights (the signed direct
    connection weight w_out · w_in, unbounded; plus the neuron's logit effect).

    Example: neuronatlas similar L05N0123 --db atlas.db --k 5
    """
    from neuronatlas.read.relations import similar_neurons

    started = time.perf_counter()
    data = similar_neurons(open_reader(db), neuron_id, k, model)
    if model is not None:
        reload_hint(f"the model {model}", time.perf_counter() - started)
    if json:
        print_json(data)
        return
    _results_table(data.by_embedding, f"{data.id}: by explanation embedding", "embedding")
    _results_table(data.by_tokens, f"{data.id}: by shared peak tokens", "shared_tokens")
    if data.by_weights is not None:
        for side in ("downstream", "upstream"):
            _results_table(
                getattr(data.by_weights, side), f"{data.id}: {side} by weights", "weights"
            )
    if data.logit_effects is not None:
        for side in ("promoted", "suppressed"):
            effects = getattr(data.logit_effects, side)
            shown = ", ".join(f"{e.token!r} {e.effect:+.3f}" for e in effects)
            console.print(f"[bold]{side}[/] {escape(shown)}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(epilog=exit_codes())(search)
    app.command(epilog=exit_codes())(tokens)
    app.command(epilog=exit_codes())(similar)
