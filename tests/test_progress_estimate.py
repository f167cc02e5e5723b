"""A neuron bar's time left holds when neurons finish in bursts, as N2G's batches do."""

from __future__ import annotations

from rich.progress import Progress

from neuronatlas.cli.app import WHOLE_RUN

TOTAL, BATCH, SECONDS_PER_BATCH = 2048, 16, 80.0


def _remaining_after_a_tenth(**options) -> tuple[float | None, float]:
    """(the bar's time left, the true time left) once a tenth of the neurons are done, each
    batch's neurons reported within a tenth of a second after the batch's work."""
    now = [0.0]
    with Progress(get_time=lambda: now[0], disable=True, **options) as bars:
        task = bars.add_task("n2g", total=TOTAL)
        done = 0
        now[0] = 30.0  # loading the model
        while done < TOTAL // 10:
            now[0] += SECONDS_PER_BATCH
            for _ in range(BATCH):
                now[0] += 0.1 / BATCH
                bars.update(task, advance=1)
                done += 1
        estimate = bars.tasks[0].time_remaining
    return estimate, (TOTAL - done) / BATCH * SECONDS_PER_BATCH


def test_the_whole_run_average_is_within_a_quarter_of_the_truth():
    estimate, truth = _remaining_after_a_tenth(speed_estimate_period=WHOLE_RUN)
    assert estimate is not None and abs(estimate - truth) <= 0.25 * truth


def test_rich_s_default_window_is_what_misled():
    estimate, truth = _remaining_after_a_tenth()
    assert estimate is None or abs(estimate - truth) > 0.25 * truth
