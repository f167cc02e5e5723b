"""The `embedding` scorer: no LLM. How well the similarity between the explanation and each
excerpt separates the neuron's held-out top excerpts from quiet random ones, as AUROC (0.5 =
no better than chance, 1 = every activating excerpt is closer than every quiet one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from neuronatlas.embed.embedders import Embedder, get_embedder
from neuronatlas.errors import NeuronAtlasError
from neuronatlas.explain.records import Splits
from neuronatlas.score.base import Scorer, ScoreResult, require

if TYPE_CHECKING:
    from neuronatlas.llm.client import LLMClient

MIN_EACH = 2


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(a random positive scores above a random negative), ties counting half."""
    pos = np.asarray(positives, dtype=np.float64)[:, None]
    neg = np.asarray(negatives, dtype=np.float64)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


class EmbeddingScorer(Scorer):
    name = "embedding"

    def __init__(self, embedder: Embedder):
        self.embedder = embedder

    @property
    def judge(self) -> str:
        return self.embedder.name

    def score(self, text: str, splits: Splits) -> ScoreResult:
        return self._scores([text], splits)[0]

    def score_many(self, texts: Sequence[str], splits: Splits) -> list[ScoreResult | str]:
        """One pass over the excerpts for all the neuron's explanations."""
        try:
            return list(self._scores(list(texts), splits))
        except NeuronAtlasError as exc:  # one reason for every explanation of this neuron
            return [str(exc)] * len(texts)

    def _scores(self, texts: list[str], splits: Splits) -> list[ScoreResult]:
        pos, neg = splits.positives, splits.negatives
        require(
            len(pos) >= MIN_EACH and len(neg) >= MIN_EACH,
            f"the embedding scorer needs {MIN_EACH} held-out top and {MIN_EACH} quiet random "
            f"records; this neuron has {len(pos)} and {len(neg)}",
        )
        excerpts = self.embedder.encode([e.text for e in pos + neg])
        queries = self.embedder.encode(texts)
        sims = excerpts @ queries.T  # unit vectors: cosine similarity
        out = []
        for j in range(len(texts)):
            s_pos, s_neg = sims[: len(pos), j], sims[len(pos) :, j]
            out.append(
                ScoreResult(
                    auroc(s_pos, s_neg),
                    {
                        "method": "auroc",
                        "positives": len(pos),
                        "negatives": len(neg),
                        "negative_rule": splits.negative_rule,
                        "mean_similarity_positive": float(s_pos.mean()),
                        "mean_similarity_negative": float(s_neg.mean()),
                    },
                )
            )
        return out


def make_scorer(llm: LLMClient | None = None, embedder: str | None = None) -> Scorer:
    """The `embedding` scorer of `score.registry`: no LLM; the embedder spec or the default."""
    return EmbeddingScorer(get_embedder(embedder))
