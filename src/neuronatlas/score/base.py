"""The scorer base class and its result; which scorers exist is `score.registry`'s (built by
explicit imports, so this module imports none of the scorers that subclass it)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from neuronatlas.errors import NeuronAtlasError, ScoringFailed
from neuronatlas.explain.records import Splits

if TYPE_CHECKING:
    from neuronatlas.llm.client import LLMClient


@dataclass
class ScoreResult:
    """A score and how it was made (method, counts of what was asked, parsed and failed)."""

    score: float
    details: dict = field(default_factory=dict)


class Scorer(ABC):
    """Scores explanations of one neuron against that neuron's held-out records."""

    #: Registry name, stored in explanation_scores.scorer.
    name: str
    #: How many neurons are worth scoring at once (the LLM's concurrency; 1 otherwise).
    concurrency: int = 1

    @property
    @abstractmethod
    def judge(self) -> str:
        """The model that judged (embedder name or LLM id): scores by two judges differ."""

    @abstractmethod
    def score(self, text: str, splits: Splits) -> ScoreResult:
        """Score one explanation; raise ScoringFailed when no honest score exists."""

    def score_many(self, texts: Sequence[str], splits: Splits) -> list[ScoreResult | str]:
        """Score several explanations of one neuron: a result or the reason it failed, each."""
        out: list[ScoreResult | str] = []
        for text in texts:
            try:
                out.append(self.score(text, splits))
            except NeuronAtlasError as exc:
                out.append(str(exc))
        return out


def require(condition: bool, why: str) -> None:
    if not condition:
        raise ScoringFailed(why)


class ScorerFactory(Protocol):
    """Makes a scorer from `--llm` (a client or None) and `--embedder` (a spec or None); raises
    BadInput naming the option a scorer needs and did not get."""

    def __call__(self, llm: LLMClient | None = None, embedder: str | None = None) -> Scorer: ...
