"""What a scrape keeps per neuron (the shape of the mergeable state)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

OPENAI_QUANTILES = (0.5, 0.9, 0.99, 0.999)


@dataclass(frozen=True)
class StatsConfig:
    """Sizes of the per-neuron state; states merge only when their configs are equal."""

    top_k: int = 20
    """Windows with the highest maximum activation kept per neuron (records 'top')."""
    random_k: int = 20
    """Uniformly sampled windows per neuron (records 'random'), by smallest hash key."""
    quantile_k: int = 5
    """Sampled windows per quantile bucket of the window maximum (records 'quantile_i')."""
    quantiles: tuple[float, ...] = OPENAI_QUANTILES
    """Bucket boundaries as quantiles of the window maximum; OpenAI's GPT-2 data used these."""
    context: int = 64
    """Tokens per window (the BOS position, if any, is not counted or stored)."""
    seed: int = 0
    """Salt of the sampling hash: another seed gives other random/quantile samples."""
    vector_dtype: Literal["float32", "float16"] = "float32"
    """Storage of kept activation vectors; float16 halves the state's memory."""

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.random_k < 0 or self.quantile_k < 0:
            raise ValueError("top_k must be ≥ 1, random_k and quantile_k ≥ 0")
        if self.context < 1:
            raise ValueError("context must be ≥ 1")
        qs = tuple(float(q) for q in self.quantiles)
        if any(not 0 < q < 1 for q in qs) or list(qs) != sorted(set(qs)):
            raise ValueError("quantiles must be increasing and inside (0, 1)")
        object.__setattr__(self, "quantiles", qs)
        if self.vector_dtype not in ("float32", "float16"):
            raise ValueError("vector_dtype must be float32 or float16")

    @property
    def n_buckets(self) -> int:
        return len(self.quantiles) + 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["quantiles"] = list(self.quantiles)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> StatsConfig:
        return cls(**{**d, "quantiles": tuple(d["quantiles"])})
