"""How true a neuron bar's "time left" is on a real `n2g --layer` run: rich's own estimate
(its speed over the last 30 s of updates), the average pace since the work began (what neuron
bars showed before) and `cli.app.Pace` (the pace after the first burst, what they show now),
fed the same progress events of one run.

Each is read when a batch has just finished, at every tenth of the neurons, and compared with
the time the run then really took to finish; the worst error after the first tenth is the
figure issue 26 sets at 25 %. A live run also reads the bar `n2g` now shows, which counts the
work in model tokens (`n2g.run.Work`), at each batch's end from the moment it shows a tenth
and from a tenth of the run's real time. N2G writes graphs into the atlas: point it at a copy.

    PYTHONPATH=src .venv/bin/python bench/progress_estimate_bench.py --db COPY.db --layer 3 \\
        --neurons 480

`--replay` runs nothing: it feeds the estimators the times at which an atlas's last n2g run
stored its graphs (whole seconds; one batch's graphs share a time), e.g. the run that built
the demo atlas's graphs, when the machine is too busy for a run of its own.

`--replay --reorder` also replays that run in the batches `n2g` now makes (random neurons of
the layer, in a seeded random order, `n2g.order`), for N2G's seed 0 and for `--seeds` seeds,
and compares the errors with those of the id order the run had (and, over the seeds, with the
id-order batches merely run in a random order). A neuron's time is not stored, only its batch's
(one time for the batch's graphs, and the batch's model tokens): each batch's time is shared
among its neurons by an estimate of their model tokens from their stored stats (a least-squares
fit of the batches' tokens on their neurons' count, summed and summed squared pruned prefix
lengths), and a new batch takes the sum of its neurons' times:

    PYTHONPATH=src .venv/bin/python bench/progress_estimate_bench.py --db ATLAS.db --layer 3 \
        --neurons 480 --replay --reorder --seeds 1000
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import time
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from rich.progress import Progress

from neuronatlas.cli.app import BURST_GAP_S, Pace, time_left
from neuronatlas.errors import BadInput
from neuronatlas.ids import format_id
from neuronatlas.n2g.order import work_batches
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


class WorkEvent(NamedTuple):
    """One `on_work` report of a live run: when, and the work done and its estimated total."""

    at: float
    done: float
    total: float


def live(db: str, wanted: Sequence[str], batch_neurons: int) -> tuple[Run, list[WorkEvent]]:
    """Run N2G on the neurons, noting when the work began, each neuron's report and each
    report of the work (model tokens) that n2g's bar now counts."""
    began: list[float] = []
    reported: list[float] = []
    work: list[WorkEvent] = []
    started = time.monotonic()
    report = run_n2g(
        db,
        list(wanted),
        overwrite=True,
        batch_neurons=batch_neurons,
        progress=lambda _nid, _done: reported.append(time.monotonic()),
        on_total=lambda _n: began.append(time.monotonic()),
        device="cpu",
        on_work=lambda done, total: work.append(WorkEvent(time.monotonic(), done, total)),
    )
    ended = time.monotonic()
    print(
        f"n2g: {len(report.done)} graphs, {len(report.failed)} skipped in {ended - started:.1f} s"
        f" (model loaded in {began[0] - started:.1f} s)"
    )
    return Run(began[0], reported, ended), work


def report_work(run: Run, events: list[WorkEvent]) -> None:
    """The time left that n2g's bar now shows (`Pace` on the work, in model tokens), read at
    each batch's end (pruned or built) from the moment the bar first shows a tenth done, and
    from a tenth of the run's real time; its worst error against the time the run really
    took to finish, beside the neuron bars' (the same moments)."""
    pace = Pace(run.began)
    readings = []
    for e in events:
        pace.mark(e.at, e.done, e.total)
        readings.append(Reading(e.at, round(e.done), (pace.left(e.at, e.done, e.total),) * 3))
    ends = [r for r, after in itertools.pairwise(readings) if after.at - r.at > BURST_GAP_S]
    first = next(i for i, e in enumerate(events) if e.done >= e.total / 10)
    shown = [r for r in ends if r.at >= events[first].at]
    timed = [r for r in ends if r.at >= run.began + (run.ended - run.began) / 10]
    print(
        f"work bar: the total first said {events[0].total:,.0f} tokens, at the end "
        f"{events[-1].total:,.0f}; a tenth shown {events[first].at - run.began:.0f} s into "
        f"{run.ended - run.began:.0f} s"
    )
    for r in shown[:: max(1, len(shown) // 10)]:
        truth = run.ended - r.at
        print(
            f"  at {r.at - run.began:6.0f} s: said {r.said[0]:7.1f} s, truth {truth:7.1f} s "
            f"({error(r.said[0], truth):4.0%})"
        )
    neuron_ends = burst_ends(read_all(run, len(run.reported)))
    for what, rs in (("the bar shows a tenth", shown), ("a tenth of the real time", timed)):
        worst = max(error(r.said[0], run.ended - r.at) for r in rs)
        nrs = [r for r in neuron_ends if r.at >= rs[0].at]
        others = [max(error(r.said[i], run.ended - r.at) for r in nrs) for i in range(3)]
        print(
            f"  from {what} on: work bar worst error {worst:.0%}; neuron bars "
            + ", ".join(f"{n} {o:.0%}" for n, o in zip(NAMES, others, strict=True))
        )


class Replayed(NamedTuple):
    """A stored run: its `Run`, the time each neuron's graph was stored, and each graph's
    stats (its pruned prefix lengths and its batch's model tokens per neuron)."""

    run: Run
    stored: dict[str, float]
    stats: dict[str, dict]


def replay(db: str, wanted: Sequence[str]) -> Replayed:
    """The atlas's last n2g run, from its start and end and the times its graphs were stored."""
    conn = open_reader(db)
    try:
        run = last_run(conn, "n2g")
        graphs = [read_graph(conn, nid) for nid in wanted]
    finally:
        conn.close()
    if run is None or run.finished_at is None:
        raise BadInput(f"{db}: no finished n2g run to replay; run the bench without --replay")
    ours = [g for g in graphs if g is not None and g.run_id == run.id]
    stored = {g.neuron_id: g.created_at for g in ours}
    if len(stored) != len(wanted):
        raise BadInput(
            f"{db}: the last n2g run (#{run.id}) stored {len(stored)} of the "
            f"{len(wanted)} graphs asked for; pass the --layer and --neurons it ran"
        )

    def seconds(stamp: str) -> float:
        return datetime.fromisoformat(stamp).timestamp()

    print(
        f"replay of n2g run #{run.id} ({run.started_at} to {run.finished_at}): {len(stored)} graphs"
    )
    reported, ended = sorted(map(seconds, stored.values())), seconds(run.finished_at)
    if ended - reported[-1] > 5:  # the run did more than these neurons: its end is not theirs
        raise BadInput(
            f"{db}: n2g run #{run.id} went on {ended - reported[-1]:.0f} s after these "
            f"{len(wanted)} graphs; pass the --layer and --neurons it ran"
        )
    return Replayed(
        Run(seconds(run.started_at), reported, ended),
        {nid: seconds(t) for nid, t in stored.items()},
        {g.neuron_id: g.stats for g in ours},
    )


class NeuronTimes(NamedTuple):
    """Each neuron's estimated time in the replayed run, and the time after its last batch."""

    took: dict[str, float]
    tail: float


def neuron_times(replayed: Replayed, wanted: Sequence[str], batch_neurons: int) -> NeuronTimes:
    """Each neuron's share of its id-order batch's time, by an estimate of its model tokens
    (the replayed run ran `wanted` in id-order batches: checked, a batch's graphs were stored
    together, after the batch before it), and the time after the last batch."""
    import numpy as np

    run, stored, stats = replayed
    batches = work_batches(wanted, batch_neurons, 0, order="id")
    batch_took, before = [], run.began
    for batch in batches:
        times = [stored[nid] for nid in batch.ids]
        if min(times) < before or max(times) - min(times) > BURST_GAP_S:
            raise BadInput(
                f"the replayed run did not build these neurons in id-order batches of "
                f"{batch_neurons}; pass the --batch-neurons it ran"
            )
        batch_took.append(max(times) - before)
        before = max(times)

    def features(nid: str) -> list[float]:
        lengths = stats[nid].get("pruned_lengths", [])
        return [1.0, float(sum(lengths)), float(sum(n * n for n in lengths))]

    per_batch = np.array([[features(n) for n in b.ids] for b in batches], dtype=object)
    x = np.array([np.sum(f, axis=0) for f in per_batch], dtype=float)
    tokens = np.array([stats[b.ids[0]]["model_tokens_share"] * len(b.ids) for b in batches])
    coef = np.linalg.lstsq(x, tokens, rcond=None)[0]
    print(
        f"a batch's model tokens from its neurons' pruned prefixes: correlation "
        f"{np.corrcoef(x @ coef, tokens)[0, 1]:.2f} over {len(batches)} batches"
    )
    took: dict[str, float] = {}
    for batch, feats, t in zip(batches, per_batch, batch_took, strict=True):
        guess = np.clip(np.array(feats, dtype=float) @ coef, 1e-3, None)
        took.update(zip(batch.ids, (t * guess / guess.sum()).tolist(), strict=True))
    spread = np.array(list(took.values()))
    print(
        f"a neuron's time, so estimated: coefficient of variation "
        f"{spread.std() / spread.mean():.2f}, the costliest {spread.max() / spread.mean():.0f}x "
        "the mean"
    )
    return NeuronTimes(took, run.ended - before)


def reordered(
    replayed: Replayed,
    times: NeuronTimes,
    wanted: Sequence[str],
    batch_neurons: int,
    seed: int,
    regroup: bool = True,
) -> Run:
    """The replayed run in `n2g`'s batches for `seed` (`regroup`: random neurons per batch, as
    n2g makes them now; else the id-order batches in a random order), a batch taking the sum
    of its neurons' estimated times (`neuron_times`)."""
    batches = work_batches(wanted, batch_neurons, seed)
    if not regroup:
        by_id = work_batches(wanted, batch_neurons, seed, order="id")
        batches = [by_id[i] for i in random.Random(seed).sample(range(len(by_id)), len(by_id))]
    clock, reported = replayed.run.began, []
    for batch in batches:
        clock += sum(times.took[nid] for nid in batch.ids)
        reported += [clock] * len(batch.ids)
    return Run(replayed.run.began, reported, clock + times.tail)


def worst_errors(run: Run, total: int) -> tuple[list[Reading], list[float], list[float]]:
    """The readings at every tenth, and per estimator the worst error from the first tenth on
    at the tenths and at any batch's end before the last."""
    ends = burst_ends(read_all(run, total))
    tenths = [next(r for r in ends if r.done >= k * total / 10) for k in range(1, 10)]
    at_tenths = [max(error(r.said[i], run.ended - r.at) for r in tenths) for i in range(3)]
    at_ends = [
        max(error(r.said[i], run.ended - r.at) for r in ends if r.at >= tenths[0].at)
        for i in range(3)
    ]
    return tenths, at_tenths, at_ends


def report(run: Run, total: int) -> None:
    """The run's estimates at every tenth and each estimator's worst error."""
    tenths, at_tenths, at_ends = worst_errors(run, total)
    tenth, first_batch = tenths[0], burst_ends(read_all(run, total))[0]
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
        print(
            f"  {name:<27} worst error from the first tenth on: {at_tenths[i]:.0%} at the "
            f"tenths, {at_ends[i]:.0%} at any batch's end before the last"
        )


def over_seeds(
    replayed: Replayed, times: NeuronTimes, wanted: Sequence[str], batch_neurons: int, seeds: int
) -> None:
    """Each estimator's worst error from the first tenth on (at the tenths) over `seeds` seeds,
    for random batches (n2g now) and for the id-order batches in a random order: median, 90th
    percentile, the share of seeds within 25 %, and the batches' times' spread."""
    import numpy as np

    for regroup, what in ((False, "id-order batches in a random order"), (True, "n2g's batches")):
        worst, spread = [], []
        for seed in range(seeds):
            run = reordered(replayed, times, wanted, batch_neurons, seed, regroup)
            took = np.diff(sorted(set(run.reported)), prepend=run.began)
            spread.append(took.std() / took.mean())
            worst.append(worst_errors(run, len(wanted))[1])
        col_all = np.array(worst)
        print(
            f"{what}, seeds 0-{seeds - 1}: a batch's time varies by {np.median(spread):.2f} "
            f"(median coefficient of variation); worst error from the first tenth on:"
        )
        for i, name in enumerate(NAMES):
            col = col_all[:, i]
            print(
                f"  {name:<27} median {np.median(col):.0%}, 90th percentile "
                f"{np.percentile(col, 90):.0%}, within 25 % for {np.mean(col <= 0.25):.0%} of seeds"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a copy of an atlas (N2G writes into it)")
    parser.add_argument("--layer", type=int, default=3)
    parser.add_argument("--neurons", type=int, default=480, help="the layer's first N neurons")
    parser.add_argument("--batch-neurons", type=int, default=16)
    parser.add_argument(
        "--replay", action="store_true", help="replay the atlas's last n2g run instead"
    )
    parser.add_argument(
        "--reorder",
        action="store_true",
        help="with --replay: also replay its batches in n2g's seeded random order",
    )
    parser.add_argument(
        "--seeds", type=int, default=0, help="with --reorder: summarise this many seeds"
    )
    args = parser.parse_args()
    if args.reorder and not args.replay:
        raise BadInput("--reorder replays a stored run: add --replay")

    wanted = [format_id(args.layer, n) for n in range(args.neurons)]
    total = len(wanted)
    load_before = os.getloadavg()
    replayed = replay(args.db, wanted) if args.replay else None
    events: list[WorkEvent] = []
    if replayed:
        run = replayed.run
    else:
        run, events = live(args.db, wanted, args.batch_neurons)
    load_after = os.getloadavg()
    if not args.replay:
        print(
            "load average (1, 5, 15 min): "
            + " ".join(f"{x:.1f}" for x in load_before)
            + " before, "
            + " ".join(f"{x:.1f}" for x in load_after)
            + " after"
        )
    if replayed and args.reorder:
        print("in the order the run had (id order):")
    report(run, total)
    if events:
        report_work(run, events)
    if replayed and args.reorder:
        times = neuron_times(replayed, wanted, args.batch_neurons)
        print("in n2g's batches (random neurons, random order; seed 0, N2G's default):")
        report(reordered(replayed, times, wanted, args.batch_neurons, 0), total)
        if args.seeds:
            over_seeds(replayed, times, wanted, args.batch_neurons, args.seeds)


if __name__ == "__main__":
    main()
