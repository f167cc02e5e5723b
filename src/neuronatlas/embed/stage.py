"""The embed stage as a `Stage`: a vector for every new or changed explanation."""

from __future__ import annotations

from pathlib import Path

from neuronatlas.embed.embed import EmbedConfig
from neuronatlas.stage import Progress, Report, Stage


def run(db: Path, settings: EmbedConfig, progress: Progress) -> Report:
    """Embed the explanations that lack a current vector (skipped when none do)."""
    from neuronatlas.embed.embed import embed_atlas

    res = embed_atlas(db, settings, progress=lambda d, t: progress(d, t, f"{d:,}/{t:,}"))
    return Report(
        STAGE.name,
        res.embedded == 0,
        f"{res.embedded:,} embedded, {res.unchanged:,} unchanged",
        result=res,
    )


STAGE: Stage[EmbedConfig] = Stage(
    name="embed",
    settings=EmbedConfig,
    run=run,
    writes=("embeddings",),
    command="neuronatlas embed --db ATLAS",
    needs=("explain",),
    weight=0.12,
    summary="a sentence vector for each neuron's explanation (search, similar neurons, map)",
)
