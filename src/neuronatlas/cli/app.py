"""The Typer application object and what every command shares (consoles, common options)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    name="neuronatlas",
    help="An atlas of every MLP neuron in a transformer language model.\n\n"
    "Exit codes: 0 success, 1 error, 2 bad usage or a --db file that is not a usable atlas "
    "(missing, not an atlas, damaged, of another neuronatlas version, locked or read-only; "
    "one line on stderr says what to do), 3 finished with some inputs skipped (named on "
    "stderr).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console()
console_err = Console(stderr=True)

# no `dir_okay=False`: the store's own check answers a folder with its one-line message
DbOption = Annotated[Path, typer.Option("--db", help="The atlas file (SQLite).")]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document to stdout and nothing else.")
]
SilentOption = Annotated[bool, typer.Option("--silent", help="No progress bars.")]
DeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        help="Where the model runs: auto (CUDA when torch sees a GPU, else CPU), cpu, cuda, "
        "cuda:N or mps.",
        metavar="auto|cpu|cuda[:N]",
    ),
]

EXIT_PARTIAL = 3


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def print_json(value: object) -> None:
    """Write one JSON document to stdout (no rich formatting, no wrapping)."""
    import sys

    import msgspec

    sys.stdout.write(msgspec.json.encode(value).decode("utf-8") + "\n")


@contextmanager
def neuron_bar(label: str, first: str = "") -> Iterator[tuple[Callable[..., None], int]]:
    """A progress bar over neurons on stderr: (rich's `Progress.update`, the task id). The
    bar shows the count, the last neuron done (field `last`, starting as `first`) and times."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console_err,
    ) as bars:
        yield bars.update, bars.add_task(label, total=None, last=first)
