"""The two importers as `Stage`s: OpenAI's neuron-explainer files (`import-openai`) and the
seed notebook's SQLite database (`import-seed`).

Neither runs in `build_atlas` (an atlas is scraped or imported, not both); both resume, keeping
the neurons an earlier run stored.
"""

from __future__ import annotations

from pathlib import Path

from neuronatlas.openai.importer import ImportConfig
from neuronatlas.openai.seed_import import SeedImportConfig
from neuronatlas.stage import Progress, Report, Stage


def run_openai(db: Path, settings: ImportConfig, progress: Progress) -> Report:
    """Plan the import (files found, shape) and import what is not stored yet."""
    from neuronatlas.openai.importer import plan_import, run_import

    result = run_import(plan_import(settings), db, lambda done, total: progress(done, total))
    return Report(
        IMPORT_OPENAI.name,
        result.imported == 0,
        f"{result.imported:,} neurons imported, {result.already_done:,} already there",
        failed=tuple((s.neuron_id, s.line()) for s in result.skipped),
        result=result,
    )


def run_seed(db: Path, settings: SeedImportConfig, progress: Progress) -> Report:
    """Import the seed notebook's neurons, records, explanations and vectors."""
    from neuronatlas.openai.seed_import import import_seed

    result = import_seed(settings, db, lambda done, total: progress(done, total))
    return Report(
        IMPORT_SEED.name,
        result.imported == 0,
        f"{result.imported:,} neurons and {result.embedded:,} embeddings imported, "
        f"{result.already_done:,} already there",
        failed=tuple((s.neuron_id, s.line()) for s in result.skipped),
        result=result,
    )


def _never(build: object) -> bool:
    """Importers are not part of a build: an atlas is scraped or imported."""
    return False


IMPORT_OPENAI: Stage[ImportConfig] = Stage(
    name="import-openai",
    settings=ImportConfig,
    run=run_openai,
    writes=("neuron_info", "activations"),
    command="neuronatlas import-openai SOURCE --db ATLAS",
    in_build=_never,
    summary="OpenAI's neuron-explainer files (records and explanations)",
)
IMPORT_SEED: Stage[SeedImportConfig] = Stage(
    name="import-seed",
    settings=SeedImportConfig,
    run=run_seed,
    writes=("neuron_info", "activations"),
    command="neuronatlas import-seed SEED.db --db ATLAS",
    in_build=_never,
    summary="the seed notebook's SQLite database",
)
STAGE = IMPORT_OPENAI
