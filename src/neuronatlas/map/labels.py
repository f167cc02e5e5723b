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

#: A word: letters (any script), then letters, digits, ' or -, ending on a letter or digit.
_WORD = re.compile(r"[^\W\d_][\w'-]*[^\W_]|[^\W\d_]")

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


def stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | EXPLANATION_STOPWORDS


def words(text: str, stop: frozenset[str]) -> list[str]:
    """Lower-cased content words of an explanation."""
    return [w.strip("'-") for w in _WORD.findall(text.lower()) if w.strip("'-") not in stop]


def class_tfidf(
    docs: Mapping[int, Iterable[str]], top: int = 5
) -> dict[int, list[tuple[str, float]]]:
    """cluster -> its `top` most characteristic words with their c-TF-IDF weights."""
    stop = stopwords()
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


def distinct_labels(top: Mapping[int, list[tuple[str, float]]], n: int = 3) -> dict[int, str]:
    """A label per cluster from its n best words. Clusters that would share a label each take
    their next word until the labels differ; two clusters with the very same word list (or
    none) are told apart by their number, so no two clusters on a map read the same."""
    used = {c: min(n, len(w)) for c, w in top.items()}
    while True:
        labels = {c: label_of(top[c], used[c]) for c in top}
        groups: dict[str, list[int]] = {}
        for c, label in labels.items():
            groups.setdefault(label, []).append(c)
        grew = False
        for members in groups.values():
            if len(members) < 2:
                continue
            for c in members:
                if used[c] < len(top[c]):
                    used[c] += 1
                    grew = True
        if not grew:
            break
    counts = Counter(labels.values())
    return {c: f"{label} (#{c})" if counts[label] > 1 else label for c, label in labels.items()}
