"""The scorer base class and the registry of scorer names."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from neuronatlas.errors import BadInput, NeuronAtlasError, ScoringFailed
from neuronatlas.explain.records import Splits


@dataclass
class ScoreResult:
    """A score and how it was made (method, counts of what was asked, parsed and failed)."""

    score: float
    details: dict = field(default_factory=dict)


class Scorer(ABC):
    """Scores explanations of one neuron against that neuron's held-out records."""

    #: Registry name, stored in explanation_scores.scorer.
    name: str
    #: Whether `--llm` is required.
    needs_llm: bool = False
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


_REGISTRY: dict[str, Callable[..., Scorer]] = {}


def register_scorer(name: str, factory: Callable[..., Scorer]) -> None:
    """Make `--scorer NAME` available; factory(llm=client or None, embedder=spec or None)."""
    if name in _REGISTRY:
        raise ValueError(f"scorer {name!r} is already registered")
    _REGISTRY[name] = factory


def registered_scorers() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_scorer(name: str, llm=None, embedder=None) -> Scorer:
    """The scorer `name`, with its LLM client or embedder."""
    _load_builtin()
    if name not in _REGISTRY:
        raise BadInput(f"--scorer {name!r}: choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](llm=llm, embedder=embedder)


def _load_builtin() -> None:
    from neuronatlas.score import classifiers, embedding, simulation  # noqa: F401 - register
