"""`neuronatlas map`: the neuron map (2-D layout, cluster hierarchy, labels, coherence)."""

from __future__ import annotations

from typing import Annotated, Literal, cast

import typer

from neuronatlas.cli.app import DbOption, SilentOption, console, exit_codes, run_stage
from neuronatlas.store import open_writer

Clusterer = Literal["hdbscan", "kmeans"]


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
    from neuronatlas.map.neuron_map import MapResult
    from neuronatlas.map.stage import STAGE, MapSettings

    settings = MapSettings(
        neighbors=neighbors,
        min_dist=min_dist,
        seed=seed,
        clusterer=cast(Clusterer, clusterer),  # MapConfig checks the value
        min_cluster_size=min_cluster_size,
        n_clusters=clusters,
        n_coarse=coarse,
        refit=refit,
    )
    open_writer(db, create=False).close()  # refuse (or migrate) before the layout runs
    result = run_stage(STAGE, db, settings, silent).result
    assert isinstance(result, MapResult)
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


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("map", epilog=exit_codes())(map_)
