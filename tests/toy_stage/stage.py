"""A toy stage written by the recipe in docs/ARCHITECTURE.md ("How to add a stage"): one
module and one migration, and nothing else of the package changes (tests/test_stage_recipe.py).

It counts the neurons of each layer into its own table, `toy_layer_sizes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neuronatlas.stage import Progress, Report, Stage
from neuronatlas.store import open_writer


@dataclass
class ToySettings:
    min_neurons: int = 1
    """Layers with fewer neurons are left out."""


def run(db: Path, settings: ToySettings, progress: Progress) -> Report:
    """Count each layer's neurons; skipped when the counts are there."""
    conn = open_writer(db, create=False)
    try:
        if conn.execute("SELECT 1 FROM toy_layer_sizes LIMIT 1").fetchone():
            return Report(STAGE.name, True, "layer sizes already counted")
        rows = conn.execute(
            "SELECT layer, count(*) FROM neuron_info GROUP BY layer HAVING count(*) >= ?",
            (settings.min_neurons,),
        ).fetchall()
        with conn:
            conn.executemany("INSERT INTO toy_layer_sizes(layer, neurons) VALUES (?, ?)", rows)
        progress(len(rows), len(rows), f"{len(rows)} layers")
    finally:
        conn.close()
    return Report(STAGE.name, False, f"{len(rows)} layers counted", result=len(rows))


STAGE: Stage[ToySettings] = Stage(
    name="toy",
    settings=ToySettings,
    run=run,
    writes=("toy_layer_sizes",),
    command="neuronatlas build --model MODEL --corpus CORPUS --db ATLAS --stages toy",
    needs=("scrape",),
    weight=0.01,
    migrations=((Path(__file__).parent / "001_layer_sizes.sql").read_text(encoding="utf-8"),),
    summary="neurons per layer (a toy)",
)
