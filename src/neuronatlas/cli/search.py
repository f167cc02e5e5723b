"""`neuronatlas embed | map | index | search | tokens | similar`: the embed stage and search."""

from __future__ import annotations

import time
from typing import Annotated, Literal, cast

import typer
from rich.markup import escape
from rich.table import Table

from neuronatlas.cli.app import (
    DbOption,
    JsonOption,
    SilentOption,
    app,
    console,
    exit_codes,
    print_json,
    reload_hint,
    say_what_is_stale,
)
from neuronatlas.read.views import SearchHit, SearchMode
from neuronatlas.store import open_reader, open_writer

Clusterer = Literal["hdbscan", "kmeans"]

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


@app.command(epilog=exit_codes())
def embed(
    db: DbOption,
    embedder: Annotated[
        str | None,
        typer.Option(
            "--embedder",
            help="all-mpnet-base-v2 (offline), all-MiniLM-L6-v2 (offline), a local "
            "sentence-transformers folder or a hub id (online). Default: the atlas's embedder, "
            "else all-mpnet-base-v2.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Texts per batch.")] = 64,
    all_explanations: Annotated[
        bool,
        typer.Option(
            "--all-explanations", help="Embed every explanation, not only each neuron's primary."
        ),
    ] = False,
    reembed: Annotated[
        bool,
        typer.Option("--reembed", help="Replace every stored vector (needed to switch embedders)."),
    ] = False,
    silent: SilentOption = False,
) -> None:
    """Embed new or changed explanations (unit float32 vectors tagged with the embedder).

    Example: neuronatlas embed --db atlas.db --embedder all-MiniLM-L6-v2
    """
    from rich.progress import Progress

    from neuronatlas.embed.embed import EmbedConfig, embed_atlas

    config = EmbedConfig(
        embedder=embedder, batch_size=batch_size, all_explanations=all_explanations, reembed=reembed
    )
    open_writer(db, create=False).close()  # refuse (or migrate) before loading an embedder
    with Progress(console=console, disable=silent, transient=True) as bar:
        task = bar.add_task("embedding", total=None)
        result = embed_atlas(
            db, config, lambda done, total: bar.update(task, completed=done, total=total)
        )
    console.print(
        f"{result.embedder}: embedded {result.embedded}, {result.unchanged} already current"
    )
    say_what_is_stale(db)


@app.command("map", epilog=exit_codes())
def map_(
    db: DbOption,
    neighbors: Annotated[int, typer.Option("--neighbors", help="UMAP n_neighbors.")] = 15,
    min_dist: Annotated[float, typer.Option("--min-dist", help="UMAP min_dist.")] = 0.1,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed (fixes layout and clusters).")
    ] = 42,
    clusterer: Annotated[
        str,
        typer.Option(
            "--clusterer",
            help="Fine clusters: kmeans (on the vectors) or hdbscan (leaf clusters on the 2-D "
            "map, outliers given to the nearest cluster).",
        ),
    ] = "kmeans",
    clusters: Annotated[
        int | None,
        typer.Option("--clusters", help="Fine (k-means) cluster count (default ≈ √n, ≤ 300)."),
    ] = None,
    coarse: Annotated[
        int | None,
        typer.Option("--coarse", help="Coarse cluster count (default ≈ fine / 6)."),
    ] = None,
    min_cluster_size: Annotated[
        int | None,
        typer.Option("--min-cluster-size", help="HDBSCAN's smallest cluster (default n / 400)."),
    ] = None,
    refit: Annotated[
        bool,
        typer.Option(
            "--refit",
            help="Lay out and cluster every neuron anew, even when the stored map has the same "
            "settings and only a few neurons changed (those are placed on it by default).",
        ),
    ] = False,
    silent: SilentOption = False,
) -> None:
    """Lay out embedded neurons in 2-D (UMAP, cosine), cluster them at two levels (coarse
    clusters made of whole fine ones, every neuron in one), label each cluster with its
    distinctive explanation words and measure how coherent the clusters are; store the map.

    When a map with the same settings exists, only neurons whose primary explanation changed
    since (or that are new) are placed on it, among their nearest neighbours by explanation
    vector, if they are at most a quarter of it; otherwise the map is made anew.

    Example: neuronatlas map --db atlas.db --clusters 200 --coarse 30
    """
    from neuronatlas.map.neuron_map import MapConfig, build_map

    config = MapConfig(
        neighbors=neighbors,
        min_dist=min_dist,
        seed=seed,
        clusterer=cast(Clusterer, clusterer),  # MapConfig checks the value
        min_cluster_size=min_cluster_size,
        n_clusters=clusters,
        n_coarse=coarse,
    )
    open_writer(db, create=False).close()  # refuse (or migrate) before the layout runs
    with console.status("mapping", spinner="dots") if not silent else _nothing():
        result = build_map(db, config, refit=refit)
    if result.action == "current":
        console.print(f"the map of {result.points} neurons is up to date (--refit to redo it)")
        return
    if result.action == "placed":
        console.print(
            f"placed {result.placed} neurons with new explanations on the map of "
            f"{result.points} (--refit to lay out and cluster everything anew)"
        )
        return
    console.print(
        f"map of {result.points} neurons: {result.coarse} coarse clusters of "
        f"{result.clusters} fine ones, every neuron in one ({result.embedder})"
    )
    for q in result.coherence:
        console.print(
            f"  {q.level} coherence ({q.measure}): within {q.within:.3f} "
            f"[{q.within_low:.3f}, {q.within_high:.3f}] vs random pairs {q.random:.3f}"
        )


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@app.command(epilog=exit_codes())
def index(
    db: DbOption,
    excerpts: Annotated[
        bool,
        typer.Option(
            "--excerpts/--no-excerpts",
            help="Also (re)build the excerpt full-text index (slow: about as long as the import).",
        ),
    ] = True,
    silent: SilentOption = False,
) -> None:
    """Rebuild the token index and the excerpt full-text index from the stored records, and
    each neuron's similar neurons by shared tokens (what neuron pages show).

    Importers and the scraper build the indexes at the end; run it after changing records by
    hand, or once on an atlas built before similar neurons were stored.

    Example: neuronatlas index --db atlas.db
    """
    from neuronatlas.relations.similar import precompute_similar
    from neuronatlas.store.search import rebuild_search_indexes

    conn = open_writer(db, create=False)
    try:
        counts = rebuild_search_indexes(conn, excerpts=excerpts)
        with (
            console.status("similar neurons by tokens", spinner="dots")
            if not silent
            else _nothing()
        ):
            similar = precompute_similar(conn, ["tokens"])["tokens"]
    finally:
        conn.close()
    console.print(
        f"token index: {counts['token_rows']} rows"
        + (f"; excerpt full text: {counts['excerpt_documents']} neurons" if excerpts else "")
        + f"; similar neurons by tokens: {similar} rows"
    )


@app.command(epilog=exit_codes())
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


@app.command(epilog=exit_codes())
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


@app.command(epilog=exit_codes())
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
