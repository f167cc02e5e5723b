"""A neuron bar's time left holds when neurons finish in bursts, as N2G's batches do, and when
the first burst pays for a warm-up the later ones do not (a synthetic clock, no real timing)."""

from __future__ import annotations

from rich.progress import Progress

from neuronatlas.cli.app import Pace, WorkTimeLeft, time_left

TOTAL, BATCH, SECONDS_PER_BATCH = 480, 16, 21.0
WARM_UP = 25.0  # the first batch's extra time on a real `n2g --layer 3` run (1.83 vs 1.31 s)


class Run:
    """N2G-like progress on a synthetic clock: each batch computes, then reports its neurons
    within a tenth of a second; the bar's pace is fed as `neuron_bar` feeds it."""

    def __init__(self, progress: Progress, warm_up: float = 0.0) -> None:
        self.clock = [30.0]  # the model took 30 s to load; the total is set after it
        self.progress, self.warm_up, self.done = progress, warm_up, 0
        self.pace = Pace(self.clock[0])
        self.task = progress.add_task("n2g", total=TOTAL, pace=self.pace)
        self.batches = 0

    def batch(self) -> None:
        self.clock[0] += SECONDS_PER_BATCH + (self.warm_up if self.batches == 0 else 0.0)
        self.batches += 1
        for _ in range(BATCH):
            self.clock[0] += 0.1 / BATCH
            self.progress.update(self.task, advance=1)
            self.done += 1
            self.pace.mark(self.clock[0], self.done, TOTAL)

    def truth(self) -> float:
        """The time the rest really takes (from just after a batch's last neuron)."""
        return (TOTAL - self.done) / BATCH * (SECONDS_PER_BATCH + 0.1)


def _error(estimate: float | None, truth: float) -> float:
    assert estimate is not None
    return abs(estimate - truth) / truth


def test_after_a_warm_up_the_estimate_is_within_a_quarter_from_the_first_tenth_on():
    with Progress(disable=True) as bars:
        run = Run(bars, warm_up=WARM_UP)
        while run.done < TOTAL - BATCH:
            run.batch()
            if run.done >= TOTAL / 10:
                said = run.pace.left(run.clock[0], run.done, TOTAL)
                assert _error(said, run.truth()) <= 0.25, (run.done, said, run.truth())


def test_the_pace_since_the_work_began_was_too_long_after_the_warm_up():
    """What the bar showed before: the warm-up weighs on the average for a long while."""
    with Progress(disable=True) as bars:
        run = Run(bars, warm_up=WARM_UP)
        while run.done < TOTAL / 10:
            run.batch()
        said = time_left(run.pace.began, run.clock[0], run.done, TOTAL)
        assert _error(said, run.truth()) > 0.25


def test_steady_bursts_are_within_a_quarter_and_the_column_shows_the_estimate():
    with Progress(disable=True) as bars:
        run = Run(bars)
        column = WorkTimeLeft(lambda: run.clock[0])
        while run.done < TOTAL / 10:
            run.batch()
        said = run.pace.left(run.clock[0], run.done, TOTAL)
        assert _error(said, run.truth()) <= 0.25
        assert said is not None
        hours, rest = divmod(int(said), 3600)
        rendered = column.render(bars.tasks[0]).plain
        assert rendered == f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def test_rich_s_own_estimate_is_what_misled():
    clock = [30.0]
    with Progress(get_time=lambda: clock[0], disable=True) as bars:
        task = bars.add_task("n2g", total=TOTAL)
        done = 0
        while done < TOTAL / 10:
            clock[0] += SECONDS_PER_BATCH
            for _ in range(BATCH):
                clock[0] += 0.1 / BATCH
                bars.update(task, advance=1)
                done += 1
        estimate = bars.tasks[0].time_remaining
    truth = (TOTAL - done) / BATCH * (SECONDS_PER_BATCH + 0.1)
    assert estimate is None or abs(estimate - truth) > 0.25 * truth


def test_until_a_second_burst_the_pace_since_the_work_began_is_used():
    pace = Pace(100.0)
    assert pace.left(100.0, 0, 480) is None  # no neuron yet
    for i in range(16):
        pace.mark(130.0 + i * 0.01, i + 1, 480)
    assert not pace.settled and pace.warm_done == 16
    assert pace.left(140.0, 16, 480) == time_left(100.0, 140.0, 16, 480)
    pace.mark(151.0, 17, 480)  # a gap: the second burst begins, the first is left out
    assert pace.settled and pace.warm_done == 16 and pace.warm_at == 130.15
    assert pace.left(151.0, 17, 480) == time_left(130.15, 151.0, 1, 464)
    assert pace.left(200.0, 480, 480) == 0.0


def test_neurons_reported_one_by_one_without_gaps_settle_at_a_tenth():
    """Work with no bursts (one neuron every half second) has no warm-up burst to find: the
    first burst ends at a tenth of the total and the estimate keeps the steady pace."""
    pace = Pace(0.0)
    for done in range(1, 101):
        pace.mark(done * 0.5, done, 200)
    assert pace.settled and pace.warm_done == 20
    assert pace.left(50.0, 100, 200) == 50.0


def test_a_neuron_bar_starts_its_clock_at_the_first_total_and_feeds_its_pace(monkeypatch):
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
    pace = seen[0].get("pace")
    assert isinstance(pace, Pace) and pace.began == 100.0 and "pace" not in seen[1]
    assert (pace.warm_at, pace.warm_done, pace.settled) == (150.0, 5, True)
