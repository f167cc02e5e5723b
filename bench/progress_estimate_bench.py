"""How true a neuron bar's "time left" is on a real `n2g --layer` run: rich's own estimate
(its speed over the last 30 s of updates), the average pace since the work began (what neuron
bars showed before) and `cli.app.Pace` (the pace after the first burst, what they show now),
fed the same progress events in the same run.

Each is read when a batch has just finished, at every tenth of the neurons, and compared with
the time the run then really took to finish; the worst error after the first tenth is the
figure issue 26 sets at 25 %. N2G writes graphs into the atlas: point it at a copy.

    PYTHONPATH=src .venv/bin/python bench/progress_estimate_bench.py --db COPY.db --layer 3 \\
        --neurons 480
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from typing import NamedTuple

from rich.progress import Progress

from neuronatlas.cli.app import BURST_GAP_S, Pace, time_left
from neuronatlas.ids import format_id
from neuronatlas.n2g.run import run_n2g

NAMES = ("rich's own (last 30 s)", "pace since the work began", "pace after the first burst")


class Reading(NamedTuple):
    """The three estimates (None: no estimate yet) when `done` neurons were done at `at`."""

    at: float
    done: int
    said: tuple[float | None, float | None, float | None]


def burst_ends(readings: list[Reading]) -> list[Reading]:
    """The readings taken as a batch's last neuron was reported (the next one came later than
    `BURST_GAP_S`), before the last batch: the moments a bar is fairly read."""
    return [r for r, after in itertools.pairwise(readings) if after.at - r.at > BURST_GAP_S]


def error(said: float | None, truth: float) -> float:
    """The relative error of an estimate (no estimate counts as wholly wrong)."""
    return 1.0 if said is None else abs(said - truth) / truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a copy of an atlas (N2G writes into it)")
    parser.add_argument("--layer", type=int, default=3)
    parser.add_argument("--neurons", type=int, default=480, help="the layer's first N neurons")
    parser.add_argument("--batch-neurons", type=int, default=16)
    args = parser.parse_args()

    wanted = [format_id(args.layer, n) for n in range(args.neurons)]
    total = len(wanted)
    rich_bar = Progress(disable=True)
    task = rich_bar.add_task("n2g", total=total)
    began: list[float] = []
    pace: list[Pace] = []
    readings: list[Reading] = []

    def on_total(_n: int) -> None:
        began.append(time.monotonic())
        pace.append(Pace(began[0]))

    def progress(_nid: str, done: int) -> None:
        rich_bar.update(task, advance=1)
        now = time.monotonic()
        pace[0].mark(now, done, total)
        said = (
            rich_bar.tasks[0].time_remaining,
            time_left(began[0], now, done, total),
            pace[0].left(now, done, total),
        )
        readings.append(Reading(now, done, said))

    load_before = os.getloadavg()
    started = time.monotonic()
    report = run_n2g(
        args.db,
        wanted,
        overwrite=True,
        batch_neurons=args.batch_neurons,
        progress=progress,
        on_total=on_total,
        device="cpu",
    )
    ended = time.monotonic()
    load_after = os.getloadavg()
    ends = burst_ends(readings)
    tenths = [next(r for r in ends if r.done >= k * total / 10) for k in range(1, 10)]
    tenth = tenths[0]
    print(
        f"n2g: {len(report.done)} graphs, {len(report.failed)} skipped in {ended - started:.1f} s"
        f" (model loaded in {began[0] - started:.1f} s); load average (1, 5, 15 min) "
        f"{load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f} before, "
        f"{load_after[0]:.1f} {load_after[1]:.1f} {load_after[2]:.1f} after"
    )
    first_batch = ends[0]
    print(
        f"pace: first batch {(first_batch.at - began[0]) / first_batch.done:.2f} s a neuron, "
        f"the rest of the first tenth "
        f"{(tenth.at - first_batch.at) / (tenth.done - first_batch.done):.2f}, after it "
        f"{(ended - tenth.at) / (total - tenth.done):.2f}"
    )
    print(f"{'done':>5} {'truth s':>8}  " + "  ".join(f"{n[:26]:>26}" for n in NAMES))
    for r in tenths:
        truth = ended - r.at
        cells = (
            "no estimate" if s is None else f"{s:7.1f} s ({error(s, truth):4.0%})" for s in r.said
        )
        print(f"{r.done:>5} {truth:8.1f}  " + "  ".join(f"{c:>26}" for c in cells))
    for i, name in enumerate(NAMES):
        worst = max(error(r.said[i], ended - r.at) for r in tenths)
        worst_any = max(error(r.said[i], ended - r.at) for r in ends if r.at >= tenth.at)
        print(
            f"  {name:<27} worst error from the first tenth on: {worst:.0%} at the tenths, "
            f"{worst_any:.0%} at any batch's end before the last"
        )


if __name__ == "__main__":
    main()
