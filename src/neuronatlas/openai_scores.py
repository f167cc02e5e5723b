"""OpenAI's explanation scores, computed on all sequences flattened into one list.

true activations r, simulated p (see docs/OPENAI_FORMATS.md):
- ev_correlation_score = Pearson correlation of r and p (the score shown everywhere);
- rsquared_score = 1 − mean((r − p)²) / mean(r²)  (baseline zero, not the textbook R²);
- absolute_dev_explained_score = 1 − mean(|r − p|) / mean(|r|).
Scores are None where they are undefined (a constant sequence, all-zero truth).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


def _flatten(seqs: Sequence[Sequence[float | None]]) -> np.ndarray:
    flat = [0.0 if v is None else float(v) for seq in seqs for v in seq]
    return np.asarray(flat, dtype=np.float64)


def ev_correlation_score(
    true: Sequence[Sequence[float | None]], predicted: Sequence[Sequence[float | None]]
) -> float | None:
    """Pearson correlation over every token of every sequence; None if either is constant."""
    r, p = _flatten(true), _flatten(predicted)
    if r.size < 2 or r.size != p.size:
        return None
    r, p = r - r.mean(), p - p.mean()
    denom = float(np.sqrt((r * r).sum() * (p * p).sum()))
    if denom == 0.0:
        return None
    return float((r * p).sum() / denom)


def rsquared_score(
    true: Sequence[Sequence[float | None]], predicted: Sequence[Sequence[float | None]]
) -> float | None:
    r, p = _flatten(true), _flatten(predicted)
    denom = float(np.mean(r * r)) if r.size else 0.0
    if denom == 0.0 or r.size != p.size:
        return None
    return 1.0 - float(np.mean((r - p) ** 2)) / denom


def absolute_dev_explained_score(
    true: Sequence[Sequence[float | None]], predicted: Sequence[Sequence[float | None]]
) -> float | None:
    r, p = _flatten(true), _flatten(predicted)
    denom = float(np.mean(np.abs(r))) if r.size else 0.0
    if denom == 0.0 or r.size != p.size:
        return None
    return 1.0 - float(np.mean(np.abs(r - p))) / denom


class Scores(NamedTuple):
    """OpenAI's three scores of one explanation (None where undefined)."""

    ev_correlation_score: float | None
    rsquared_score: float | None
    absolute_dev_explained_score: float | None


def all_scores(
    true: Sequence[Sequence[float | None]], predicted: Sequence[Sequence[float | None]]
) -> Scores:
    """All three scores of `predicted` against `true`."""
    return Scores(
        ev_correlation_score(true, predicted),
        rsquared_score(true, predicted),
        absolute_dev_explained_score(true, predicted),
    )
