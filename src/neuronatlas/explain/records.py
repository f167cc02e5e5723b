"""Which of a neuron's records the explainer sees and the scorers test on, and how they are
shown to an LLM.

Splits (by rank, so explainer and scorers never share a record): the explainer sees top
records of even rank (at most 5, strongest first); scorers test on top records of odd rank
(positives) and on random records (negatives for the classifiers and the embedding scorer
only when their peak stays below `NEGATIVE_FRACTION` of the neuron's maximum: GELU-family
neurons are rarely exactly 0, so "never fires" negatives do not exist). A dense neuron with
fewer than `MIN_NEGATIVES` such records takes the quieter half of its random records instead
(`Splits.negative_rule` says which rule held; scorers store it). Excerpts are cropped to
`WINDOW` tokens around their peak to keep prompts short.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from neuronatlas.store.reader import StoredRecord

WINDOW = 32
NEGATIVE_FRACTION = 0.3
MIN_NEGATIVES = 2
EXPLAIN_RECORDS = 5


@dataclass(frozen=True)
class Excerpt:
    """A cropped record: its tokens and the neuron's activations on them."""

    tokens: list[str]
    activations: list[float]

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def peak(self) -> float:
        return max(self.activations, default=0.0)


def crop(tokens: list[str], acts: list[float | None], window: int = WINDOW) -> Excerpt:
    """The `window` tokens around the record's peak (NaN/None read as 0)."""
    values = [0.0 if a is None or math.isnan(a) else float(a) for a in acts]
    if len(tokens) <= window:
        return Excerpt(list(tokens), values)
    peak = max(range(len(values)), key=values.__getitem__)
    start = min(max(0, peak - window * 3 // 4), len(tokens) - window)
    while start > 0 and tokens[start] == "":  # not inside a split character (models.tokens)
        start -= 1
    return Excerpt(list(tokens[start : start + window]), values[start : start + window])


def _excerpts(recs: Sequence[StoredRecord], window: int) -> list[Excerpt]:
    return [crop(r.tokens, r.activations, window) for r in recs if r.tokens]


@dataclass(frozen=True)
class Splits:
    train: list[Excerpt]
    """What the explainer sees."""
    positives: list[Excerpt]
    """Held-out top records."""
    randoms: list[Excerpt]
    """Random records (simulation truth includes whatever they activate)."""
    negatives: list[Excerpt]
    """Random records whose peak stays below NEGATIVE_FRACTION of the neuron's max."""
    max_activation: float
    negative_rule: str = "below 0.3 of max"
    """How negatives were chosen: "below 0.3 of max", or "quieter half" for dense neurons."""


def split_records(recs: Mapping[str, Sequence[StoredRecord]], window: int = WINDOW) -> Splits:
    top = _excerpts(recs.get("top", []), window)
    randoms = _excerpts(recs.get("random", []), window)
    a_max = max((e.peak for e in top + randoms), default=0.0)
    negatives = [e for e in randoms if e.peak < NEGATIVE_FRACTION * a_max]
    rule = f"below {NEGATIVE_FRACTION:g} of max"
    if len(negatives) < MIN_NEGATIVES and len(randoms) >= 2 * MIN_NEGATIVES:
        negatives = sorted(randoms, key=lambda e: e.peak)[: len(randoms) // 2]
        rule = "quieter half"
    return Splits(top[0::2][:EXPLAIN_RECORDS], top[1::2], randoms, negatives, a_max, rule)


def scaled(acts: list[float], a_max: float) -> list[int]:
    """OpenAI's 0–10 scale: floor(10 · relu(a) / max), capped at 10; all 0 when max ≤ 0."""
    if a_max <= 0:
        return [0] * len(acts)
    return [min(10, math.floor(10 * max(0.0, a) / a_max)) for a in acts]


def format_block(tokens: list[str], values: list[int], skip_zeros: bool = False) -> str:
    """<start> / one `token<TAB>value` line per token / <end>."""
    lines = ["<start>"]
    for tok, v in zip(tokens, values, strict=True):
        if skip_zeros and v == 0:
            continue
        lines.append(f"{tok}\t{v}")
    lines.append("<end>")
    return "\n".join(lines)
