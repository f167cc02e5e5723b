"""`neuronatlas steer`: one neuron ablated, clamped or scaled in the atlas's live model."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from neuronatlas.cli.app import (
    DbOption,
    JsonOption,
    app,
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
    MAX_NEW_TOKENS,
    SteerResult,
    TokenChange,
)

SHOWN_CHANGES = 3  # per token in the table; --json has all


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


def _print(result: SteerResult) -> None:
    edit = result.mode if result.value is None else f"{result.mode} {result.value:g}"
    table = Table(
        title=f"{result.neuron} {edit} · {result.model}",
        show_header=True,
        header_style="bold",
    )
    table.add_column("token")
    table.add_column("activation", justify="right")
    table.add_column("KL", justify="right")
    table.add_column("largest changes of the next-token probability (before→after)")
    peak = max(result.kl, default=0.0) or 1.0
    for tok, act, kl, top in zip(
        result.tokens, result.activations, result.kl, result.top, strict=True
    ):
        moved = sorted(top, key=lambda c: -abs(c.change))[:SHOWN_CHANGES]
        style = "bold" if kl >= 0.5 * peak and kl > 0 else ""
        table.add_row(
            escape(repr(tok)),
            f"{act:.3f}",
            f"[{style}]{kl:.4f}[/]" if style else f"{kl:.4f}",
            "  ".join(_change(c) for c in moved if c.change) or "[dim]unchanged[/]",
        )
    console.print(table)
    console.print(f"[bold]continuation[/]       {escape(repr(result.continuation.before.text))}")
    console.print(f"[bold]with the edit[/]      {escape(repr(result.continuation.after.text))}")


@app.command(epilog=exit_codes())
def steer(
    neuron_id: Annotated[str, typer.Argument(metavar="ID", help="L05N0123, L5N123 or 5:123.")],
    text: Annotated[str, typer.Argument(help="The text to run through the model.")],
    db: DbOption,
    clamp: Annotated[
        float | None, typer.Option("--clamp", metavar="V", help="Set the neuron to V.")
    ] = None,
    scale: Annotated[
        float | None, typer.Option("--scale", metavar="S", help="Multiply the neuron by S.")
    ] = None,
    ablate: Annotated[
        bool, typer.Option("--ablate", help="Set the neuron to 0 (the default).")
    ] = False,
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
    """Change neuron ID at every position of TEXT and show what the model predicts then.

    Runs the atlas's model (or --model) twice: as it is and with the neuron ablated (set to
    0), clamped (--clamp V) or scaled (--scale S). Per token: the neuron's own activation,
    the KL divergence KL(before ‖ after) of the next-token distribution, and the tokens whose
    probability moved most; then a greedy continuation without and with the change. For mean
    ablation, clamp to the neuron's mean (`neuronatlas show ID`). --json prints one
    document whose `tokens`, `activations`, `kl` and `top` are aligned.

    Example: neuronatlas steer L05N0123 "The Eiffel Tower is in Paris" --db atlas.db --scale 4
    """
    from neuronatlas.atlas import Atlas

    mode, value = _mode(clamp, scale, ablate)
    with Atlas(db, model=model) as atlas:
        started = time.perf_counter()
        atlas.live.get()
        reload_hint("the model", time.perf_counter() - started)
        result = atlas.steer(neuron_id, text, mode, value, k=k, new_tokens=new_tokens)
    if json:
        print_json(result)
        return
    _print(result)
