"""A synthetic atlas with the shape of a real one, for exercising the explorer.

Each neuron "detects" one word: its top records are excerpts containing the word with a peak
on it, its random records are arbitrary excerpts with small noise, and its explanation names
the word. Tests use a tiny one; `bench/serve_bench.py` builds a GPT-2-small-sized one
(12 × 3,072 neurons × 20 top + 20 random records) through the real store writer.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from neuronatlas.store import AtlasWriter, Explanation, NeuronData, Record, prepare
from neuronatlas.store.migrations import available

WORDS = [
    "dog",
    "cat",
    "house",
    "river",
    "music",
    "France",
    "money",
    "king",
    "queen",
    "water",
    "fire",
    "tree",
    "computer",
    "science",
    "blood",
    "war",
    "peace",
    "city",
    "train",
    "ship",
    "bread",
    "wine",
    "summer",
    "winter",
    "mountain",
    "ocean",
    "book",
    "letter",
    "doctor",
    "court",
    "church",
    "school",
    "garden",
    "horse",
    "star",
    "moon",
    "sun",
    "rain",
    "snow",
    "gold",
    "iron",
    "glass",
    "paper",
    "stone",
    "road",
    "bridge",
    "army",
    "law",
    "market",
    "bank",
    "film",
    "song",
    "game",
    "team",
    "coffee",
    "tea",
    "milk",
]
FILLER = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "it",
    "an",
    "be",
    "this",
]


def _excerpt(rng: random.Random, length: int, word: str | None) -> tuple[list[str], int]:
    """A token list of `length` (leading-space tokens, GPT-2 style) and where `word` sits."""
    toks = [
        " " + (rng.choice(WORDS) if rng.random() < 0.3 else rng.choice(FILLER))
        for _ in range(length)
    ]
    where = -1
    if word is not None:
        where = rng.randrange(length)
        toks[where] = " " + word
    return toks, where


def synthetic_neuron(
    layer: int, neuron: int, n_top: int, n_random: int, length: int, seed: int = 0
) -> NeuronData:
    """One deterministic neuron: a word detector with scored explanations."""
    rng = random.Random(seed * 1_000_003 + layer * 100_003 + neuron)
    word = WORDS[(layer * 7 + neuron) % len(WORDS)]
    peak = 2.0 + 8.0 * rng.random()
    top = []
    for rank in range(n_top):
        toks, where = _excerpt(rng, length, word)
        value = peak * (1.0 - 0.6 * rank / max(n_top, 1))
        acts: list[float | None] = [round(rng.gauss(0.0, 0.05), 3) for _ in toks]
        acts[where] = round(value, 3)
        top.append(Record(toks, acts))
    rand = []
    for _ in range(n_random):
        toks, _ = _excerpt(rng, length, None)
        rand.append(Record(toks, [round(rng.gauss(0.0, 0.1), 3) for _ in toks]))
    score = round(rng.uniform(-0.1, 0.9), 3)
    return NeuronData(
        layer=layer,
        neuron=neuron,
        source="scrape",
        records={"top": top, "random": rand},
        mean=0.01,
        variance=0.05 + rng.random() * 0.1,
        skewness=3.0 + rng.random(),
        kurtosis=20.0 + 10 * rng.random(),
        explanations=[
            Explanation(f' the word "{word}"', score, score * score, score / 2),
            Explanation(f" {word} and related words", score / 2, None, None),
        ],
        explanation_source="openai",
    )


def iter_neurons(
    layers: int, per_layer: int, n_top: int, n_random: int, length: int, seed: int = 0
) -> Iterator[NeuronData]:
    for layer in range(layers):
        for neuron in range(per_layer):
            yield synthetic_neuron(layer, neuron, n_top, n_random, length, seed)


def build_synthetic_atlas(
    path: str | Path,
    layers: int = 2,
    per_layer: int = 8,
    n_top: int = 5,
    n_random: int = 5,
    length: int = 16,
    seed: int = 0,
    model_id: str | None = None,
    batch: int = 256,
) -> Path:
    """Write a synthetic atlas through the store writer (as an importer would)."""
    path = Path(path)
    with AtlasWriter(path) as writer:
        meta: dict[str, int | str] = {"n_layers": layers, "d_mlp": per_layer}
        if model_id is not None:
            meta["model_id"] = model_id
        writer.set_meta(meta)
        run = writer.begin_run("import", {"synthetic": True, "seed": seed})
        buf = []
        for data in iter_neurons(layers, per_layer, n_top, n_random, length, seed):
            buf.append(prepare(data))
            if len(buf) >= batch:
                writer.write_neurons(buf)
                buf = []
        if buf:
            writer.write_neurons(buf)
        writer.end_run(run)
    return path


def older_schema(conn: sqlite3.Connection, below: int) -> None:
    """Bring an empty database to the schema of migrations < `below`, as older code did."""
    conn.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at TEXT NOT NULL)"
    )
    for version, name, sql in [m for m in available() if m[0] < below]:
        conn.executescript(
            f"BEGIN; {sql}; INSERT INTO schema_version VALUES"
            f" ({version}, '{name}', 'then'); COMMIT;"
        )
