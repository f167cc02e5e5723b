"""Settings of the N2G stage: one typed dataclass, our defaults and the reference's.

Every run stores these as JSON with its graphs (and in `runs.config`), so a graph can always be
traced to the choices that made it. `reference_settings()` reproduces the paper's choices (see
docs/N2G.md, "Reference defaults"); the pass structure is a separate switch so the benchmark can
run the reference schedule with either set of thresholds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from neuronatlas.errors import BadInput

PassStructure = Literal["batched", "reference"]
Aggregate = Literal["mean", "max"]


@dataclass(frozen=True)
class N2GSettings:
    """How graphs are built and evaluated. Thresholds are fractions of the neuron's max."""

    examples: int = 20
    """Top records considered per neuron (before the train/test split)."""
    train_fraction: float = 0.5
    """Share of the de-duplicated top (and other) records used to build the graph."""
    seed: int = 0
    """Seed of the train/test split (mixed with the neuron id, so neurons split independently)."""
    use_quantile_records: bool = True
    """Add quantile records that reach the trie threshold to the training pool."""
    shingle: int = 8
    """Two records sharing any run of this many tokens are near-duplicates: same side of the
    split."""
    pivots: Literal["max", "firing"] = "firing"
    """Pivots per training record: its most activating token (the paper), or every token above
    the trie threshold (more lines, more recall, more passes). "firing" was chosen on the
    validation split of bench/n2g_quality.py (docs/N2G.md, "Evaluation protocol")."""
    prune_keep: float = 0.5
    """A pruned prefix must keep this share of the full-context activation at the pivot."""
    max_context: int = 64
    """Longest prefix (tokens ending at the pivot) pruning tries."""
    min_context: int = 1
    """Shortest prefix pruning tries (the reference's shortest is 5; a pivot with fewer tokens
    before it keeps them all)."""
    prune_step: int = 1
    """Prefix lengths tried: every `prune_step`-th (reference: 5) plus the longest."""
    prune_chunk: int = 4
    """Lengths evaluated in the first batched pass; later passes run only for examples not yet
    pruned, each `prune_growth` times as many lengths as the one before."""
    prune_growth: int = 2
    """Growth of the number of lengths per pruning pass (1 = fixed batches, the reference)."""
    post_pivot_tokens: int = 5
    """Tokens kept after the pivot (never past the end of the pivot's sentence)."""
    trim_post_context: bool = True
    """Drop post-pivot tokens after the last one that fires in the stored record: they start no
    line and cannot change earlier positions (the reference keeps all 5)."""
    mask_token: int | None = None
    """Token id used to mask in saliency; None chooses per tokenizer (see saliency.choose_mask)."""
    important_for_augment: float = 0.8
    """Tokens at least this important for the pivot get substitutes."""
    substitutes: int = 5
    """Substitutes tried per important token."""
    substitute_sources: tuple[str, ...] = ("model",)
    """Registered substitute sources, tried in order (see augment.SOURCES)."""
    augment_keep: float = 0.5
    """A substitute is kept when the pivot keeps this share of its activation."""
    augment_saliency: Literal["reuse", "recompute"] = "reuse"
    """Importances of a kept substitute: reuse the original's, or measure again (reference)."""
    activation_threshold: float = 0.5
    """Tokens whose normalised activation exceeds this start a trie line."""
    importance_threshold: float = 0.75
    """Context tokens more important than this are kept in a line; others become wildcards."""
    fire_threshold: float = 0.5
    """A token fires when its activation is at least this share of the neuron's max."""
    aggregate: Aggregate = "mean"
    """How a trie END combines the activations of the lines ending there."""
    normalize_tokens: Literal["none", "space", "space_title"] = "space"
    """Trie keys: "space" ignores surrounding whitespace (" cat" ≡ "cat"); "space_title" also
    title case (" The" ≡ "the", the reference); "none" keeps tokens exact."""
    calibrate: Literal["none", "mean", "precision"] = "none"
    """END values re-measured on the train records (see n2g.calibrate): "mean" = the mean
    normalised activation where the END is the best match, "precision" = the END's value
    × its train firing precision when that is below `calibrate_min_precision`."""
    calibrate_min_precision: float = 0.5
    """An END whose train precision is below this no longer fires (calibrate="precision")."""
    ngram: int = 2
    """Order of the n-gram baseline (with back-off to shorter contexts)."""
    full_activation: Literal["auto", "stored", "model"] = "auto"
    """Full-context activation at the pivot: the stored record's value or a model pass.
    auto = stored when the atlas was scraped from the same model, else model."""
    pass_structure: PassStructure = "batched"
    """batched: our schedule. reference: the reference code's passes (for the benchmark)."""
    max_batch_tokens: int = 8192
    """Padded tokens per forward pass (memory bound)."""
    extra: dict = field(default_factory=dict)
    """Free-form provenance (model id, mask choice) recorded with the run."""

    def __post_init__(self) -> None:
        for name in (
            "train_fraction",
            "prune_keep",
            "important_for_augment",
            "augment_keep",
            "activation_threshold",
            "importance_threshold",
            "fire_threshold",
            "calibrate_min_precision",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise BadInput(f"n2g setting {name}={value}: must be between 0 and 1")
        for name in (
            "examples",
            "max_context",
            "min_context",
            "prune_step",
            "prune_chunk",
            "prune_growth",
            "shingle",
            "ngram",
            "max_batch_tokens",
        ):
            if getattr(self, name) < 1:
                raise BadInput(f"n2g setting {name}: must be at least 1")
        if self.substitutes < 0 or self.post_pivot_tokens < 0:
            raise BadInput("n2g settings substitutes and post_pivot_tokens must be ≥ 0")
        if self.normalize_tokens not in ("none", "space", "space_title"):
            raise BadInput(
                f"n2g normalize_tokens={self.normalize_tokens!r}: none, space or space_title"
            )
        if self.pivots not in ("max", "firing"):
            raise BadInput(f"n2g pivots={self.pivots!r}: max or firing")
        if self.calibrate not in ("none", "mean", "precision"):
            raise BadInput(f"n2g calibrate={self.calibrate!r}: none, mean or precision")
        if self.aggregate not in ("mean", "max"):
            raise BadInput(f"n2g setting aggregate={self.aggregate!r}: mean or max")
        if self.pass_structure not in ("batched", "reference"):
            raise BadInput(f"n2g pass_structure={self.pass_structure!r}: batched or reference")

    def to_json(self) -> dict:
        out = asdict(self)
        out["substitute_sources"] = list(self.substitute_sources)
        return out

    @classmethod
    def from_json(cls, data: dict) -> N2GSettings:
        data = dict(data)
        if "substitute_sources" in data:
            data["substitute_sources"] = tuple(data["substitute_sources"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_(self, **changes) -> N2GSettings:
        return replace(self, **changes)


def reference_settings(**changes) -> N2GSettings:
    """The reference code's choices: 20 examples split 10/10, prefixes 5…30 in steps of 5,
    mask token 1, max aggregation, saliency re-measured for every augmented prompt."""
    base = N2GSettings(
        examples=20,
        train_fraction=0.5,
        seed=0,
        use_quantile_records=False,
        pivots="max",
        prune_keep=0.5,
        max_context=30,
        prune_step=5,
        prune_chunk=4,
        prune_growth=1,
        post_pivot_tokens=5,
        trim_post_context=False,
        mask_token=1,
        important_for_augment=0.8,
        substitutes=5,
        augment_keep=0.5,
        augment_saliency="recompute",
        activation_threshold=0.5,
        importance_threshold=0.75,
        fire_threshold=0.5,
        aggregate="max",
        normalize_tokens="space_title",
    )
    return replace(base, **changes)
