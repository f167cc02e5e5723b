"""Where a running build stands, for the explorer to show while it is being built.

`build_atlas` reports progress as (stage, fraction, detail) calls. `BuildStatus` is such a
callback that remembers what it was told, thread-safely (the build runs in one thread, the
server answers in others), and gives a typed snapshot: each stage's state and time, the share
of the whole build done, and an estimate of the time left once enough of it is done to say.
Which parts of the atlas can be served follows from which stages are done: neuron pages and
search after `scrape`, the map after `map`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Literal

import msgspec

StageState = Literal["waiting", "running", "done", "failed"]

#: Share of the weighted build that must be done before the time left is estimated: earlier,
#: the first stage's start-up (loading a model) dominates and the estimate is noise.
ESTIMATE_AFTER = 0.05


class StageStatus(msgspec.Struct, frozen=True):
    """One stage of the build as the server sees it."""

    name: str
    state: StageState
    fraction: float
    """Share of the stage done, 0 … 1."""
    detail: str
    seconds: float
    """Time spent in the stage so far (or in all, once done)."""


class BuildState(msgspec.Struct, frozen=True):
    """A snapshot of the whole build."""

    stages: list[StageStatus]
    fraction: float
    """Share of the whole build done, each stage weighted by its usual share of the time."""
    elapsed_s: float
    remaining_s: float | None
    """Estimated seconds left (None until `ESTIMATE_AFTER` of the build is done)."""
    current: str | None
    """The stage running now."""
    done: bool
    error: str | None
    """Why the build stopped, if it failed (what is built so far stays served)."""
    pages_ready: bool
    """The scrape is written: neuron pages, records and search can be served."""
    map_ready: bool


class BuildStatus:
    """A `StageProgress` callback that keeps the latest state of every stage."""

    def __init__(
        self,
        stages: Sequence[str],
        weight: Callable[[str], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._names = list(stages)
        self._weights = {name: max(weight(name), 0.0) for name in self._names}
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._fraction = dict.fromkeys(self._names, 0.0)
        self._detail = dict.fromkeys(self._names, "")
        self._state: dict[str, StageState] = dict.fromkeys(self._names, "waiting")
        self._began: dict[str, float] = {}
        self._ended: dict[str, float] = {}
        self._done = False
        self._error: str | None = None

    def __call__(self, stage: str, fraction: float, detail: str) -> None:
        """Record progress of `stage` (the pipeline's callback signature)."""
        now = self._clock()
        with self._lock:
            if stage not in self._state:  # a stage the caller did not announce: show it too
                self._names.append(stage)
                self._weights[stage] = 0.0
                self._fraction[stage], self._detail[stage] = 0.0, ""
            self._began.setdefault(stage, now)
            self._fraction[stage] = min(max(float(fraction), 0.0), 1.0)
            self._detail[stage] = detail
            if fraction >= 1.0:
                self._state[stage] = "done"
                self._ended[stage] = now
            else:
                self._state[stage] = "running"

    def finish(self, error: BaseException | None = None) -> None:
        """The build returned (error None) or raised `error`."""
        with self._lock:
            self._done = True
            if error is not None:
                self._error = f"{type(error).__name__}: {error}"
                for name, state in self._state.items():
                    if state == "running":
                        self._state[name] = "failed"

    def snapshot(self) -> BuildState:
        now = self._clock()
        with self._lock:
            stages = [
                StageStatus(
                    name=name,
                    state=self._state[name],
                    fraction=self._fraction[name],
                    detail=self._detail[name],
                    seconds=round(
                        self._ended.get(name, now) - self._began[name]
                        if name in self._began
                        else 0.0,
                        1,
                    ),
                )
                for name in self._names
            ]
            total = sum(self._weights.values()) or 1.0
            fraction = sum(self._weights[s.name] * s.fraction for s in stages) / total
            elapsed = now - self._started
            remaining = (
                elapsed * (1 - fraction) / fraction
                if fraction >= ESTIMATE_AFTER and not self._done
                else None
            )
            running = [s.name for s in stages if s.state == "running"]
            return BuildState(
                stages=stages,
                fraction=round(fraction, 4),
                elapsed_s=round(elapsed, 1),
                remaining_s=None if remaining is None else round(remaining, 1),
                current=running[0] if running else None,
                done=self._done,
                error=self._error,
                pages_ready=self._state.get("scrape") == "done",
                map_ready=self._state.get("map") == "done" or (self._done and not self._error),
            )
