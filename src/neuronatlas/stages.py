"""Every stage of an atlas, in build order: the one registry the pipeline, the CLI and the
explorer read.

Each entry is a package's `Stage` object, imported by name here (no module names in strings,
no stage registers itself), so that a stage that is not listed does not exist for the build
and an import error in one is an error at once, not a feature that silently disappears.
Importing this module is cheap: the stage modules import their heavy code inside `run`.
"""

from __future__ import annotations

from typing import Any

from neuronatlas.embed.stage import STAGE as EMBED
from neuronatlas.explain.stage import EXPLAIN, LLM
from neuronatlas.map.stage import STAGE as MAP
from neuronatlas.n2g.stage import STAGE as N2G
from neuronatlas.openai.stage import IMPORT_OPENAI, IMPORT_SEED
from neuronatlas.relations.stage import SIMILAR, SIMILAR_TOKENS
from neuronatlas.score.stage import STAGE as SCORE
from neuronatlas.scrape.stage import STAGE as SCRAPE
from neuronatlas.search.stage import STAGE as INDEX
from neuronatlas.stage import Stage

#: Build order: a stage comes after every stage it `needs`.
STAGES: tuple[Stage[Any], ...] = (
    SCRAPE,
    IMPORT_OPENAI,
    IMPORT_SEED,
    INDEX,
    SIMILAR_TOKENS,
    EXPLAIN,
    LLM,
    SCORE,
    N2G,
    EMBED,
    SIMILAR,
    MAP,
)


def by_name(name: str, stages: tuple[Stage[Any], ...] = STAGES) -> Stage[Any]:
    """The stage called `name`; ValueError naming the known ones otherwise."""
    for stage in stages:
        if stage.name == name:
            return stage
    raise ValueError(f"unknown stage {name!r}; known: {[s.name for s in stages]}")


__all__ = ["STAGES", "by_name"]
