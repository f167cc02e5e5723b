"""The scrape as a `Stage`: one streaming pass of the model over the corpus into the atlas.

A rerun with the settings of the last finished scrape is skipped (the atlas already holds
them); anything else scrapes, resuming from a checkpoint left by an interrupted run.
"""

from __future__ import annotations

from pathlib import Path

from neuronatlas.scrape.settings import ScrapeSettings
from neuronatlas.stage import Progress, Report, Stage, last_run

#: The settings a finished scrape must share with a new one for the rerun to be skipped.
_SAME = ("model", "corpus", "tokens", "context", "top_k", "random_k")


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


def run(db: Path, settings: ScrapeSettings, progress: Progress) -> Report:
    """Scrape `settings.model` over `settings.corpus` into `db` (skipped when done)."""
    from neuronatlas.scrape.runner import Progress as ScrapeEvent
    from neuronatlas.scrape.runner import run_scrape

    done = _already(db, settings)
    if done is not None:
        return Report(STAGE.name, True, done)

    def on_event(ev: ScrapeEvent) -> None:
        if ev.total:
            # scraping is ~95% of this stage's time, writing the rest: one bar in per mille
            frac = ev.done / ev.total
            frac = 0.95 * frac if ev.phase == "scrape" else 0.95 + 0.05 * frac
            progress(round(1000 * frac), 1000, f"{ev.phase} {ev.done:,}/{ev.total:,}")

    result = run_scrape(settings, db, on_event)
    return Report(
        STAGE.name,
        False,
        f"{result.neurons:,} neurons from {result.tokens:,} tokens",
        result=result,
    )


STAGE: Stage[ScrapeSettings] = Stage(
    name="scrape",
    settings=ScrapeSettings,
    run=run,
    writes=("neuron_info", "activations"),
    command="neuronatlas scrape --model MODEL --corpus CORPUS --db ATLAS",
    weight=0.51,
    summary="every neuron's top, random and quantile windows and moments",
)
