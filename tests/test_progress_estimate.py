"""A neuron bar's time left holds when neurons finish in bursts, as N2G's batches do."""

from __future__ import annotations

from rich.progress import Progress

from neuronatlas.cli.app import WorkTimeLeft, time_left

TOTAL, BATCH, SECONDS_PER_BATCH = 2048, 16, 80.0


def _run_a_tenth(progress: Progress, clock: list[float]) -> tuple[int, float]:
    """Report a tenth of the neurons in N2G-like bursts (each batch's neurons within a tenth
    of a second after the batch's work); (the task id, the true time left then)."""
    task = progress.add_task("n2g", total=TOTAL, began=clock[0])
    done = 0
    while done < TOTAL // 10:
        clock[0] += SECONDS_PER_BATCH
        for _ in range(BATCH):
            clock[0] += 0.1 / BATCH
            progress.update(task, advance=1)
            done += 1
    return task, (TOTAL - done) / BATCH * SECONDS_PER_BATCH


def test_the_pace_since_the_work_began_is_within_a_quarter_of_the_truth():
    clock = [30.0]  # the model took 30 s to load; the total is set after it
    column = WorkTimeLeft(lambda: clock[0])
    with Progress(column, get_time=lambda: clock[0], disable=True) as bars:
        _, truth = _run_a_tenth(bars, clock)
        task = bars.tasks[0]
        estimate = time_left(task.fields["began"], clock[0], task.completed, TOTAL)
        assert estimate is not None and abs(estimate - truth) <= 0.25 * truth
        hours, rest = divmod(int(estimate), 3600)
        assert column.render(task).plain == f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def test_rich_s_own_estimate_is_what_misled():
    clock = [30.0]
    with Progress(get_time=lambda: clock[0], disable=True) as bars:
        _, truth = _run_a_tenth(bars, clock)
        estimate = bars.tasks[0].time_remaining
    assert estimate is None or abs(estimate - truth) > 0.25 * truth


def test_no_estimate_before_the_first_neuron():
    assert time_left(10.0, 50.0, 0, 100) is None
    assert time_left(10.0, 50.0, 100, 100) == 0.0


def test_a_neuron_bar_starts_its_clock_at_the_first_total(monkeypatch):
    """Callers that pass the total with every step (explain, score) keep the first start."""
    import importlib

    from rich.progress import Progress as RichProgress

    cli_app = importlib.import_module("neuronatlas.cli.app")  # the module, not the Typer app

    clock = [100.0]
    seen: list[dict] = []
    real_update = RichProgress.update

    def record(self, task_id, **fields):
        seen.append(dict(fields))
        real_update(self, task_id, **fields)

    monkeypatch.setattr(cli_app.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(RichProgress, "update", record)
    with cli_app.neuron_bar("explain") as (update, task):
        update(task, completed=0, total=10, last="")
        clock[0] += 50.0
        update(task, completed=5, total=10, last="L00N0004")
    assert [f.get("began") for f in seen[:2]] == [100.0, None]
