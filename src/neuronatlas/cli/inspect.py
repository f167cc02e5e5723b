"""`neuronatlas show`: one neuron on the terminal or as JSON."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from neuronatlas.cli.app import DbOption, JsonOption, console, exit_codes, print_json
from neuronatlas.store import open_reader


def _excerpt_line(tokens: list[str], acts: list[float | None], peak: int | None) -> str:
    """The excerpt as text with the peak token in bold brackets; newlines shown as ⏎."""
    parts = []
    for i, tok in enumerate(tokens):
        text = escape(tok.replace("\n", "⏎"))
        parts.append(f"[bold reverse]{text}[/]" if i == peak else text)
    return "".join(parts)


def show(
    neuron_id: Annotated[str, typer.Argument(metavar="ID", help="L05N0123, L5N123 or 5:123.")],
    db: DbOption,
    json: JsonOption = False,
    records: Annotated[
        int, typer.Option(help="Records per category (printed, or in the JSON).", min=0, max=50)
    ] = 5,
) -> None:
    """Print a neuron: explanation, scores, statistics, N2G metrics and its top records.

    --json prints the document of the explorer's /api/neurons/ID?view=full, with --records
    records per category (5 here; the API's default is 10).

    Example: neuronatlas show L05N0123 --db atlas.db
    """
    from neuronatlas.read.neuron import neuron_detail

    page = neuron_detail(open_reader(db), neuron_id, records=records)
    if json:
        print_json(page)
        return
    console.rule(f"[bold]{page.id}[/]  layer {page.layer}, neuron {page.neuron}")
    for e in page.explanations:
        score = e.ev_correlation_score
        shown = "—" if score is None else f"{score:.3f}"
        console.print(f"[cyan]{e.source}[/] {escape(e.text)}  [dim]score {shown}[/]")
        if e.scores:
            listed = ", ".join(f"{s.scorer} {s.score:.3f} ({escape(s.judge)})" for s in e.scores)
            console.print(f"    [dim]scorers:[/] {listed}", highlight=False)
    for part, why in page.stale.items():
        console.print(f"[yellow]out of date ({part}):[/] {escape(why)}", highlight=False)
    keys = ("max_activation", "mean", "variance", "skewness", "kurtosis")
    table = Table(show_header=True, header_style="bold")
    for key in keys:
        table.add_column(key)
    values = [getattr(page.stats, k) for k in keys]
    table.add_row(*["—" if v is None else f"{v:.4g}" for v in values])
    console.print(table)
    if page.n2g is not None:
        console.print(_n2g_line(page.n2g.metrics), highlight=False)
    for category in sorted(page.records, key=lambda c: (c != "top", c)):
        console.print(f"[bold]{category}[/]")
        for rec in page.records[category]:
            top = rec.max_activation
            head = "  —   " if top is None else f"{top:6.2f}"
            console.print(
                f" {head}  " + _excerpt_line(rec.tokens, rec.activations, rec.peak_index),
                highlight=False,
            )


def _n2g_line(m: dict[str, float | int | None]) -> str:
    """N2G's held-out firing F1 beside the token-lookup baseline's, and its score."""

    def num(x: float | None) -> str:
        return "—" if x is None else f"{x:.3f}"

    return (
        f"[bold]N2G[/] F1 {num(m.get('f1'))} (token lookup {num(m.get('baseline_token_f1'))}),"
        f" precision {num(m.get('precision'))}, recall {num(m.get('recall'))},"
        f" ev_correlation {num(m.get('ev_correlation_score'))}"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(epilog=exit_codes())(show)
