"""Cluster labels from class-based TF-IDF (c-TF-IDF) over explanation words.

Each cluster is one document (all its explanations joined). A word's weight in a cluster is its
frequency there times log(1 + A / f), where A is the average number of words per cluster and f
the word's count over all clusters (BERTopic's formulation): words frequent in one cluster but
rare elsewhere win. Stopwords, and words every explanation uses ("words", "tokens",
"references"), are removed first.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping

_WORD = re.compile(r"[a-z][a-z0-9'-]*[a-z0-9]|[a-z]")

#: Words explanations use about every neuron; they say nothing about one cluster.
EXPLANATION_STOPWORDS = frozenset(
    {
        "word",
        "words",
        "token",
        "tokens",
        "phrase",
        "phrases",
        "term",
        "terms",
        "text",
        "texts",
        "mention",
        "mentions",
        "mentioned",
        "reference",
        "references",
        "referring",
        "related",
        "relating",
        "context",
        "contexts",
        "usage",
        "use",
        "used",
        "using",
        "including",
        "includes",
        "especially",
        "particularly",
        "specific",
        "various",
        "different",
        "like",
        "e.g",
        "ie",
        "etc",
        "fires",
        "activates",
        "activation",
        "activations",
        "neuron",
        "neurons",
        "instance",
        "instances",
        "occurrence",
        "occurrences",
        "appear",
        "appears",
        "appearing",
        "following",
        "preceding",
        "followed",
        "beginning",
        "end",
        "ending",
        "particular",
        "certain",
        "form",
        "forms",
        "type",
        "types",
        "kind",
        "kinds",
        "part",
        "parts",
        "s",
    }
)


def _stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | EXPLANATION_STOPWORDS


def words(text: str, stop: frozenset[str]) -> list[str]:
    """Lower-cased content words of an explanation."""
    return [w.strip("'-") for w in _WORD.findall(text.lower()) if w.strip("'-") not in stop]


def class_tfidf(
    docs: Mapping[int, Iterable[str]], top: int = 5
) -> dict[int, list[tuple[str, float]]]:
    """cluster -> its `top` most characteristic words with their c-TF-IDF weights."""
    stop = _stopwords()
    counts = {
        c: Counter(w for text in texts for w in words(text, stop)) for c, texts in docs.items()
    }
    overall: Counter[str] = Counter()
    for ctr in counts.values():
        overall.update(ctr)
    if not counts:
        return {}
    avg = sum(overall.values()) / len(counts)
    out = {}
    for c, ctr in counts.items():
        size = sum(ctr.values()) or 1
        scored = [(w, (n / size) * math.log(1 + avg / overall[w])) for w, n in ctr.items()]
        scored.sort(key=lambda x: (-x[1], x[0]))
        out[c] = [(w, round(s, 6)) for w, s in scored[:top]]
    return out


def label_of(top_words: list[tuple[str, float]], n: int = 3) -> str:
    """A short label: the n best words, comma-separated."""
    return ", ".join(w for w, _ in top_words[:n]) or "(no words)"
