"""How true a neuron bar's "time left" is on a real `n2g --layer` run: rich's own estimate
(its speed over the last 30 s of updates), the average pace since the work began (what neuron
bars showed before) and `cli.app.Pace` (the pace after the first burst, what they show now),
fed the same progress events of one run.

Each is read when a batch has just finished, at every tenth of the neurons, and compared with
the time the run then really took to finish; the worst error after the first tenth is the
figure issue 26 sets at 25 %. N2G writes graphs into the atlas: point it at a copy.

    PYTHONPATH=src .venv/bin/python bench/progress_estimate_bench.py --db COPY.db --layer 3 \\
        --neurons 480

`--replay` runs nothing: it feeds the estimators the times at which an atlas's last n2g run
stored its graphs (whole seconds; one batch's graphs share a time), e.g. the run that built
the demo atlas's graphs, when the machine is too busy for a run of its own.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from rich.progress import Progress

from neuronatlas.cli.app import BURST_GAP_S, Pace, time_left
from neuronatlas.errors import BadInput
from neuronatlas.ids import format_id
from neuronatlas.n2g.run import run_n2g
from neuronatlas.store import open_reader
from neuronatlas.store.n2g import read_graph
from neuronatlas.store.reader import last_run

NAMES = ("rich's own (last 30 s)", "pace since the work began", "pace after the first burst")


class Run(NamedTuple):
    """A run's progress: the work began (total set), each neuron's report time, the end."""

    began: float
    reported: list[float]
    ended: float


class Reading(NamedTuple):
    """The three estimates (None: no estimate yet) when `done` neurons were done at `at`."""

    at: float
    done: int
    said: tuple[float | None, float | None, float | None]


def read_all(run: Run, total: int) -> list[Reading]:
    """Feed each estimator the run's reports on a clock that replays them (rich's own bar
    reads its speed from the same clock), reading all three after every report."""
    clock = [run.began]
    bar = Progress(get_time=lambda: clock[0], disable=True)
    task = bar.add_task("n2g", total=total)
    pace = Pace(run.began)
    readings = []
    for done, at in enumerate(run.reported, start=1):
        clock[0] = at
        bar.update(task, advance=1)
        pace.mark(at, done, total)
        said = (
            bar.tasks[0].time_remaining,
            time_left(run.began, at, done, total),
            pace.left(at, done, total),
        )
        readings.append(Reading(at, done, said))
    return readings


def burst_ends(readings: list[Reading]) -> list[Reading]:
    """The readings taken as a batch's last neuron was reported (the next one came later than
    `BURST_GAP_S`), before the last batch: the moments a bar is fairly read."""
    return [r for r, after in itertools.pairwise(readings) if after.at - r.at > BURST_GAP_S]


def error(said: float | None, truth: float) -> float:
    """The relative error of an estimate (no estimate counts as wholly wrong)."""
    return 1.0 if said is None else abs(said - truth) / truth


def live(db: str, wanted: Sequence[str], batch_neurons: int) -> Run:
    """Run N2G on the neurons, noting when the work began and each neuron's report."""
    began: list[float] = []
    reported: list[float] = []
    started = time.monotonic()
    report = run_n2g(
        db,
        list(wanted),
        overwrite=True,
        batch_neurons=batch_neurons,
        progress=lambda _nid, _done: reported.append(time.monotonic()),
        on_total=lambda _n: began.append(time.monotonic()),
        device="cpu",
    )
    ended = time.monotonic()
    print(
        f"n2g: {len(report.done)} graphs, {len(report.failed)} skipped in {ended - started:.1f} s"
        f" (model loaded in {began[0] - started:.1f} s)"
    )
    return Run(began[0], reported, ended)


def replay(db: str, wanted: Sequence[str]) -> Run:
    """The atlas's last n2g run, from its start and end and the times its graphs were stored."""
    conn = open_reader(db)
    try:
        run = last_run(conn, "n2g")
        graphs = [read_graph(conn, nid) for nid in wanted]
    finally:
        conn.close()
    if run is None or run["finished_at"] is None:
        raise BadInput(f"{db}: no finished n2g run to replay; run the bench without --replay")
    stored = [g["created_at"] for g in graphs if g is not None and g["run_id"] == run["id"]]
    if len(stored) != len(wanted):
        raise BadInput(
            f"{db}: the last n2g run (#{run['id']}) stored {len(stored)} of the "
            f"{len(wanted)} graphs asked for; pass the --layer and --neurons it ran"
        )

    def seconds(stamp: str) -> float:
        return datetime.fromisoformat(stamp).timestamp()

    print(
        f"replay of n2g run #{run['id']} ({run['started_at']} to {run['finished_at']}): "
        f"{len(stored)} graphs"
    )
    reported, ended = sorted(map(seconds, stored)), seconds(run["finished_at"])
    if ended - reported[-1] > 5:  # the run did more than these neurons: its end is not theirs
        raise BadInput(
            f"{db}: n2g run #{run['id']} went on {ended - reported[-1]:.0f} s after these "
            f"{len(wanted)} graphs; pass the --layer and --neurons it ran"
        )
    return Run(seconds(run["started_at"]), reported, ended)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a copy of an atlas (N2G writes into it)")
    parser.add_argument("--layer", type=int, default=3)
    parser.add_argument("--neurons", type=int, default=480, help="the layer's first N neurons")
    parser.add_argument("--batch-neurons", type=int, default=16)
    parser.add_argument(
        "--replay", action="store_true", help="replay the atlas's last n2g run instead"
    )
    args = parser.parse_args()

    wanted = [format_id(args.layer, n) for n in range(args.neurons)]
    total = len(wanted)
    load_before = os.getloadavg()
    run = replay(args.db, wanted) if args.replay else live(args.db, wanted, args.batch_neurons)
    load_after = os.getloadavg()
    if not args.replay:
        print(
            "load average (1, 5, 15 min): "
            + " ".join(f"{x:.1f}" for x in load_before)
            + " before, "
            + " ".join(f"{x:.1f}" for x in load_after)
            + " after"
        )
    ends = burst_ends(read_all(run, total))
    tenths = [next(r for r in ends if r.done >= k * total / 10) for k in range(1, 10)]
    tenth, first_batch = tenths[0], ends[0]
    print(
        f"{run.ended - run.began:.0f} s of work; a neuron took "
        f"{(first_batch.at - run.began) / first_batch.done:.2f} s in the first batch, "
        f"{(tenth.at - first_batch.at) / (tenth.done - first_batch.done):.2f} s in the rest of "
        f"the first tenth, {(run.ended - tenth.at) / (total - tenth.done):.2f} s after it"
    )
    print(f"{'done':>5} {'truth s':>8}  " + "  ".join(f"{n[:26]:>26}" for n in NAMES))
    for r in tenths:
        truth = run.ended - r.at
        cells = (
            "no estimate" if s is None else f"{s:7.1f} s ({error(s, truth):4.0%})" for s in r.said
        )
        print(f"{r.done:>5} {truth:8.1f}  " + "  ".join(f"{c:>26}" for c in cells))
    for i, name in enumerate(NAMES):
        worst = max(error(r.said[i], run.ended - r.at) for r in tenths)
        worst_any = max(error(r.said[i], run.ended - r.at) for r in ends if r.at >= tenth.at)
        print(
            f"  {name:<27} worst error from the first tenth on: {worst:.0%} at the tenths, "
            f"{worst_any:.0%} at any batch's end before the last"
        )


if __name__ == "__main__":
    main()
