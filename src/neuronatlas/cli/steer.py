"""`neuronatlas steer`: a neuron, or a group of them, ablated, clamped or scaled in the atlas's
live model."""

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
from neuronatlas.cli.serve import ModelOption
from neuronatlas.errors import BadInput
from neuronatlas.steer import (
    DEFAULT_K,
    DEFAULT_NEW_TOKENS,
    MAX_K,
    MAX_NEURONS,
    MAX_NEW_TOKENS,
    SteerResult,
    TargetChange,
    TokenChange,
)

SHOWN_CHANGES = 3  # per token in the table; --json has all
SHOWN_NEURONS = 4  # a group up to this size gets one activation column per neuron


def _mode(clamp: float | None, scale: float | None, ablate: bool) -> tuple[str, float | None]:
    """(mode, value) from the three exclusive flags; none of them means --ablate."""
    chosen: list[tuple[str, float | None]] = [
        (mode, value) for mode, value in [("clamp", clamp), ("scale", scale)] if value is not None
    ]
    if ablate:
        chosen.append(("ablate", None))
    if len(chosen) > 1:
        raise BadInput("choose one of --clamp V, --scale S and --ablate")
    return chosen[0] if chosen else ("ablate", None)


def _change(c: TokenChange) -> str:
    colour = "green" if c.change > 0 else "red"
    return f"{escape(repr(c.token))} {c.before:.3f}→{c.after:.3f} [{colour}]{c.change:+.2g}[/]"


def _activation_columns(result: SteerResult) -> tuple[list[str], list[list[str]]]:
    """Headers and per-token cells of the activation columns: one per neuron for a small
    group, else the group's strongest neuron (largest |activation|) at each token."""
    group = result.group_activations
    if len(result.neurons) == 1:
        return ["activation"], [[f"{a:.3f}"] for a in result.activations]
    if len(result.neurons) <= SHOWN_NEURONS:
        return list(result.neurons), [
            [f"{a:.3f}" for a in acts] for acts in zip(*group, strict=True)
        ]
    cells = []
    for acts in zip(*group, strict=True):
        j = max(range(len(acts)), key=lambda i: abs(acts[i]))
        cells.append([f"{result.neurons[j]} {acts[j]:.3f}"])
    return [f"strongest of {len(result.neurons)}"], cells


def _target_line(t: TargetChange) -> str:
    colour = "green" if t.change > 0 else "red"
    return (
        f"[bold]target[/] {escape(repr(t.token))}  p {t.before:.4g}→{t.after:.4g} "
        f"[{colour}]{t.change:+.3g}[/]  rank {t.rank_before}→{t.rank_after}"
    )


def _print(result: SteerResult) -> None:
    edit = result.mode if result.value is None else f"{result.mode} {result.value:g}"
    who = ", ".join(result.neurons)
    table = Table(
        title=f"{escape(who)} {edit} · {result.model}",
        show_header=True,
        header_style="bold",
    )
    table.add_column("token")
    headers, activations = _activation_columns(result)
    for header in headers:
        table.add_column(header, justify="right")
    table.add_column("KL", justify="right")
    table.add_column("largest changes of the next-token probability (before→after)")
    peak = max(result.kl, default=0.0) or 1.0
    for tok, acts, kl, top in zip(result.tokens, activations, result.kl, result.top, strict=True):
        moved = sorted(top, key=lambda c: -abs(c.change))[:SHOWN_CHANGES]
        style = "bold" if kl >= 0.5 * peak and kl > 0 else ""
        table.add_row(
            escape(repr(tok)),
            *acts,
            f"[{style}]{kl:.4f}[/]" if style else f"{kl:.4f}",
            "  ".join(_change(c) for c in moved if c.change) or "[dim]unchanged[/]",
        )
    console.print(table)
    if result.target is not None:
        console.print(_target_line(result.target))
    console.print(f"[bold]continuation[/]       {escape(repr(result.continuation.before.text))}")
    console.print(f"[bold]with the edit[/]      {escape(repr(result.continuation.after.text))}")


def steer(
    neuron_ids: Annotated[
        str,
        typer.Argument(
            metavar="IDS",
            help=f"A neuron (L05N0123, L5N123 or 5:123) or a group separated by commas "
            f"(L03N0010,L05N0042; at most {MAX_NEURONS}), all changed together.",
        ),
    ],
    text: Annotated[str, typer.Argument(help="The text to run through the model.")],
    db: DbOption,
    clamp: Annotated[
        float | None, typer.Option("--clamp", metavar="V", help="Set the neurons to V.")
    ] = None,
    scale: Annotated[
        float | None, typer.Option("--scale", metavar="S", help="Multiply the neurons by S.")
    ] = None,
    ablate: Annotated[
        bool, typer.Option("--ablate", help="Set the neurons to 0 (the default).")
    ] = False,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            metavar="TOKEN",
            help="Report the probability and rank of this next token after TEXT, before and "
            "after (one token; mind a leading space: ' Paris').",
        ),
    ] = None,
    k: Annotated[
        int, typer.Option("--k", help="Top next tokens per position.", min=1, max=MAX_K)
    ] = DEFAULT_K,
    new_tokens: Annotated[
        int,
        typer.Option(help="Length of the greedy continuations.", min=0, max=MAX_NEW_TOKENS),
    ] = DEFAULT_NEW_TOKENS,
    json: JsonOption = False,
    model: ModelOption = None,
) -> None:
    """Change neurons IDS at every position of TEXT and show what the model predicts.

    Runs the atlas's model (or --model) twice: as it is and with the neurons ablated (set to
    0), clamped (--clamp V) or scaled (--scale S), every neuron of a group in the same pass
    (e.g. the neurons an attribution graph found). Per token: the neurons' own activations,
    the KL divergence KL(before ‖ after) of the next-token distribution, and the tokens whose
    probability moved most; with --target, that next token's probability after TEXT; then a
    greedy continuation without and with the change. For mean ablation, clamp to the
    neuron's mean (`neuronatlas show ID`). --json prints one document whose `tokens`,
    `activations`, `kl` and `top` are aligned.

    Example: neuronatlas steer L05N0123 "The Eiffel Tower is in Paris" --db atlas.db --scale 4

    Example: neuronatlas steer L03N0010,L05N0042 "The capital of France is" --db atlas.db
    --ablate --target " Paris"
    """
    from neuronatlas.atlas import Atlas

    mode, value = _mode(clamp, scale, ablate)
    with Atlas(db, model=model) as atlas:
        started = time.perf_counter()
        atlas.live.get()
        reload_hint("the model", time.perf_counter() - started)
        result = atlas.steer(
            neuron_ids, text, mode, value, k=k, new_tokens=new_tokens, target=target
        )
    if json:
        print_json(result)
        return
    _print(result)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(epilog=exit_codes())(steer)
