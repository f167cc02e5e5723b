"""The scorers that `--scorer NAME` picks from: one tuple, built by explicit imports.

A new scorer is a module beside these with a `Scorer` subclass and a factory, plus one line in
`SCORERS`; no scorer registers itself, so importing a scorer module has no side effect and
`score.base` depends on none of them (that was an import cycle)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from neuronatlas.errors import BadInput
from neuronatlas.score import classifiers, embedding, simulation
from neuronatlas.score.base import Scorer, ScorerFactory

if TYPE_CHECKING:
    from neuronatlas.llm.client import LLMClient


class ScorerKind(NamedTuple):
    """A scorer's name (stored in explanation_scores.scorer) and how to make it."""

    name: str
    make: ScorerFactory


SCORERS: tuple[ScorerKind, ...] = (
    ScorerKind(embedding.EmbeddingScorer.name, embedding.make_scorer),
    ScorerKind(simulation.SimulationScorer.name, simulation.make_scorer),
    ScorerKind(classifiers.DetectionScorer.name, classifiers.make_detection),
    ScorerKind(classifiers.FuzzingScorer.name, classifiers.make_fuzzing),
)


def registered_scorers() -> list[str]:
    """The names `--scorer` accepts, sorted."""
    return sorted(kind.name for kind in SCORERS)


def get_scorer(name: str, llm: LLMClient | None = None, embedder: str | None = None) -> Scorer:
    """The scorer `name`, with its LLM client or embedder spec; BadInput for an unknown name."""
    for kind in SCORERS:
        if kind.name == name:
            return kind.make(llm=llm, embedder=embedder)
    raise BadInput(f"--scorer {name!r}: choose one of {', '.join(registered_scorers())}")
