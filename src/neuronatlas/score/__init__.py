"""Scorers: how well an explanation in words describes what its neuron does, on one scale per
scorer for every explanation source (imported, top-token, N2G, LLM).

- `embedding`: no LLM; AUROC of explanation–excerpt similarity, activating vs quiet excerpts;
- `simulation`: OpenAI's simulator and its ev_correlation_score on held-out records;
- `detection`, `fuzzing`: Delphi-style classification by an LLM, balanced accuracy.

`get_scorer(name, llm=..., embedder=...)`, then `score_neurons` (stores) or `score_text`.
`neuronatlas.openai_scores` holds OpenAI's formulas (ev_correlation, R², absolute deviation)
that the simulation scorer, the top-token explanations and N2G's evaluation all use.
"""

from neuronatlas.score.base import Scorer, ScoreResult
from neuronatlas.score.registry import SCORERS, ScorerKind, get_scorer, registered_scorers
from neuronatlas.score.run import score_neurons, score_text

__all__ = [
    "SCORERS",
    "ScoreResult",
    "Scorer",
    "ScorerKind",
    "get_scorer",
    "registered_scorers",
    "score_neurons",
    "score_text",
]
