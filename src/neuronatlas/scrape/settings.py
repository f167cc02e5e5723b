"""A scrape run's settings: what the CLI, the pipeline and a distributed runner fill in, and
what `run_scrape` reads and `write_atlas` saves with the run (so they live apart from both)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from neuronatlas.errors import BadInput
from neuronatlas.scrape.config import StatsConfig


@dataclass
class ScrapeSettings:
    """One scrape run's settings (saved with the run in the atlas)."""

    model: str = "default"
    """`default`, a hub id or a local folder (see `neuronatlas.models.load_model`)."""
    corpus: str = "default"
    """`default`, a .txt/.jsonl/.parquet file or `hf:NAME[:SPLIT]`."""
    text_field: str = "text"
    """Field or column holding the text in .jsonl/.parquet/hf sources."""
    tokens: int | None = None
    """Stop after this many scored tokens (rounded down to whole windows); None = whole corpus."""
    context: int = 64
    """Tokens per window (OpenAI's GPT-2 records had 64)."""
    top_k: int = 20
    random_k: int = 20
    quantile_k: int = 5
    batch_size: int = 16
    layers: list[int] | None = None
    """Layers to scrape; None = all."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """The forward pass's dtype; the statistics are float32 (and float64 sums) either way."""
    device: str = "auto"
    """Where the model and the scrape state live: auto (CUDA when available), cpu, cuda[:N]."""
    bos: Literal["auto", "prepend", "none"] = "auto"
    checkpoint_every: int = 100
    """Save the state every this many batches (0 = never)."""
    seed: int = 0
    engine: Literal["local", "ray"] = "local"
    """'local' runs `run_scrape` here; 'ray' is `neuronatlas.scale` (the CLI dispatches)."""

    def __post_init__(self) -> None:
        if self.tokens is not None and self.tokens < self.context:
            raise BadInput(f"--tokens {self.tokens} is less than one window of {self.context}")
        if self.batch_size < 1:
            raise BadInput("--batch-size must be ≥ 1")
        if self.checkpoint_every < 0:
            raise BadInput("--checkpoint-every must be ≥ 0")
        if self.engine not in ("local", "ray"):
            raise BadInput(f"--engine {self.engine!r}: choose local or ray")

    def layers_on(self, model) -> list[int]:
        """The layers to scrape of `model` (anything with `check_layers`): all when none were
        given; BadInput naming --layers when they do not fit the model."""
        try:
            return model.check_layers(self.layers)
        except ValueError as exc:
            raise BadInput(f"--layers: {exc}") from exc

    def stats_config(self) -> StatsConfig:
        return StatsConfig(
            top_k=self.top_k,
            random_k=self.random_k,
            quantile_k=self.quantile_k,
            context=self.context,
            seed=self.seed,
        )

    @property
    def max_windows(self) -> int | None:
        return None if self.tokens is None else self.tokens // self.context
