"""A small real atlas for N2G tests: the tiny detector GPT-2's true activations over made-up text.

Windows of `context` tokens are cut from generated sentences, run through the model (BOS
prepended, as recorded in the atlas meta), and every chosen neuron gets its top windows, a seeded
random sample and its statistics, written through the store like a scrape would.
"""

from __future__ import annotations

import random
from pathlib import Path

WORDS = [
    "cat",
    "dog",
    "the",
    "a",
    "house",
    "tree",
    "river",
    "car",
    "bird",
    "city",
    "music",
    "book",
    "table",
    "garden",
    "window",
    "road",
    "light",
    "water",
    "apple",
    "stone",
    "cloud",
    "paper",
    "green",
    "quickly",
    "slowly",
    "small",
    "large",
    "old",
    "new",
    "red",
    "blue",
    "happy",
    "sad",
    "runs",
    "sees",
    "likes",
    "finds",
    "near",
    "under",
    "over",
    "with",
    "from",
    "into",
]


def sentences(n: int, seed: int = 0, words: list[str] | None = None) -> str:
    rng = random.Random(seed)
    vocab = WORDS if words is None else words
    out = []
    for _ in range(n):
        words = [rng.choice(vocab) for _ in range(rng.randint(5, 12))]
        s = " ".join(words)
        out.append(s[0].upper() + s[1:] + ".")
    return " ".join(out)


def build_atlas(
    db_path: Path,
    model_dir: Path,
    neurons: list[tuple[int, int]],
    n_sentences: int = 300,
    context: int = 16,
    top_k: int = 12,
    random_k: int = 12,
    seed: int = 0,
    words: list[str] | None = None,
) -> Path:
    import numpy as np
    import torch

    from neuronatlas.models import load_model
    from neuronatlas.store import AtlasWriter, NeuronData, Record, prepare

    loaded = load_model(str(model_dir))
    ids = loaded.tokenizer.encode(sentences(n_sentences, seed, words))
    windows = [ids[i : i + context] for i in range(0, len(ids) - context + 1, context)]
    batch = torch.tensor([[loaded.bos_token_id, *w] for w in windows])
    layers = sorted({layer for layer, _ in neurons})
    acts = {L: a[:, 1:].numpy() for L, a in loaded.neuron_activations(batch, layers).items()}
    strings = [loaded.record_strings(w) for w in windows]
    rng = random.Random(seed)
    prepared = []
    for layer, neuron in neurons:
        a = acts[layer][:, :, neuron]
        order = np.argsort(-a.max(axis=1), kind="stable")[:top_k]
        rand = rng.sample(range(len(windows)), random_k)
        flat = a.ravel()
        recs = {
            "top": [Record(strings[i], [float(x) for x in a[i]]) for i in order],
            "random": [Record(strings[i], [float(x) for x in a[i]]) for i in rand],
        }
        prepared.append(
            prepare(
                NeuronData(
                    layer=layer,
                    neuron=neuron,
                    source="scrape",
                    records=recs,
                    mean=float(flat.mean()),
                    variance=float(flat.var()),
                )
            )
        )
    with AtlasWriter(db_path) as w:
        w.set_meta({"model_path": str(model_dir), "prepend_bos": "true"})
        w.write_neurons(prepared)
    return db_path
