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
    "Exit codes: 0 success, 1 error (one line on stderr), 2 usage error (unknown option or "
    "bad value) or a --db file that is not a usable atlas (missing, not an atlas, damaged, of "
    "another neuronatlas version, locked or read-only; one line on stderr says what to do), "
    "3 finished with some inputs skipped (named on stderr).",
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
SilentOption = Annotated[
    bool,
    typer.Option(
        "--silent",
        help="No progress bars or spinners; results, skipped inputs and errors still print.",
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        help="Where the model runs: auto (CUDA when torch sees a GPU, else CPU), cpu, cuda, "
        "cuda:N or mps.",
        metavar="auto|cpu|cuda[:N]",
    ),
]

EXIT_ERROR = 1  # a NeuronAtlasError: one line on stderr (cli/__init__.py)
EXIT_USAGE = 2  # Click's own: unknown option, missing argument, value out of range
EXIT_PARTIAL = 3


#: A command that spent at least this long loading a model says how to keep it loaded.
RELOAD_HINT_S = 1.0


def reload_hint(what: str, seconds: float) -> None:
    """One line on stderr when this call spent `seconds` loading `what`: every CLI call is
    a new process that loads its model again; the server and a Python session keep it."""
    if seconds >= RELOAD_HINT_S:
        console_err.print(
            f"hint: {seconds:.1f} s of this call went to loading {what}, again on every call; "
            "`neuronatlas serve` (HTTP) or Python `neuronatlas.Atlas(path)` keep it loaded",
            highlight=False,
            soft_wrap=True,
        )


def exit_codes(partial: bool = False) -> str:
    """The epilog of a command's --help: the exit codes that command uses (3 only for the
    commands that skip bad inputs and go on)."""
    codes = [
        "0 success",
        f"{EXIT_ERROR} error (bad input or a missing stage; one line on stderr)",
        f"{EXIT_USAGE} usage error (unknown option, missing argument, value out of range) or "
        "a --db file that is not a usable atlas (one line on stderr says what to do)",
    ]
    if partial:
        codes.append(f"{EXIT_PARTIAL} finished, but some inputs were skipped (named on stderr)")
    return "Exit codes: " + "; ".join(codes) + "."


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


#: How far back a neuron bar's speed looks: the whole run. Neurons finish in bursts (a batch,
#: a worker's chunk), and rich's default of the last 30 s then sees a burst of many neurons
#: in a fraction of a second and promises the rest in minutes (`n2g --layer` said 15 minutes
#: for an hour's work); the average since the first neuron done is steady.
WHOLE_RUN = 7 * 24 * 3600.0


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
        speed_estimate_period=WHOLE_RUN,
    ) as bars:
        yield bars.update, bars.add_task(label, total=None, last=first)


def say_what_is_stale(db: Path) -> None:
    """After a stage that changes primary explanations or their vectors: name the commands
    that bring the vectors and the map (and so search and similar neurons) back in step."""
    from neuronatlas.store import open_reader
    from neuronatlas.store.derived import staleness

    conn = open_reader(db)
    try:
        lag = staleness(conn)
    finally:
        conn.close()
    if lag.unembedded:
        hint = (
            f"{lag.unembedded:,} neurons' primary explanation is not embedded yet (search, "
            f"similar neurons and the map use older text): run `neuronatlas embed --db {db}` "
            f"then `neuronatlas map --db {db}`"
        )
    elif lag.map_stale:
        hint = (
            f"{lag.map_stale:,} neurons' map points come from older explanations or are "
            f"missing: run `neuronatlas map --db {db}` (places them on the current map)"
        )
    else:
        return
    console_err.print(hint, highlight=False, soft_wrap=True)
