"""Similar neurons as two `Stage`s, so that neither the index nor the embed stage depends on
`relations/`: `similar-tokens` right after `index` (neighbours by shared peak tokens, which
neuron pages show as soon as the scrape is indexed) and `similar` after `embed` (neighbours
by explanation vector, and any kind still missing).

Rebuilding the token index forgets the neighbours by tokens and new vectors forget those by
embedding (`store`), so each stage fills exactly the kinds that are missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neuronatlas.stage import Progress, Report, Stage


@dataclass
class SimilarSettings:
    force: bool = False
    """Recompute the stage's kinds even when they are stored (`neuronatlas index` does)."""


def _fill(
    name: str, kinds: tuple[str, ...], db: Path, settings: SimilarSettings, progress: Progress
) -> Report:
    from neuronatlas.relations.similar import precompute_similar
    from neuronatlas.store import AtlasWriter, browse

    with AtlasWriter(db) as writer:
        conn = writer.conn
        built = browse.similar_built(conn)
        ready = [k for k in kinds if k != "embedding" or browse.has_embeddings(conn)]
        todo = ready if settings.force else [k for k in ready if k not in built]
        if not todo:
            return Report(name, True, "similar neurons are current", result={})
        written = precompute_similar(
            conn, todo, progress=lambda kind, d, t: progress(d, t, f"by {kind} {d:,}/{t:,}")
        )
    detail = ", ".join(f"{n:,} by {kind}" for kind, n in written.items())
    return Report(name, False, f"{detail} similar-neuron rows", result=written)


def run_tokens(db: Path, settings: SimilarSettings, progress: Progress) -> Report:
    """Every neuron's neighbours by shared peak tokens (needs the token index)."""
    return _fill(SIMILAR_TOKENS.name, ("tokens",), db, settings, progress)


def run_all(db: Path, settings: SimilarSettings, progress: Progress) -> Report:
    """Every kind of neighbours the atlas lacks whose inputs exist (vectors for embedding)."""
    return _fill(SIMILAR.name, ("embedding", "tokens"), db, settings, progress)


SIMILAR_TOKENS: Stage[SimilarSettings] = Stage(
    name="similar-tokens",
    settings=SimilarSettings,
    run=run_tokens,
    writes=("similar_neurons",),
    command="neuronatlas index --db ATLAS",
    needs=("index",),
    weight=0.01,
    summary="each neuron's similar neurons by shared peak tokens",
)
SIMILAR: Stage[SimilarSettings] = Stage(
    name="similar",
    settings=SimilarSettings,
    run=run_all,
    writes=("similar_neurons",),
    command="neuronatlas embed --db ATLAS",
    needs=("embed",),
    weight=0.01,
    summary="each neuron's similar neurons by explanation vector (and any kind missing)",
)
STAGE = SIMILAR
