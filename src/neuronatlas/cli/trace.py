"""`neuronatlas trace`: the attribution graph of a prompt's next token over the model's
neurons, printed as a table, as Neuronpedia graph JSON, or saved in the atlas."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from neuronatlas.cli.app import (
    EXIT_USAGE,
    DbOption,
    DeviceOption,
    JsonOption,
    console,
    console_err,
)
from neuronatlas.cli.serve import ModelOption
from neuronatlas.errors import BadInput, ModelUnavailable
from neuronatlas.trace.attribute import DEFAULT_MAX_NODES, MAX_NODES_LIMIT
from neuronatlas.trace.build import DEFAULT_ALPHA, DEFAULT_EDGE_THRESHOLD, DEFAULT_NODE_THRESHOLD
from neuronatlas.trace.records import TraceGraph, TraceSummary

SHOWN_NODES = 15


def _print(graph: TraceGraph) -> None:
    targets = ", ".join(repr(t) for t in graph.targets)
    table = Table(
        title=f"{graph.model} · next token after the prompt · target {graph.target!r}"
        + (f" (of {targets})" if len(graph.targets) > 1 else ""),
        header_style="bold",
    )
    for col, justify in [
        ("rank", "right"),
        ("neuron", "left"),
        ("token", "left"),
        ("activation", "right"),
        ("effect on target", "right"),
        ("influence", "right"),
        ("explanation", "left"),
    ]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for node in graph.neurons()[:SHOWN_NODES]:
        effect = node.total_effect or 0.0
        colour = "green" if effect > 0 else "red"
        table.add_row(
            str(node.rank),
            node.neuron_id or "",
            f"{escape(repr(node.token))} @{node.position}",
            f"{node.value:.3f}",
            f"[{colour}]{effect:+.3f}[/]",
            f"{node.influence:.3f}",
            escape(node.explanation or "—"),
        )
    console.print(table)
    neurons = sum(1 for n in graph.nodes if n.kind == "neuron")
    console.print(
        f"{neurons} neurons, {len(graph.nodes)} nodes, {len(graph.links)} links kept of "
        f"{graph.neuron_rows} neuron rows; completeness error {graph.completeness_error:.1e}"
    )


def _print_list(saved: list[TraceSummary]) -> None:
    table = Table(title="saved traces", header_style="bold")
    for col in ("id", "created", "target", "nodes", "links", "prompt"):
        table.add_column(col)
    for s in saved:
        table.add_row(
            str(s.id),
            s.created_at,
            escape(repr(s.target)),
            str(s.nodes),
            str(s.links),
            escape(s.prompt[:60]),
        )
    console.print(table)


EXIT_CODES = (
    "Exit codes: 0 success; 1 error (one line on stderr); 2 usage error: an unknown option, "
    "a value out of range, an empty or too long TEXT, a --target that is not exactly one "
    "token, an atlas without a model (--model names one) or a --db file that is not a usable "
    "atlas (one line on stderr says what to change; nothing is written)."
)


def trace(
    db: DbOption,
    text: Annotated[
        str | None, typer.Argument(help="The prompt whose next token to explain.")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            metavar="TOKEN",
            help="The next token to explain (one token, e.g. ' Paris'); default: the likeliest "
            "tokens covering 95% of the probability (at most 10).",
        ),
    ] = None,
    json: JsonOption = False,
    out: Annotated[
        str | None,
        typer.Option("--out", metavar="FILE", help="Also write the Neuronpedia graph JSON here."),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option("--group", metavar="cluster", help="Supernodes by map cluster."),
    ] = None,
    max_nodes: Annotated[
        int,
        typer.Option(
            "--max-nodes", min=0, max=MAX_NODES_LIMIT, help="Neuron rows computed at most."
        ),
    ] = DEFAULT_MAX_NODES,
    node_threshold: Annotated[
        float,
        typer.Option("--node-threshold", help="Keep nodes making up this share of influence."),
    ] = DEFAULT_NODE_THRESHOLD,
    edge_threshold: Annotated[
        float,
        typer.Option("--edge-threshold", help="Keep edges making up this share of edge scores."),
    ] = DEFAULT_EDGE_THRESHOLD,
    alpha: Annotated[
        float,
        typer.Option(
            "--alpha",
            min=0.0,
            max=1.0,
            help="Gated MLPs (Gemma, Llama): the share of each neuron's credit given to its up "
            "projection, the rest to its gate (1: the gate is frozen). No effect on GPT-2.",
        ),
    ] = DEFAULT_ALPHA,
    save: Annotated[bool, typer.Option("--save", help="Store the graph in the atlas.")] = False,
    list_saved: Annotated[
        bool, typer.Option("--list", help="List the graphs saved in the atlas and stop.")
    ] = False,
    model: ModelOption = None,
    device: DeviceOption = "auto",
) -> None:
    """Trace which neurons make the model predict the next token after TEXT.

    Builds an attribution graph over the atlas's model's own MLP neurons: the model is
    linearised around the prompt (attention patterns, norm denominators and activation
    ratios frozen), so each node's incoming edges sum exactly to its value; the neuron rows
    with the most influence on the target logit are computed (--max-nodes), the rest stay in
    per-(layer, position) buckets, and the graph is pruned to the nodes and edges that carry
    most influence. Prints the top neurons with their explanations; --json prints the graph
    in the Neuronpedia / circuit-tracer format instead, --out writes it to a file, --save
    stores it in the atlas (--list shows the stored ones). See docs/ATTRIBUTION.md.

    Example: neuronatlas trace "The Eiffel Tower is in the city of" --db atlas.db --target " Paris"
    """
    try:
        _trace(
            db, text, target, json, out, group, max_nodes, node_threshold, edge_threshold,
            alpha, save, list_saved, model, device,
        )  # fmt: skip
    except (BadInput, ModelUnavailable) as exc:
        # input the user can change: a usage error (exit 2), one line, nothing written
        console_err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from exc


def _trace(
    db, text, target, json, out, group, max_nodes, node_threshold, edge_threshold, alpha,
    save, list_saved, model, device,
) -> None:  # fmt: skip
    import msgspec

    from neuronatlas.atlas import Atlas
    from neuronatlas.atomic import write_atomic
    from neuronatlas.trace import to_neuronpedia

    if list_saved:
        with Atlas(db, model=model, device=device) as atlas:
            saved = atlas.traces()
        if json:
            from neuronatlas.cli.app import print_json

            print_json(saved)
        else:
            _print_list(saved)
        return
    if text is None:
        raise BadInput("give the TEXT to trace (or --list to show saved traces)")
    if group not in (None, "cluster"):
        raise BadInput(f"--group {group!r}: the only grouping is 'cluster'")
    with Atlas(db, model=model, device=device) as atlas:
        graph = _run(
            atlas, text, target, group, max_nodes, node_threshold, edge_threshold, alpha, json
        )
        doc = to_neuronpedia(graph)
        body = msgspec.json.encode(doc)
        if out is not None:
            write_atomic(out, lambda f: f.write(body))
        if save:
            graph_id = atlas.save_trace(graph)
            console_err.print(f"saved as trace {graph_id} in {db}")
    if json:
        import sys

        sys.stdout.write(body.decode("utf-8") + "\n")
        return
    _print(graph)


def _run(atlas, text, target, group, max_nodes, node_threshold, edge_threshold, alpha, quiet: bool):
    """The trace with a progress bar over neuron rows on stderr. The bar appears with the
    first batch of rows, so input rejected before any work leaves only its error line."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bars = Progress(
        TextColumn("trace rows"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console_err,
        disable=quiet and not console_err.is_terminal,
    )
    task = bars.add_task("rows", total=None)

    def progress(done: int, total: int) -> None:
        if not bars.live.is_started:
            bars.start()
        bars.update(task, completed=done, total=total)

    try:
        return atlas.trace(
            text,
            target,
            group=group,
            progress=progress,
            max_nodes=max_nodes,
            node_threshold=node_threshold,
            edge_threshold=edge_threshold,
            alpha=alpha,
        )
    finally:
        if bars.live.is_started:
            bars.stop()


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(epilog=EXIT_CODES)(trace)
