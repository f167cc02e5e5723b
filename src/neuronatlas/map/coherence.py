"""How coherent a map's clusters are: do explanations in one cluster say similar things?

Coherence is the mean similarity between a neuron's explanation and another explanation of
its cluster (each neuron counts once, so big clusters weigh by their size), set against the
mean similarity of two random neurons' explanations. Two similarities:

- `embedding`: cosine of the stored explanation vectors (what the clustering itself used, so
  this one favours clusterers that work on the vectors);
- `words`: cosine of TF-IDF vectors of the explanations' content words (stopwords and words
  every explanation uses removed, as for the labels): independent of the embedder.

Means over all pairs are exact, not sampled: for vectors v_i, the sum of v_i·v_j over ordered
pairs i ≠ j of a group is |Σ v_i|² − Σ |v_i|². The 95% interval of the within-cluster mean comes
from resampling the clusters (a bootstrap over clusters, as pairs inside one are not
independent); the random-pair mean is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuronatlas.map.labels import stopwords, words

MEASURES = ("embedding", "words")


@dataclass(frozen=True)
class Coherence:
    """One level's coherence under one similarity."""

    level: str
    measure: str
    clusters: int
    #: mean similarity of a neuron to another member of its cluster (singletons left out)
    within: float
    #: mean similarity of two distinct neurons drawn at random
    random: float
    #: 95% bootstrap interval of `within`
    within_low: float
    within_high: float

    @property
    def lift(self) -> float:
        """within − random: how much closer cluster-mates are than strangers."""
        return self.within - self.random


def _sparse_onehot(labels: np.ndarray, k: int):
    from scipy.sparse import csr_matrix

    n = len(labels)
    return csr_matrix((np.ones(n), (labels, np.arange(n))), shape=(k, n))


def pair_means(vectors, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """(mean similarity over the ordered pairs of each cluster, NaN for singletons; the mean
    over all pairs of distinct points). `vectors`: dense array or scipy sparse matrix."""
    from scipy.sparse import issparse

    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1
    onehot = _sparse_onehot(labels, k)
    if issparse(vectors):
        sums = onehot @ vectors
        sum_sq = np.asarray(sums.multiply(sums).sum(axis=1)).ravel()
        self_sq = np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel()
        total = np.asarray(vectors.sum(axis=0)).ravel()
    else:
        dense = np.asarray(vectors, dtype=np.float64)
        sums = onehot @ dense
        sum_sq = np.einsum("ij,ij->i", sums, sums)
        self_sq = np.einsum("ij,ij->i", dense, dense)
        total = dense.sum(axis=0)
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    self_by_cluster = np.bincount(labels, weights=self_sq, minlength=k)
    pairs = sizes * (sizes - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_cluster = np.where(pairs > 0, (sum_sq - self_by_cluster) / pairs, np.nan)
    n = len(labels)
    random = float((total @ total - self_sq.sum()) / (n * (n - 1))) if n > 1 else float("nan")
    return per_cluster, random


def word_vectors(texts: list[str]):
    """L2-normalised TF-IDF rows of the explanations' content words (sparse; a text with no
    content word is a zero row)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    stop = stopwords()
    vectorizer = TfidfVectorizer(analyzer=lambda t: words(t, stop), norm="l2")
    try:
        return vectorizer.fit_transform(texts)
    except ValueError:  # not one content word in the whole atlas
        from scipy.sparse import csr_matrix

        return csr_matrix((len(texts), 1))


def coherence(
    vectors,
    labels: np.ndarray,
    level: str,
    measure: str,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[Coherence, np.ndarray]:
    """(the level's coherence, each cluster's mean pairwise similarity)."""
    per_cluster, random = pair_means(vectors, labels)
    sizes = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(per_cluster))
    ok = ~np.isnan(per_cluster)
    if not ok.any():
        nan = float("nan")
        return Coherence(level, measure, len(per_cluster), nan, random, nan, nan), per_cluster
    sims, weights = per_cluster[ok], sizes[ok].astype(np.float64)
    within = float(np.average(sims, weights=weights))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sims), size=(resamples, len(sims)))
    boot = (sims[draws] * weights[draws]).sum(axis=1) / weights[draws].sum(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return (
        Coherence(level, measure, len(per_cluster), within, random, float(low), float(high)),
        per_cluster,
    )
