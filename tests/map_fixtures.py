"""A topical atlas for the map tests: 60 neurons on six topics, and an exact bag-of-words
embedder over the topics' words (so how well a map recovers the topics depends on the map)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embed_fixtures import build_atlas
from neuronatlas.embed.embed import EmbedConfig, embed_atlas
from neuronatlas.embed.embedders import Embedder, register_embedder, registered_names
from neuronatlas.map.labels import stopwords, words

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


def direct_map_atlas(
    path: Path, layers: int, per_layer: int, n_fine: int, n_coarse: int, seed: int = 0
) -> Path:
    """An atlas whose map is written straight into the store: neurons with one explanation
    each (no records), points scattered around `n_fine` cluster centres grouped into
    `n_coarse` coarse clusters, labels made of the clusters' words. No import, no embedding,
    no UMAP, so the browser tests and bench/map_page_bench.py get a map of GPT-2 XL's size
    (48 × 6,400) in about a minute."""
    from neuronatlas.store import AtlasWriter, Explanation, NeuronData, prepare
    from neuronatlas.store import embed as store_embed

    rng = np.random.default_rng(seed)
    pairs = [(a, b) for a in VOCAB for b in VOCAB if a != b]
    picked = [pairs[i] for i in rng.permutation(len(pairs))[:n_fine]]
    parent = np.arange(n_fine) % n_coarse
    coarse_xy = rng.uniform(0, 100, size=(n_coarse, 2))
    fine_xy = coarse_xy[parent] + rng.normal(0, 6, size=(n_fine, 2))
    n = layers * per_layer
    cluster = rng.integers(0, n_fine, size=n)
    xy = fine_xy[cluster] + rng.normal(0, 1.5, size=(n, 2))
    with AtlasWriter(path) as writer:
        writer.set_meta({"n_layers": layers, "d_mlp": per_layer})
        batch = []
        for i in range(n):
            a, b = picked[cluster[i]]
            text = f" {a} and {b}, often near {VOCAB[i % len(VOCAB)]}"
            batch.append(
                prepare(
                    NeuronData(
                        layer=i // per_layer,
                        neuron=i % per_layer,
                        source="openai",
                        records={},
                        explanations=[Explanation(text, 0.5)],
                        explanation_source="openai",
                    )
                )
            )
            if len(batch) == 4096 or i == n - 1:
                writer.write_neurons(batch)
                batch = []
        todo, _ = store_embed.explanations_to_embed(writer.conn, "direct", primary_only=True)
        owner = store_embed.describe_explanations(writer.conn, [row[0] for row in todo])
        eid = {info.id: e for e, info in owner.items()}
        points = [
            (
                f"L{i // per_layer:02d}N{i % per_layer:04d}",
                eid[f"L{i // per_layer:02d}N{i % per_layer:04d}"],
                float(xy[i, 0]),
                float(xy[i, 1]),
                int(cluster[i]),
            )
            for i in range(n)
        ]
        sizes = np.bincount(cluster, minlength=n_fine)
        fine = [
            (c, f"{a} · {b}", [(a, 1.0), (b, 0.5)], int(sizes[c]), *map(float, fine_xy[c]))
            for c, (a, b) in enumerate(picked)
        ]
        coarse_sizes = np.bincount(parent, weights=sizes, minlength=n_coarse)
        coarse = [
            (
                k,
                f"{picked[k][0]} group",
                [(picked[k][0], 1.0)],
                int(coarse_sizes[k]),
                *map(float, coarse_xy[k]),
                None,
            )
            for k in range(n_coarse)
        ]
        store_embed.write_map(
            writer.conn,
            points,
            fine,
            "direct",
            {"direct": True},
            coarse=coarse,
            parents=[(c, int(parent[c]), None) for c in range(n_fine)],
        )
    return path
