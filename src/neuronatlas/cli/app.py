"""The Typer application object and what every command shares (consoles, common options)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import ProgressColumn, Task, TaskID
from rich.text import Text

from neuronatlas.stage import Report, Stage, ensure_tables, no_progress

S = TypeVar("S")

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


def new_app(stages: tuple[Stage[Any], ...] | None) -> typer.Typer:
    """An empty `neuronatlas` application whose commands see `stages` (the stage registry)
    as their context's `obj`; `neuronatlas.cli.make_app` adds the commands."""
    app = typer.Typer(
        name="neuronatlas",
        help="An atlas of every MLP neuron in a transformer language model.\n\n"
        "Exit codes: 0 success, 1 error (one line on stderr), 2 usage error (unknown option or "
        "bad value) or a --db file that is not a usable atlas (missing, not an atlas, damaged, "
        "of another neuronatlas version, locked or read-only; one line on stderr says what to "
        "do), 3 finished with some inputs skipped (named on stderr).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )

    @app.callback()
    def _root(
        ctx: typer.Context,
        verbose: Annotated[
            bool, typer.Option("--verbose", "-v", help="Log debug messages.")
        ] = False,
    ) -> None:
        ctx.obj = stages
        logging.basicConfig(
            level=logging.DEBUG if verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )

    return app


def stages_of(ctx: typer.Context) -> tuple[Stage[Any], ...]:
    """The stage registry the running application was made with (default: `STAGES`)."""
    from neuronatlas.stages import STAGES

    found = ctx.find_root().obj
    return tuple(found) if found is not None else STAGES


def print_json(value: object) -> None:
    """Write one JSON document to stdout (no rich formatting, no wrapping)."""
    import sys

    import msgspec

    sys.stdout.write(msgspec.json.encode(value).decode("utf-8") + "\n")


def time_left(began: float, now: float, done: float, total: float) -> float | None:
    """Seconds left at the average pace since `began` (None before the first neuron).

    Neurons finish in bursts (a batch, a worker's chunk): rich's own estimate, the speed over
    its last 30 s of updates, sees a burst of many neurons within a fraction of a second and
    promises the rest in seconds (`n2g --layer` said 15 minutes for an hour's work). An average
    pace over a stretch of time counts the time the bursts took to compute."""
    if done <= 0 or now <= began:
        return None
    return max(0.0, (now - began) * (total - done) / done)


BURST_GAP_S = 1.0
"""Updates closer than this belong to one burst (N2G reports a batch within a fraction of a
second; its batches take tens of seconds)."""


@dataclass
class Pace:
    """A bar's pace, measured from the end of its first burst of finished neurons.

    The first burst pays for warm-up that later ones do not (lazy loads, first calls into the
    model): on a real `n2g --layer 3` run the first tenth took 1.83 s a neuron and the rest
    1.31, so the average since the work began said 40 % too long at a tenth. Leaving out the
    first burst is the simplest cure that keeps what made the average right: every burst after
    it is counted whole. A sliding window over recent bursts would also drop the warm-up but
    swings with each batch's own cost and the machine's load; the average after the warm-up
    stays steady. Until a second burst has finished, the pace since `began` is all there is.
    The first burst ends at the first gap of `BURST_GAP_S` between updates, or at a tenth of
    the total (work reported neuron by neuron, without gaps, has no burst to leave out)."""

    began: float  # when the bar's total was first set: the work, without loading a model
    warm_at: float | None = None  # when the first burst ended
    warm_done: float = 0.0  # neurons done by then
    settled: bool = False  # the first burst is over

    def mark(self, now: float, done: float, total: float | None) -> None:
        """Note a progress update (after it is applied: `done` neurons of `total`)."""
        if self.settled or done <= 0:
            return
        if self.warm_at is not None and now - self.warm_at > BURST_GAP_S:
            self.settled = True  # this update starts the second burst
            return
        self.warm_at, self.warm_done = now, done
        if total is not None and done >= total / 10:
            self.settled = True

    def left(self, now: float, done: float, total: float) -> float | None:
        """Seconds left: the pace since the first burst, or since `began` until a later
        burst has finished."""
        if done >= total:
            return 0.0
        if self.warm_at is not None and done > self.warm_done:
            return time_left(self.warm_at, now, done - self.warm_done, total - self.warm_done)
        return time_left(self.began, now, done, total)


class WorkTimeLeft(ProgressColumn):
    """A bar's time left by its `Pace` (`pace` field, set when its total was first set)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self._clock = clock

    def render(self, task: Task) -> Text:
        pace = task.fields.get("pace")
        left = (
            None
            if task.total is None or not isinstance(pace, Pace)
            else pace.left(self._clock(), task.completed, task.total)
        )
        if task.finished:
            left = 0.0
        if left is None:
            return Text("-:--:--", style="progress.remaining")
        minutes, seconds = divmod(int(left), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours:d}:{minutes:02d}:{seconds:02d}", style="progress.remaining")


@contextmanager
def neuron_bar(label: str, first: str = "") -> Iterator[tuple[Callable[..., None], int]]:
    """A progress bar over neurons on stderr: (an updater taking rich's `Progress.update`
    arguments, the task id). The bar shows the count, the last neuron done (field `last`,
    starting as `first`), the time spent and the time left (`WorkTimeLeft`: the work begins
    when the caller first sets the total, after loading a model)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        WorkTimeLeft(time.monotonic),  # rich's own clock
        console=console_err,
    ) as bars:
        paces: dict[TaskID, Pace] = {}

        def update(task_id: TaskID, **fields: Any) -> None:
            if fields.get("total") is not None and task_id not in paces:
                fields["pace"] = paces[task_id] = Pace(time.monotonic())  # the first total
            bars.update(task_id, **fields)
            if task_id in paces:
                task = next(t for t in bars.tasks if t.id == task_id)
                paces[task_id].mark(time.monotonic(), task.completed, task.total)

        yield update, bars.add_task(label, total=None, last=first, pace=None)


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


def run_stage(stage: Stage[S], db: Path, settings: S, silent: bool = False) -> Report:
    """Run one stage for a command: the stage's `Progress` drawn as one bar on stderr (none
    with `silent`; the bar is gone once the stage ends), then its `Report` for the command's
    own summary lines. The bar shows the time spent and the time left by `Pace`, which starts
    counting when the stage first gives a total (after loading its model)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    ensure_tables(stage, db)
    if silent:
        return stage.run(db, settings, no_progress)
    with Progress(
        TextColumn(stage.name),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        WorkTimeLeft(time.monotonic),
        console=console_err,
        transient=True,
    ) as bars:
        task = bars.add_task(stage.name, total=None, detail="", pace=None)
        paces: list[Pace] = []

        def progress(done: int, total: int, detail: str = "") -> None:
            if total and not paces:
                paces.append(Pace(time.monotonic()))
                bars.update(task, pace=paces[0])
            bars.update(task, completed=done, total=total or None, detail=detail)
            if paces:
                paces[0].mark(time.monotonic(), done, total or None)

        return stage.run(db, settings, progress)
