"""A small hand-written atlas for the embed/search/map tests, and a deterministic test embedder.

Twelve neurons on distinct topics, OpenAI-style explanations, and top records whose peaks fall
on known tokens. `QUERIES` are paraphrases that share no content word with any explanation.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from neuronatlas.embed.embedders import Embedder, register_embedder, registered_names
from neuronatlas.store import AtlasWriter, Explanation, NeuronData, Record, prepare

# id -> (explanation, peak tokens of its top records)
NEURONS: dict[tuple[int, int], tuple[str, list[str]]] = {
    (0, 1): ("references to dogs and puppies", [" dog", " dog", " puppy"]),
    (0, 2): ("words related to cooking and recipes", [" recipe", " bake", " recipe"]),
    (1, 3): ("numbers in mathematical equations", [" equation", " 2", " sum"]),
    (1, 4): ("mentions of rain, snow and weather forecasts", [" rain", " snow", " rain"]),
    (2, 5): ("programming code written in Python", [" def", " import", " def"]),
    (2, 6): ("football matches and sports teams", [" football", " team", " match"]),
    (3, 7): ("expressions of sadness and grief", [" sad", " grief", " sad"]),
    (3, 8): ("names of European capital cities", [" Paris", " Berlin", " Paris"]),
    (4, 9): ("music, songs and musical instruments", [" song", " piano", " song"]),
    (4, 10): ("legal terms about courts and lawsuits", [" court", " lawsuit", " court"]),
    (5, 11): ("medical diseases and hospital treatments", [" hospital", " disease", " dog"]),
    (5, 12): ("pets such as cats and hamsters", [" cat", " dog", " puppy"]),
}

# paraphrase -> the neuron it must find first
QUERIES: dict[str, str] = {
    "canine companions": "L00N0001",
    "preparing food in the kitchen": "L00N0002",
    "arithmetic formulas": "L01N0003",
    "meteorology, storms and climate": "L01N0004",
    "software development scripts": "L02N0005",
    "soccer games and athletes": "L02N0006",
    "feeling unhappy and mourning": "L03N0007",
    "Berlin, Rome and Madrid": "L03N0008",
    "guitar melody at a concert": "L04N0009",
    "judge, attorney and trial": "L04N0010",
    "doctors curing illness": "L05N0011",
}

STOPWORDS = {
    "a",
    "an",
    "and",
    "at",
    "the",
    "in",
    "of",
    "to",
    "such",
    "as",
    "about",
    "by",
    "written",
    "words",
    "related",
    "references",
    "mentions",
    "names",
    "terms",
}


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOPWORDS}


def _records(peaks: list[str], scale: float) -> list[Record]:
    out = []
    for rank, tok in enumerate(peaks):
        tokens = [" The", " first", tok, " here", "."]
        acts = [0.0, 0.1, scale * (3.0 - 0.5 * rank), 0.2, -0.05]
        out.append(Record(tokens, acts))
    return out


def build_atlas(path: Path, neurons=None) -> Path:
    """Write the atlas through AtlasWriter + prepare (as an OpenAI import would)."""
    neurons = NEURONS if neurons is None else neurons
    data = []
    for (layer, neuron), (text, peaks) in neurons.items():
        data.append(
            prepare(
                NeuronData(
                    layer=layer,
                    neuron=neuron,
                    source="openai",
                    records={
                        "top": _records(peaks, 1.0 + neuron / 10),
                        "random": [Record([" a", " b"], [0.0, 0.01])],
                    },
                    mean=0.0,
                    variance=0.1,
                    skewness=1.0,
                    kurtosis=3.0,
                    explanations=[Explanation(text, 0.1 * (neuron % 7), None, None)],
                )
            )
        )
    with AtlasWriter(path) as w:
        w.set_meta({"model_id": "test-model"})
        w.write_neurons(data)
    return path


class HashingEmbedder(Embedder):
    """Bag of hashed words: deterministic, instant, records every text it encodes."""

    name = "test-hashing"
    spec = "test-hashing"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    @property
    def dim(self) -> int:
        return 64

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for w in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "little")
                out[i, h % self.dim] += 1.0
            out[i, 0] += 1e-3
        return out


class OtherHashingEmbedder(HashingEmbedder):
    """A second instant embedder, for the one-embedder-per-atlas rules."""

    name = "test-hashing-b"
    spec = "test-hashing-b"


HASHING = HashingEmbedder()
OTHER_HASHING = OtherHashingEmbedder()
for _embedder in (HASHING, OTHER_HASHING):
    if _embedder.name not in registered_names():
        register_embedder(_embedder.name, lambda e=_embedder: e)


def write_openai_source(root: Path, neurons=None) -> Path:
    """The same neurons as OpenAI neuron-explainer files in the seed layout
    (explanations/{L}/{N}.jsonl, activations/{L}/{N}.json), for `neuronatlas import-openai`."""
    import json

    neurons = NEURONS if neurons is None else neurons
    for (layer, neuron), (text, peaks) in neurons.items():
        top = [
            {"tokens": r.tokens, "activations": r.activations}
            for r in _records(peaks, 1.0 + neuron / 10)
        ]
        acts = {
            "neuron_id": {"layer_index": layer, "neuron_index": neuron},
            "most_positive_activation_records": top,
            "random_sample": [{"tokens": [" a", " b"], "activations": [0.0, 0.01]}],
            "random_sample_by_quantile": None,
            "quantile_boundaries": None,
            "mean": 0.0,
            "variance": 0.1,
            "skewness": 1.0,
            "kurtosis": 3.0,
        }
        scored = {
            "explanation": text,
            "scored_simulation": {
                "scored_sequence_simulations": [],
                "ev_correlation_score": 0.5,
                "rsquared_score": 0.1,
                "absolute_dev_explained_score": 0.2,
            },
        }
        expl = {
            "neuron_id": {"layer_index": layer, "neuron_index": neuron},
            "scored_explanations": [scored],
        }
        a = root / "activations" / str(layer) / f"{neuron}.json"
        e = root / "explanations" / str(layer) / f"{neuron}.jsonl"
        a.parent.mkdir(parents=True, exist_ok=True)
        e.parent.mkdir(parents=True, exist_ok=True)
        a.write_text(json.dumps(acts), encoding="utf-8")
        e.write_text(json.dumps(expl) + "\n", encoding="utf-8")
    return root
