"""`neuronatlas show`: one neuron on the terminal or as JSON."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from neuronatlas.cli.app import DbOption, JsonOption, app, console, print_json
from neuronatlas.store import open_reader, reader


def _excerpt_line(tokens: list[str], acts: list[float | None], peak: int | None) -> str:
    """The excerpt as text with the peak token in bold brackets; newlines shown as ⏎."""
    parts = []
    for i, tok in enumerate(tokens):
        text = escape(tok.replace("\n", "⏎"))
        parts.append(f"[bold reverse]{text}[/]" if i == peak else text)
    return "".join(parts)


@app.command()
def show(
    neuron_id: Annotated[str, typer.Argument(metavar="ID", help="L05N0123, L5N123 or 5:123.")],
    db: DbOption,
    json: JsonOption = False,
    records: Annotated[int, typer.Option(help="Records to print per category.")] = 5,
) -> None:
    """Print a neuron: explanation, scores, statistics and its top records.

    Example: neuronatlas show L05N0123 --db atlas.db
    """
    conn = open_reader(db)
    data = reader.neuron(conn, neuron_id)
    extra = _extra_sections(conn, data["id"])
    data.update(extra)
    if json:
        print_json(data)
        return
    console.rule(f"[bold]{data['id']}[/]  layer {data['layer']}, neuron {data['neuron']}")
    for e in data["explanations"]:
        score = e["ev_correlation_score"]
        shown = "—" if score is None else f"{score:.3f}"
        console.print(f"[cyan]{e['source']}[/] {escape(e['text'])}  [dim]score {shown}[/]")
        if e.get("scores"):
            listed = ", ".join(
                f"{s['scorer']} {s['score']:.3f} ({escape(s['judge'])})" for s in e["scores"]
            )
            console.print(f"    [dim]scorers:[/] {listed}", highlight=False)
    stats = data["stats"]
    table = Table(show_header=True, header_style="bold")
    for key in ("max_activation", "mean", "variance", "skewness", "kurtosis"):
        table.add_column(key)
    table.add_row(
        *[
            "—" if stats[k] is None else f"{stats[k]:.4g}"
            for k in ("max_activation", "mean", "variance", "skewness", "kurtosis")
        ]
    )
    console.print(table)
    if "n2g" in data:
        console.print(_n2g_line(data["n2g"]), highlight=False)
    for category in sorted(data["records"], key=lambda c: (c != "top", c)):
        console.print(f"[bold]{category}[/]")
        for rec in data["records"][category][:records]:
            top = rec["max_activation"]
            head = "  —   " if top is None else f"{top:6.2f}"
            console.print(
                f" {head}  " + _excerpt_line(rec["tokens"], rec["activations"], rec["peak_index"]),
                highlight=False,
            )


def _n2g_line(m: dict) -> str:
    """N2G's held-out firing F1 beside the token-lookup baseline's, and its score."""

    def num(x: float | None) -> str:
        return "—" if x is None else f"{x:.3f}"

    return (
        f"[bold]N2G[/] F1 {num(m.get('f1'))} (token lookup {num(m.get('baseline_token_f1'))}),"
        f" precision {num(m.get('precision'))}, recall {num(m.get('recall'))},"
        f" ev_correlation {num(m.get('ev_correlation_score'))}"
    )


def _extra_sections(conn, neuron_id: str) -> dict:
    """Sections other stages add to `show` (e.g. "n2g"), when their tables exist."""
    from neuronatlas.store import n2g as n2g_store

    extra: dict = {}
    metrics = n2g_store.read_metrics(conn, neuron_id)
    if metrics is not None:
        extra["n2g"] = {**metrics, "explanation": n2g_store.n2g_explanation(conn, neuron_id)}
    return extra
