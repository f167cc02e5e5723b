"""The whole atlas in one call: scrape → index → top-token explanations → [LLM explanations →
scores] → N2G → embed → similar neurons → map.

`build_atlas` is a loop over `Stage` objects (`neuronatlas.stages.STAGES`): each stage named in
`BuildSettings.stages` whose `in_build` holds runs with `settings_for(stage, settings)`, and
skips what is already done, so running it again resumes an interrupted build and finishes a
complete one in seconds. `neuronatlas demo` is `build_atlas` with the offline defaults followed
by `serve`; `neuronatlas build` is the same with the user's model and corpus.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from neuronatlas.stage import Stage, ensure_tables, settings_for
from neuronatlas.stages import STAGES

log = logging.getLogger(__name__)

#: Tokens the demo scrapes: ~4 minutes of Gemma-3-270M on 2 CPU cores (262,144 took 7 and
#: brought the whole demo to 17 minutes, 196,608 to 15.4; bench/README.md, "The demo").
DEMO_TOKENS = 131_072


@dataclass
class BuildSettings:
    """What `build_atlas` builds (saved with each stage's run)."""

    model: str = "default"
    """`default` (offline Gemma-3-270M), a hub id or a local folder."""
    corpus: str = "default"
    """`default` (offline Wikipedia extracts), a file, or `hf:NAME[:SPLIT]`."""
    tokens: int = DEMO_TOKENS
    """Scraped tokens (rounded down to whole windows)."""
    context: int = 64
    top_k: int = 20
    random_k: int = 20
    scrape_batch_size: int = 16
    """Windows per forward pass of the scrape (`--batch-size`)."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    device: str = "auto"
    """Where the model runs for the scrape and N2G: auto (CUDA when available), cpu, cuda[:N]."""
    n2g_per_layer: int = 1
    """N2G graphs for this many neurons per layer: those with the highest max activation.
    The demo's 1 gives every layer of Gemma-3-270M a graph (18, ~3.5 CPU s each on 2 cores)
    within its budget; 8 within the old 240 s budget took 280 s and left a third of the
    layers without (bench/README.md, the demo's stages); `neuronatlas n2g` builds more."""
    n2g_seconds: float = 90.0
    """Stop starting new N2G layers after this many seconds (the rest stays to do)."""
    embedder: str = "all-MiniLM-L6-v2"
    """Sentence embedder for the map and search. MiniLM embeds the demo's 36,864 explanations
    ~5x faster than the seed's all-mpnet-base-v2 (~40 texts/s on 2 cores, 15 minutes);
    pass `--embedder all-mpnet-base-v2` for the seed's model."""
    llm: str | None = None
    """LLM that writes explanations in words (`--llm SPEC`, see `neuronatlas.llm`); None keeps
    the atlas LLM-free."""
    llm_per_layer: int = 8
    """LLM explanations for this many neurons per layer (the strongest); 0 = every neuron."""
    stages: tuple[str, ...] = field(
        default=(
            "scrape",
            "index",
            "similar-tokens",
            "explain",
            "llm",
            "score",
            "n2g",
            "embed",
            "similar",
            "map",
        )
    )
    """Names of the stages to run (`neuronatlas.stages`); each reads its settings from the
    fields above by `stage.settings_for` (`n2g_seconds` is the n2g stage's `seconds`)."""


StageProgress = Callable[[str, float, str], None]
"""progress(stage, fraction done in [0, 1], detail): the build's overall-progress callback."""


@dataclass
class StageResult:
    stage: str
    skipped: bool
    seconds: float
    detail: str


def _find(name: str, stages: Sequence[Stage[Any]]) -> Stage[Any]:
    for stage in stages:
        if stage.name == name:
            return stage
    raise ValueError(f"unknown stages [{name!r}]; known: {[s.name for s in stages]}")


def stages_to_run(
    settings: BuildSettings, stages: Sequence[Stage[Any]] = STAGES
) -> list[Stage[Any]]:
    """The stages of `settings.stages` this build runs (the LLM stages only with --llm)."""
    chosen = [_find(name, stages) for name in settings.stages]
    for i, stage in enumerate(chosen):
        later = [s.name for s in chosen[i + 1 :] if s.name in stage.needs]
        if later:
            raise ValueError(f"stage {stage.name!r} needs {later} first: list them before it")
    return [stage for stage in chosen if stage.in_build(settings)]


def stage_weight(
    name: str, settings: BuildSettings, stages: Sequence[Stage[Any]] = STAGES
) -> float:
    """A stage's share of the overall progress bar (0 for a stage this build skips)."""
    stage = _find(name, stages)
    return stage.weight if stage.in_build(settings) else 0.0


def build_atlas(
    db: str | Path,
    settings: BuildSettings | None = None,
    progress: StageProgress | None = None,
    stages: Sequence[Stage[Any]] = STAGES,
) -> list[StageResult]:
    """Run every stage of `settings.stages` on `db`, skipping work already done."""
    settings = settings or BuildSettings()
    db = Path(db)
    notify = progress or (lambda *_: None)
    unknown = [s for s in settings.stages if s not in {stage.name for stage in stages}]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; known: {[s.name for s in stages]}")
    log.info("building %s with %s", db, asdict(settings))
    results = []
    for stage in stages_to_run(settings, stages):
        started = time.monotonic()
        notify(stage.name, 0.0, "starting")

        def on_progress(done: int, total: int, detail: str = "", name: str = stage.name) -> None:
            notify(name, done / total if total else 0.0, detail)

        ensure_tables(stage, db)
        report = stage.run(db, settings_for(stage, settings), on_progress)
        for item, why in report.failed:  # left for the next build, which retries them
            log.warning("%s of %s failed (left for the next build): %s", stage.name, item, why)
        notify(stage.name, 1.0, report.detail)
        results.append(
            StageResult(stage.name, report.skipped, time.monotonic() - started, report.detail)
        )
    return results
