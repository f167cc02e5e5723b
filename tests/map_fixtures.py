"""A topical atlas for the map tests: 60 neurons on six topics, and an exact bag-of-words
embedder over the topics' words (so how well a map recovers the topics depends on the map)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embed_fixtures import build_atlas
from neuronatlas.embed.embed import EmbedConfig, embed_atlas
from neuronatlas.embed.embedders import Embedder, register_embedder, registered_names
from neuronatlas.embed.labels import stopwords, words

#: six topics; explanations of one topic share words, of two topics none
TOPICS = {
    "animals": ["dogs", "cats", "puppies", "kittens", "horses", "pets"],
    "plants": ["trees", "flowers", "leaves", "roots", "seeds", "gardens"],
    "cooking": ["recipes", "baking", "kitchens", "ovens", "flour", "soup"],
    "weather": ["rain", "snow", "storms", "forecasts", "clouds", "wind"],
    "law": ["courts", "lawsuits", "judges", "attorneys", "trials", "verdicts"],
    "sports": ["football", "goals", "teams", "referees", "matches", "stadiums"],
}
PER_TOPIC = 10
VOCAB = [w for vocab in TOPICS.values() for w in vocab]


class TopicWordsEmbedder(Embedder):
    """Counts of the topic words, one dimension each: an exact bag of words (no hashing
    collisions), so how well the map recovers the topics depends on the map alone."""

    name = "test-topic-words"
    spec = "test-topic-words"

    @property
    def dim(self) -> int:
        return len(VOCAB)

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for w in words(text, stopwords()):
                out[i, VOCAB.index(w)] += 1.0
        return out


if TopicWordsEmbedder.name not in registered_names():
    register_embedder(TopicWordsEmbedder.name, TopicWordsEmbedder)


def topical_neurons() -> tuple[dict, dict[str, str]]:
    """(build_atlas neurons, neuron id -> its topic): each explanation names three words of
    its topic, so neurons of one topic share words and other topics' neurons share none."""
    neurons, topic_of = {}, {}
    for t, (topic, vocab) in enumerate(TOPICS.items()):
        for j in range(PER_TOPIC):
            layer, neuron = t, j + 1
            text = f"{vocab[j % 6]}, {vocab[(j + 1) % 6]} and {vocab[(j + 3) % 6]}"
            neurons[(layer, neuron)] = (text, [" x", " y"])
            topic_of[f"L{layer:02d}N{neuron:04d}"] = topic
    return neurons, topic_of


def topical_atlas(path: Path) -> tuple[Path, dict[str, str]]:
    """(the atlas, embedded with the topic-words embedder; neuron id -> topic)."""
    neurons, topic_of = topical_neurons()
    build_atlas(path, neurons)
    embed_atlas(path, EmbedConfig(embedder=TopicWordsEmbedder.name))
    return path, topic_of
