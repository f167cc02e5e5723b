"""The scrape as a `Stage`: one streaming pass of the model over the corpus into the atlas.

A rerun with the settings of the last finished scrape is skipped (the atlas already holds
them) unless `force` is set, as the `scrape` command does; anything else scrapes, resuming
from a checkpoint left by an interrupted run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from neuronatlas.scrape.settings import ScrapeSettings
from neuronatlas.stage import Progress, Report, Stage, last_run

if TYPE_CHECKING:
    from neuronatlas.scrape.runner import Progress as ScrapeEvent
    from neuronatlas.scrape.runner import ScrapeResult

#: The settings a finished scrape must share with a new one for the rerun to be skipped.
_SAME = ("model", "corpus", "tokens", "context", "top_k", "random_k")

#: A function that scrapes: `run_scrape`, or the same on Ray (`neuronatlas.scale`).
Scraper = Callable[[ScrapeSettings, Path, Callable[["ScrapeEvent"], None]], "ScrapeResult"]


@dataclass
class ScrapeStageSettings(ScrapeSettings):
    """The scrape's settings, plus whether to scrape an atlas that already holds them."""

    force: bool = False
    """Scrape even when the last finished scrape had these settings (the `scrape` command
    always scrapes; an interrupted scrape resumes from its checkpoint either way)."""

    def scrape_settings(self) -> ScrapeSettings:
        """The settings the scrape itself reads and saves with its run (without `force`)."""
        return ScrapeSettings(
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(ScrapeSettings)}
        )


def _already(db: Path, settings: ScrapeSettings) -> str | None:
    """The skip line when the atlas holds a finished scrape with these settings."""
    from neuronatlas.store import open_reader, probe_atlas, reader

    if probe_atlas(db).kind != "atlas":
        return None
    conn = open_reader(db)
    try:
        last = last_run(conn, STAGE)
        count = reader.neuron_count(conn)
    finally:
        conn.close()
    if (
        last
        and last.status == "done"
        and count
        and all(last.config.get(k) == getattr(settings, k) for k in _SAME)
    ):
        return f"{count:,} neurons already scraped"
    return None


def scrape_with(
    scraper: Scraper, db: Path, settings: ScrapeStageSettings, progress: Progress
) -> Report:
    """Run `scraper` as the scrape stage: skip a finished scrape with these settings (unless
    `force`), report the scrape's and the write's progress as one bar."""
    if not settings.force:
        done = _already(db, settings)
        if done is not None:
            return Report(STAGE.name, True, done)

    def on_event(ev: ScrapeEvent) -> None:
        unit, scale = ("tokens", settings.context) if ev.phase == "scrape" else ("neurons", 1)
        if not ev.total:  # a corpus of unknown size: the count so far, no bar
            progress(0, 0, f"{ev.phase} {ev.done * scale:,} {unit}")
            return
        # scraping is ~95% of this stage's time, writing the rest: one bar in per mille
        frac = ev.done / ev.total
        frac = 0.95 * frac if ev.phase == "scrape" else 0.95 + 0.05 * frac
        progress(
            round(1000 * frac),
            1000,
            f"{ev.phase} {ev.done * scale:,}/{ev.total * scale:,} {unit}",
        )

    result = scraper(settings.scrape_settings(), db, on_event)
    return Report(
        STAGE.name,
        False,
        f"{result.neurons:,} neurons from {result.tokens:,} tokens",
        result=result,
    )


def run(db: Path, settings: ScrapeStageSettings, progress: Progress) -> Report:
    """Scrape `settings.model` over `settings.corpus` into `db` in this process."""
    from neuronatlas.scrape.runner import run_scrape

    return scrape_with(run_scrape, db, settings, progress)


STAGE: Stage[ScrapeStageSettings] = Stage(
    name="scrape",
    settings=ScrapeStageSettings,
    run=run,
    writes=("neuron_info", "activations"),
    command="neuronatlas scrape --model MODEL --corpus CORPUS --db ATLAS",
    weight=0.51,
    summary="every neuron's top, random and quantile windows and moments",
)
