"""What a neuronatlas export carries beside OpenAI's files, so that a re-import keeps it.

OpenAI's own reader (`neuron_explainer.fast_dataclasses.loads`) builds each tagged object
with `cls(**fields)`, so an extra key in a `ScoredExplanation` would make it raise, and its
async reader asserts one line per `.jsonl`. OpenAI's files therefore stay exactly OpenAI's,
and what they cannot hold goes into files OpenAI's readers never open:

* `neuronatlas.json` (the manifest): the model the atlas is of (`model_id`, `model_path`,
  shape, BOS policy, ...: the `meta` keys listed in `CARRIED_META`), so an import records the
  right model and live features (activate, steer) can load it;
* `neuronatlas/explanations/{L}.jsonl`: one line per neuron, its explanations in the order of
  its OpenAI file, each with its source, position, scores by every scorer and judge, and the
  provenance of an LLM-written one; plus the neuron's own record source (`scrape`, ...).

Not carried (the format has no place for them, rebuild after import): N2G graphs (`n2g`),
explanation embeddings, the map and clusters (`embed`, `map`). The atlas file itself is the
lossless export: copy it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from neuronatlas.errors import BadInput

log = logging.getLogger(__name__)

MANIFEST = "neuronatlas.json"
FOLDER = "neuronatlas"
FORMAT = "neuronatlas-openai-export"
VERSION = 1

#: meta keys that describe the model and how its records were taken: what an import of the
#: export must know to record the same atlas (later stages' keys, e.g. the embedder, are not).
CARRIED_META = (
    "model_id",
    "model_path",
    "model_revision",
    "architecture",
    "n_layers",
    "d_mlp",
    "scraped_layers",
    "hook_points",
    "hook_module",
    "corpus",
    "tokens",
    "windows",
    "context",
    "dtype",
    "bos_policy",
    "prepend_bos",
    "stats",
    "moments_note",
    "activation_note",
    "primary_scorer",
)


class Manifest(msgspec.Struct, kw_only=True):
    """`neuronatlas.json`: which atlas the export came from."""

    format: str = FORMAT
    version: int = VERSION
    code_version: str
    meta: dict[str, str]  # the CARRIED_META keys the atlas had, as stored (text)

    @property
    def model_id(self) -> str | None:
        return self.meta.get("model_id")

    def shape(self) -> tuple[int, int] | None:
        """(n_layers, d_mlp) of the model, when the atlas recorded it."""
        try:
            return int(self.meta["n_layers"]), int(self.meta["d_mlp"])
        except (KeyError, ValueError):
            return None


class Score(msgspec.Struct):
    """One score of an explanation by a scorer and judge (`explanation_scores`)."""

    scorer: str
    judge: str
    score: float
    details: dict[str, Any]


class Provenance(msgspec.Struct):
    """Where an LLM-written explanation came from (`llm_explanations`)."""

    model: str
    endpoint: str
    prompt_digest: str
    settings: Any
    usage: Any


class ExplanationExtras(msgspec.Struct, omit_defaults=True):
    """One explanation of the OpenAI file, at the same index: what OpenAI's schema lacks."""

    text: str  # the same text as the OpenAI file's (checked on import)
    source: str
    position: int
    scores: list[Score] = []
    llm: Provenance | None = None


class NeuronExtras(msgspec.Struct):
    """One line of `neuronatlas/explanations/{L}.jsonl`."""

    neuron_id: str
    source: str  # where the neuron's records came from ('scrape', 'openai', ...)
    explanations: list[ExplanationExtras]


_manifest_decoder = msgspec.json.Decoder(Manifest)
_line_decoder = msgspec.json.Decoder(NeuronExtras)
_encoder = msgspec.json.Encoder()


def encode(value: msgspec.Struct) -> bytes:
    return _encoder.encode(value)


def layer_file(root: Path, layer: int) -> Path:
    return root / FOLDER / "explanations" / f"{layer}.jsonl"


def read_manifest(root: str | Path) -> Manifest | None:
    """The export's manifest, or None for plain OpenAI files; BadInput names a broken one."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = _manifest_decoder.decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise BadInput(f"{path}: not a neuronatlas export manifest ({exc})") from None
    if manifest.format != FORMAT or manifest.version > VERSION:
        raise BadInput(
            f"{path}: format {manifest.format!r} version {manifest.version} is not one this "
            f"neuronatlas reads ({FORMAT} ≤ {VERSION}); upgrade neuronatlas"
        )
    return manifest


def read_layers(root: str | Path, layers: set[int]) -> Iterator[NeuronExtras]:
    """The extras of every neuron of these layers (a missing layer file is no error: an
    export of plain OpenAI files has none)."""
    for layer in sorted(layers):
        path = layer_file(Path(root), layer)
        if not path.is_file():
            continue
        with path.open("rb") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield _line_decoder.decode(line)
                except msgspec.DecodeError as exc:
                    raise BadInput(f"{path}, line {i}: {exc}") from None
