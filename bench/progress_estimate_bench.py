"""How true a neuron bar's "time left" is on a real `n2g --layer` run: rich's own estimate
(its speed over the last 30 s of updates) against the pace since the work began
(`cli.app.time_left`, what neuron bars show), fed the same progress events in the same run.

Both are read when a tenth of the neurons are done and compared with the time the run then
really took to finish. N2G writes graphs into the atlas: point it at a copy.

    PYTHONPATH=src .venv/bin/python bench/progress_estimate_bench.py --db COPY.db --layer 3 \\
        --neurons 480
"""

from __future__ import annotations

import argparse
import time

from rich.progress import Progress

from neuronatlas.cli.app import time_left
from neuronatlas.ids import format_id
from neuronatlas.n2g.run import run_n2g


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a copy of an atlas (N2G writes into it)")
    parser.add_argument("--layer", type=int, default=3)
    parser.add_argument("--neurons", type=int, default=480, help="the layer's first N neurons")
    parser.add_argument("--batch-neurons", type=int, default=16)
    args = parser.parse_args()

    wanted = [format_id(args.layer, n) for n in range(args.neurons)]
    rich_bar = Progress(disable=True)
    task = rich_bar.add_task("n2g", total=len(wanted))
    began: list[float] = []
    read: dict[str, float | None] = {}
    read_at: list[float] = []

    def on_total(_n: int) -> None:
        began.append(time.monotonic())

    def progress(_nid: str, done: int) -> None:
        rich_bar.update(task, advance=1)
        if not read_at and done >= len(wanted) / 10:
            now = time.monotonic()
            read_at.append(now)
            read["rich's own (last 30 s)"] = rich_bar.tasks[0].time_remaining
            read["pace since the work began"] = time_left(began[0], now, done, len(wanted))

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
    truth = ended - read_at[0]
    print(
        f"n2g: {len(report.done)} graphs, {len(report.failed)} skipped in {ended - started:.1f} s"
        f" (model loaded in {began[0] - started:.1f} s); estimates read at "
        f"{read_at[0] - started:.1f} s, the run then took {truth:.1f} s more"
    )
    for name, estimate in read.items():
        if estimate is None:
            print(f"  {name:<27} no estimate")
        else:
            print(
                f"  {name:<27} said {estimate:7.1f} s: {estimate / truth:.2f}x the truth "
                f"(error {abs(estimate - truth) / truth:.0%})"
            )


if __name__ == "__main__":
    main()
