"""Generate a GPT-2-XL-sized folder of OpenAI neuron-explainer files (48 × 6,400 neurons).

No atlas bigger than the demo's 36,864 neurons had ever been built, and OpenAI's real XL files
(tens of GB behind one HTTP request per file) are out of reach offline. This writes the same
layout `neuronatlas import-openai` reads (docs/OPENAI_FORMATS.md):

    OUT/explanations/{L}/{N}.jsonl          one NeuronSimulationResults line
    OUT/collated-activations/{L}/{N}.json   one NeuronRecord

with contents shaped like the real ones, so that every later stage (token index, embedding,
similar neurons, the map) meets realistic structure rather than noise:

* excerpts are 64-token windows of the project's offline Wikipedia text (the `default`
  corpus), cut into GPT-2-like pre-tokens (words with their leading space, punctuation apart);
* most neurons are *topic* neurons: each picks an article and one to three of its topic words
  (tf-idf over the corpus); its top records are windows around occurrences of those words
  anywhere in the corpus, peaking there, and its explanation is made of those words and the
  article's title — so neurons of one article or of related words explain alike and the map
  has clusters to find. The rest are *token* neurons that fire on a common token (" the", ",",
  ".", " of", …), as many real neurons do;
* activations are float32 values widened to doubles (JSON as long as OpenAI's), near zero with
  GELU's small negatives off the peak; top records are ranked by their maximum; random records
  are windows anywhere; mean / variance / skewness / kurtosis are those of the random records;
* one scored explanation per neuron (as in the XL release) with scores spread like XL's.

Every neuron is drawn from its own generator seeded by (seed, layer, neuron), so a slice
(`--layers 2 --neurons 8`) holds exactly the files the full run writes for those neurons.

    .venv/bin/python bench/gen_openai_xl.py --out /tmp/xl/src               # 48 × 6,400
    .venv/bin/python bench/gen_openai_xl.py --out /tmp/x --layers 2 --neurons 8
    neuronatlas import-openai /tmp/xl/src --db /tmp/xl/xl.db --model gpt2-xl
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuronatlas.corpus import default_corpus_path
from neuronatlas.openai.schemas import (
    ActivationRecord,
    NeuronId,
    NeuronRecord,
    NeuronSimulationResults,
    ScoredExplanation,
    ScoredSimulation,
    encode,
    encode_explanations_file,
)
from neuronatlas.workers import worker_pool

#: GPT-2's pre-tokenizer, with the stdlib's `re` (letters = word characters that are not digits
#: or underscores): words keep their leading space, digits and punctuation runs stand apart.
PRETOKEN = re.compile(r"'(?:s|t|re|ve|m|ll|d)| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+")

_STOP_TEXT = """
    the and for that with from this which were was are has have had been its their his her
    they them there these those than then also into other such some most more many when where
    while who whom whose what after before about over under between during through both each
    only very can could would should will may might must not but all any one two three first
    second known often used including became become being called based name named part
    however although because since until within without upon among several various another"""
STOPWORDS = frozenset(_STOP_TEXT.split())

#: Tokens that "token neurons" fire on (one picked uniformly).
COMMON_TOKENS = [" the", ",", ".", " of", " and", " in", " a", " to", " is", " was", "\n", " ("]

TEMPLATES = [
    ' the word "{w1}"',
    " references to {w1}",
    " references to {w1} and {w2}",
    " words related to {title}",
    " mentions of {w1} in the context of {title}",
    " {w1}, {w2}, and {w3}",
    " terms about {w1} and {w2}",
    " {w1}-related words, especially in texts about {title}",
    " the names {w1} and {w2}",
    " parts of words like {w1}",
]
TOKEN_TEMPLATES = [
    ' the token "{t}"',
    ' common function words, mostly "{t}"',
    ' "{t}" after a noun',
    ' the token "{t}" near the end of a clause',
    " punctuation and short words such as {t}",
]


@dataclass(frozen=True)
class Settings:
    layers: int = 48
    neurons: int = 6400
    seed: int = 0
    top: int = 20
    random: int = 10
    tokens: int = 64
    token_share: float = 0.15  # fraction of token neurons


class Corpus:
    """The default corpus as one token list, with each document's topic words and where every
    topic word occurs (global token positions)."""

    def __init__(self, min_len: int) -> None:
        data = json.loads(default_corpus_path().read_text(encoding="utf-8"))
        entries = [e for e in data.values() if isinstance(e, dict) and e.get("extract")]
        tokens: list[str] = []
        doc_words: list[list[str]] = []
        titles: list[str] = []
        doc_freq: Counter[str] = Counter()
        per_doc: list[Counter[str]] = []
        for entry in entries:
            toks = PRETOKEN.findall(entry["extract"])
            tokens.extend(toks)
            counts = Counter(
                w
                for w in (t.strip().lower() for t in toks)
                if len(w) >= 4 and w.isalpha() and w not in STOPWORDS
            )
            per_doc.append(counts)
            doc_freq.update(counts.keys())
            titles.append(str(entry.get("title", "")).strip())
        n_docs = len(per_doc)
        for counts in per_doc:
            ranked = sorted(counts, key=lambda w: (-counts[w] * math.log(n_docs / doc_freq[w]), w))
            doc_words.append([w for w in ranked if doc_freq[w] >= 2][:6])
        self.tokens = tokens
        self.n = len(tokens)
        # each token as an id of its stripped lower-case form, to find words in windows fast
        vocab: dict[str, int] = {}
        self.norm = np.asarray(
            [vocab.setdefault(t.strip().lower(), len(vocab)) for t in tokens], dtype=np.int64
        )
        self.vocab = vocab
        if self.n < min_len * 4:
            raise SystemExit(f"the default corpus has only {self.n} tokens")
        wanted = {w for words in doc_words for w in words}
        where: dict[str, list[int]] = {}
        for i, t in enumerate(tokens):
            w = t.strip().lower()
            if w in wanted:
                where.setdefault(w, []).append(i)
        self.where = {w: np.asarray(p, dtype=np.int64) for w, p in where.items()}
        common: dict[str, list[int]] = {t: [] for t in COMMON_TOKENS}
        for i, t in enumerate(tokens):
            if t in common:
                common[t].append(i)
        self.common = {t: np.asarray(p, dtype=np.int64) for t, p in common.items() if p}
        keep = [i for i, words in enumerate(doc_words) if words]
        self.topics = [doc_words[i] for i in keep]
        self.titles = [titles[i] for i in keep]


def _f32(values: np.ndarray) -> list[float]:
    """float32 values as Python floats (the long reprs OpenAI's files have)."""
    return values.astype(np.float32).astype(np.float64).tolist()


def _windows(
    rng: np.random.Generator, corpus: Corpus, peaks: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Window starts holding each peak, and the peak's offset inside its window."""
    offsets = rng.integers(4, length - 4, size=len(peaks))
    starts = np.clip(peaks - offsets, 0, corpus.n - length)
    return starts, peaks - starts


def _noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Off-peak activations: GELU of small pre-activations (mostly tiny, some slightly < 0)."""
    x = rng.normal(-1.0, 0.9, size=shape) * scale
    return x * 0.5 * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))


def _records(
    corpus: Corpus, starts: np.ndarray, acts: np.ndarray, length: int
) -> list[ActivationRecord]:
    return [
        ActivationRecord(tokens=corpus.tokens[s : s + length], activations=_f32(a))
        for s, a in zip(starts.tolist(), acts, strict=True)
    ]


def _moments(values: np.ndarray) -> tuple[float, float, float, float]:
    mean = float(values.mean())
    var = float(values.var())
    if var <= 0:
        return mean, var, 0.0, 0.0
    z = (values - mean) / math.sqrt(var)
    return mean, var, float((z**3).mean()), float((z**4).mean())


def _scores(rng: np.random.Generator) -> ScoredSimulation:
    ev = float(np.clip(rng.normal(0.22, 0.17), -0.25, 0.95))
    rsq = float(ev * abs(ev) - abs(rng.normal(0.0, 0.08)))
    absdev = float(np.clip(ev * 0.7 + rng.normal(0.0, 0.04), -0.3, 0.9))
    return ScoredSimulation(
        scored_sequence_simulations=[],
        ev_correlation_score=ev,
        rsquared_score=rsq,
        absolute_dev_explained_score=absdev,
    )


def neuron_files(corpus: Corpus, cfg: Settings, layer: int, neuron: int) -> tuple[bytes, bytes]:
    """(explanations .jsonl bytes, collated-activations .json bytes) of one neuron."""
    rng = np.random.default_rng([cfg.seed, layer, neuron])
    length = cfg.tokens
    scale = float(rng.lognormal(0.6, 0.5))
    if rng.random() < cfg.token_share:
        token = COMMON_TOKENS[int(rng.integers(len(COMMON_TOKENS)))]
        pool = corpus.common[token]
        t = token.strip() or repr(token)[1:-1]
        text = TOKEN_TEMPLATES[int(rng.integers(len(TOKEN_TEMPLATES)))].format(t=t)
        words = [token]
    else:
        topic = int(rng.integers(len(corpus.topics)))
        options = corpus.topics[topic]
        picked = rng.choice(len(options), size=min(3, len(options)), replace=False)
        chosen = [options[i] for i in picked]
        ws = (chosen * 3)[:3]
        template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
        text = template.format(w1=ws[0], w2=ws[1], w3=ws[2], title=corpus.titles[topic])
        # the neuron fires on the words its explanation names (all three for a title)
        named = [
            w for slot, w in zip(("{w1}", "{w2}", "{w3}"), ws, strict=True) if slot in template
        ]
        words = list(dict.fromkeys(named or chosen))
        pool = np.concatenate([corpus.where[w] for w in words])
    peaks = pool[rng.integers(len(pool), size=cfg.top)]
    starts, at = _windows(rng, corpus, peaks, length)
    top = _noise(rng, (cfg.top, length), scale * 0.5)
    heights = np.sort(scale * rng.uniform(2.0, 8.0, size=cfg.top))[::-1]
    rows = np.arange(cfg.top)
    # other occurrences of the neuron's words inside a window light up less than its peak
    ids = [corpus.vocab[w.strip().lower()] for w in words if w.strip().lower() in corpus.vocab]
    inside = np.isin(corpus.norm[starts[:, None] + np.arange(length)], ids)
    bumps = heights[:, None] * rng.uniform(0.2, 0.7, size=top.shape)
    top = np.where(inside, bumps, top)
    top[rows, at] = heights
    rand_starts = rng.integers(0, corpus.n - length, size=cfg.random)
    rand = _noise(rng, (cfg.random, length), scale * 0.5)
    record = NeuronRecord(
        neuron_id=NeuronId(layer_index=layer, neuron_index=neuron),
        random_sample=_records(corpus, rand_starts, rand, length),
        random_sample_by_quantile=None,
        quantile_boundaries=None,
        most_positive_activation_records=_records(corpus, starts, top, length),
    )
    record.mean, record.variance, record.skewness, record.kurtosis = _moments(
        rand.astype(np.float32).astype(np.float64).ravel()
    )
    results = NeuronSimulationResults(
        neuron_id=NeuronId(layer_index=layer, neuron_index=neuron),
        scored_explanations=[ScoredExplanation(explanation=text, scored_simulation=_scores(rng))],
    )
    return encode_explanations_file(results), encode(record)


_CORPUS: Corpus | None = None


def _write_layer(args: tuple[Path, Settings, int]) -> int:
    """Write one layer's files (in a worker: the corpus is built once per process)."""
    global _CORPUS
    out, cfg, layer = args
    if _CORPUS is None:
        _CORPUS = Corpus(cfg.tokens)
    exp_dir = out / "explanations" / str(layer)
    act_dir = out / "collated-activations" / str(layer)
    exp_dir.mkdir(parents=True, exist_ok=True)
    act_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for neuron in range(cfg.neurons):
        exp, act = neuron_files(_CORPUS, cfg, layer, neuron)
        (exp_dir / f"{neuron}.jsonl").write_bytes(exp)
        (act_dir / f"{neuron}.json").write_bytes(act)
        written += len(exp) + len(act)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder to write (created)")
    p.add_argument("--layers", type=int, default=48, help="layers 0..N-1 (default 48)")
    p.add_argument("--neurons", type=int, default=6400, help="neurons per layer (default 6400)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=20, help="top records per neuron (default 20)")
    p.add_argument("--random", type=int, default=10, help="random records per neuron")
    p.add_argument("--tokens", type=int, default=64, help="tokens per excerpt (default 64)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = p.parse_args(argv)
    if a.layers < 1 or a.neurons < 1 or a.top < 1 or a.random < 0 or a.tokens < 16:
        p.error("--layers, --neurons and --top must be ≥ 1, --random ≥ 0, --tokens ≥ 16")
    cfg = Settings(a.layers, a.neurons, a.seed, a.top, a.random, a.tokens)
    t0 = time.perf_counter()
    jobs = [(a.out, cfg, layer) for layer in range(cfg.layers)]
    total = 0
    if a.workers <= 1 or cfg.layers == 1:
        for done, job in enumerate(jobs, 1):
            total += _write_layer(job)
            print(f"layer {done}/{cfg.layers}", file=sys.stderr)
    else:
        with worker_pool(min(a.workers, cfg.layers)) as pool:  # workers die with us
            for done, size in enumerate(pool.map(_write_layer, jobs), 1):
                total += size
                print(f"layer {done}/{cfg.layers}", file=sys.stderr)
    seconds = time.perf_counter() - t0
    print(
        f"wrote {cfg.layers} × {cfg.neurons} neurons to {a.out}: "
        f"{total / 2**20:,.0f} MiB in {seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
