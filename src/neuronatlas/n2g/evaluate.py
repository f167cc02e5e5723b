"""Evaluation of a graph on held-out records, against lookup baselines.

A token *fires* when its activation is at least `fire_threshold × a_max` (a_max = the neuron's
maximum stored activation), for the truth and for a prediction alike. Precision, recall and F1
are computed over all held-out tokens pooled (micro-averaged within the neuron):
precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R). A precision or recall
with a zero denominator is 0 (scikit-learn's zero_division=0), except that F1 is None when the
held-out text has no firing token and nothing is predicted to fire (nothing to score).

Baselines, fitted on the same train records the graph was built from (stored per graph: the
token lookup by max activation and the 2-gram lookup with back-off; the evaluation protocol
adds the rest, see `baselines`):
- token lookup by max: the highest activation seen for each token string; unseen tokens 0;
- token lookup by rate: the share of the token's train occurrences that fired, × a_max;
- n-gram lookup: the highest activation seen for the same n−1 preceding tokens and token,
  strict (unseen n-gram → 0) or backing off to shorter contexts and finally the token;
- each exact or keyed with N2G's token normalisation.

The protocol's aggregates and paired statistics are at the end of the module:
`score_neuron` (precision, recall, F1, AUPRC, ev_correlation of one method on one neuron),
`summarize` (over neurons: mean/median F1, pooled counts) and `paired_comparison` (bootstrap CI
of the mean per-neuron difference and the Wilcoxon signed-rank p-value). docs/N2G.md,
"Evaluation protocol", says how the records are chosen and split.

ev_correlation_score is OpenAI's: Pearson correlation over all held-out tokens flattened into
one list (neuronatlas.openai_scores).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from neuronatlas.n2g.trie import normalize_token
from neuronatlas.openai_scores import ev_correlation_score

Sequences = Sequence[Sequence[float | None]]


@dataclass(frozen=True)
class FireScores:
    precision: float
    recall: float
    f1: float | None
    tp: int
    fp: int
    fn: int


def fire_scores(truth: Sequences, predicted: Sequences, threshold: float) -> FireScores:
    """Firing-token precision/recall/F1; None truth values (NaN in the source) are skipped."""
    tp = fp = fn = 0
    for t_seq, p_seq in zip(truth, predicted, strict=True):
        if len(t_seq) != len(p_seq):
            raise ValueError(f"truth has {len(t_seq)} tokens, prediction {len(p_seq)}")
        for t, p in zip(t_seq, p_seq, strict=False):
            if t is None:
                continue
            fires, said = t >= threshold, (p or 0.0) >= threshold
            tp += fires and said
            fp += said and not fires
            fn += fires and not said
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    if tp + fp + fn == 0:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return FireScores(precision, recall, f1, tp, fp, fn)


Records = Sequence[tuple[Sequence[str], Sequence[float | None]]]


def _keys(tokens: Sequence[str], normalize: str) -> list[str]:
    return [normalize_token(t, normalize) for t in tokens] if normalize != "none" else list(tokens)


class TokenLookup:
    """Baseline: one value per token string seen in training.

    mode "max": the highest activation seen for the token (the reference's lookup: a token that
    fired once always fires). mode "rate": the share of the token's training occurrences that
    fired, × a_max, so it fires (≥ fire_threshold × a_max) when the token usually fires.
    normalize: key tokens the way the trie does ("none" = exact strings).
    """

    def __init__(
        self,
        mode: str = "max",
        normalize: str = "none",
        a_max: float = 1.0,
        fire_threshold: float = 0.5,
    ) -> None:
        if mode not in ("max", "rate"):
            raise ValueError(f"token lookup mode={mode!r}: max or rate")
        self.mode, self.normalize = mode, normalize
        self.a_max, self.fire_threshold = a_max, fire_threshold
        self.table: dict[str, float] = {}

    def fit(self, records: Records) -> TokenLookup:
        table = self.table
        seen: dict[str, int] = {}
        fired: dict[str, int] = {}
        limit = self.fire_threshold * self.a_max
        for tokens, acts in records:
            for tok, a in zip(_keys(tokens, self.normalize), acts, strict=False):
                if a is None:
                    continue
                if a > table.get(tok, float("-inf")):
                    table[tok] = a
                seen[tok] = seen.get(tok, 0) + 1
                fired[tok] = fired.get(tok, 0) + (a >= limit)
        if self.mode == "rate":
            self.table = {t: self.a_max * fired[t] / seen[t] for t in seen}
        return self

    def predict(self, tokens: Sequence[str]) -> list[float]:
        return [self.table.get(t, 0.0) for t in _keys(tokens, self.normalize)]


class NgramLookup:
    """Baseline: max activation per (n−1 preceding tokens, token).

    backoff=True: an unseen n-gram falls back to the longest seen shorter context, down to the
    token itself. backoff=False (strict): only the exact n-gram counts; positions with fewer
    than n−1 tokens before them and unseen n-grams predict 0.
    """

    def __init__(self, n: int = 2, backoff: bool = True, normalize: str = "none") -> None:
        if n < 1:
            raise ValueError("n-gram order must be ≥ 1")
        self.n, self.backoff, self.normalize = n, backoff, normalize
        self.tables: list[dict[tuple[str, ...], float]] = [{} for _ in range(n)]

    def fit(self, records: Records) -> NgramLookup:
        orders = range(self.n) if self.backoff else [self.n - 1]
        for tokens, acts in records:
            keys = _keys(tokens, self.normalize)
            for i, a in enumerate(acts):
                if a is None:
                    continue
                for k in orders:  # k tokens of left context
                    if i - k < 0:
                        break
                    key = tuple(keys[i - k : i + 1])
                    table = self.tables[k]
                    if a > table.get(key, float("-inf")):
                        table[key] = a
        return self

    def predict(self, tokens: Sequence[str]) -> list[float]:
        keys = _keys(tokens, self.normalize)
        out = []
        for i in range(len(keys)):
            value = 0.0
            lowest = 0 if self.backoff else self.n - 1
            for k in range(min(self.n - 1, i), lowest - 1, -1):  # longest context first
                hit = self.tables[k].get(tuple(keys[i - k : i + 1]))
                if hit is not None:
                    value = hit
                    break
            out.append(value)
        return out


@dataclass(frozen=True)
class Evaluation:
    """What is stored per neuron (table n2g_metrics)."""

    precision: float
    recall: float
    f1: float | None
    baseline_token_precision: float
    baseline_token_recall: float
    baseline_token_f1: float | None
    baseline_ngram_precision: float
    baseline_ngram_recall: float
    baseline_ngram_f1: float | None
    ev_correlation_score: float | None
    n_test_records: int
    n_test_tokens: int
    n_firing_tokens: int

    def to_json(self) -> dict:
        return asdict(self)


def evaluate(
    predicted: Sequences,
    test: Sequence[tuple[Sequence[str], Sequence[float | None]]],
    train: Sequence[tuple[Sequence[str], Sequence[float | None]]],
    a_max: float,
    fire_threshold: float = 0.5,
    ngram: int = 2,
) -> Evaluation:
    """Score N2G predictions (neuron units) on `test` and fit/score both baselines on `train`."""
    truth = [acts for _, acts in test]
    threshold = fire_threshold * a_max
    ours = fire_scores(truth, predicted, threshold)
    tok = TokenLookup().fit(train)
    ngr = NgramLookup(ngram).fit(train)
    tok_s = fire_scores(truth, [tok.predict(t) for t, _ in test], threshold)
    ngr_s = fire_scores(truth, [ngr.predict(t) for t, _ in test], threshold)
    kept_t, kept_p = [], []
    for t_seq, p_seq in zip(truth, predicted, strict=False):
        kept_t.append([t for t in t_seq if t is not None])
        kept_p.append([p for t, p in zip(t_seq, p_seq, strict=False) if t is not None])
    return Evaluation(
        precision=ours.precision,
        recall=ours.recall,
        f1=ours.f1,
        baseline_token_precision=tok_s.precision,
        baseline_token_recall=tok_s.recall,
        baseline_token_f1=tok_s.f1,
        baseline_ngram_precision=ngr_s.precision,
        baseline_ngram_recall=ngr_s.recall,
        baseline_ngram_f1=ngr_s.f1,
        ev_correlation_score=ev_correlation_score(kept_t, kept_p),
        n_test_records=len(test),
        n_test_tokens=sum(len(s) for s in kept_t),
        n_firing_tokens=ours.tp + ours.fn,
    )


# -- the evaluation protocol: per-neuron scores, aggregates, paired statistics --------------


@dataclass(frozen=True)
class NeuronScore:
    """One method on one neuron's test set. auprc is None without a firing token."""

    precision: float
    recall: float
    f1: float | None
    auprc: float | None
    ev_correlation: float | None
    tp: int
    fp: int
    fn: int


def auprc(truth: Sequences, predicted: Sequences, threshold: float) -> float | None:
    """Average precision of the predicted activation ranking firing tokens (no threshold on
    the prediction; ties share a rank, as in scikit-learn). None without a firing token."""
    from sklearn.metrics import average_precision_score

    labels, scores = [], []
    for t_seq, p_seq in zip(truth, predicted, strict=True):
        for t, p in zip(t_seq, p_seq, strict=True):
            if t is not None:
                labels.append(t >= threshold)
                scores.append(float(p or 0.0))
    if not any(labels):
        return None
    return float(average_precision_score(labels, scores))


def score_neuron(truth: Sequences, predicted: Sequences, threshold: float) -> NeuronScore:
    """Every per-neuron metric of one method (see the module docstring for conventions)."""
    fs = fire_scores(truth, predicted, threshold)
    kept_t, kept_p = [], []
    for t_seq, p_seq in zip(truth, predicted, strict=True):
        kept_t.append([t for t in t_seq if t is not None])
        kept_p.append([p for t, p in zip(t_seq, p_seq, strict=True) if t is not None])
    return NeuronScore(
        fs.precision,
        fs.recall,
        fs.f1,
        auprc(truth, predicted, threshold),
        ev_correlation_score(kept_t, kept_p),
        fs.tp,
        fs.fp,
        fs.fn,
    )


@dataclass(frozen=True)
class Reach:
    """How much of a held-out set's firing any method can find that fires only on tokens it
    saw fire in train (N2G without substitutes, whose activating nodes are train firing
    tokens, and the token lookups): `reachable` of the `firing` held-out tokens fired
    somewhere in train, `unseen` never occur in train at all. `ceiling_f1` is the F1 of
    such a method with perfect precision, 2r / (1 + r) for r = reachable / firing."""

    firing: int
    reachable: int
    unseen: int

    @property
    def ceiling_f1(self) -> float | None:
        if not self.firing:
            return None
        r = self.reachable / self.firing
        return 2 * r / (1 + r)


def reach(
    train: Records,
    held_out: Records,
    a_max: float,
    fire_threshold: float = 0.5,
    normalize: str = "none",
) -> Reach:
    """The `Reach` of `held_out` from `train` (token strings keyed as `normalize` says)."""
    limit = fire_threshold * a_max
    fired: set[str] = set()
    seen: set[str] = set()
    for tokens, acts in train:
        keys = _keys(tokens, normalize)
        seen.update(keys)
        fired.update(k for k, a in zip(keys, acts, strict=False) if a is not None and a >= limit)
    firing = reachable = unseen = 0
    for tokens, acts in held_out:
        for k, a in zip(_keys(tokens, normalize), acts, strict=False):
            if a is not None and a >= limit:
                firing += 1
                reachable += k in fired
                unseen += k not in seen
    return Reach(firing, reachable, unseen)


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def summarize(scores: Sequence[NeuronScore]) -> dict[str, float | int | None]:
    """Aggregates over neurons of one method: mean and median per-neuron F1 (neurons with an
    F1), pooled precision/recall/F1 (TP, FP, FN summed over neurons), mean per-neuron
    precision and recall (neurons that predict or have a firing token), mean AUPRC and mean
    ev_correlation (neurons where they are defined)."""
    f1s = [s.f1 for s in scores if s.f1 is not None]
    tp, fp, fn = (sum(getattr(s, k) for s in scores) for k in ("tp", "fp", "fn"))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {
        "neurons": len(scores),
        "scored": len(f1s),
        "mean_f1": float(np.mean(f1s)) if f1s else None,
        "median_f1": float(np.median(f1s)) if f1s else None,
        "pooled_f1": 2 * p * r / (p + r) if p + r else 0.0,
        "pooled_precision": p,
        "pooled_recall": r,
        "mean_precision": _mean([s.precision for s in scores if s.tp + s.fp]),
        "mean_recall": _mean([s.recall for s in scores if s.tp + s.fn]),
        "mean_auprc": _mean([s.auprc for s in scores]),
        "mean_ev_correlation": _mean([s.ev_correlation for s in scores]),
    }


@dataclass(frozen=True)
class PairedComparison:
    """method − baseline over neurons where both have the metric."""

    neurons: int
    mean_difference: float | None
    ci_low: float | None
    ci_high: float | None
    wilcoxon_p: float | None


def paired_comparison(
    ours: Sequence[float | None],
    theirs: Sequence[float | None],
    resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedComparison:
    """Paired bootstrap CI of the mean difference (neurons resampled with replacement,
    percentile interval) and the two-sided Wilcoxon signed-rank p-value (zero differences
    dropped; p = 1 when every difference is zero)."""
    from scipy.stats import wilcoxon

    if len(ours) != len(theirs):
        raise ValueError("paired comparison needs one value per neuron on both sides")
    diffs = np.asarray(
        [a - b for a, b in zip(ours, theirs, strict=True) if a is not None and b is not None],
        dtype=np.float64,
    )
    if diffs.size == 0:
        return PairedComparison(0, None, None, None, None)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, diffs.size, size=(resamples, diffs.size))
    means = diffs[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    if np.all(diffs == 0):
        p = 1.0
    else:
        p = float(wilcoxon(diffs, zero_method="wilcox", alternative="two-sided").pvalue)
    return PairedComparison(int(diffs.size), float(diffs.mean()), float(low), float(high), p)


def baselines(
    train: Records, a_max: float, fire_threshold: float = 0.5, normalize: str = "space"
) -> dict[str, TokenLookup | NgramLookup]:
    """Every baseline of the protocol fitted on `train` (N2G's own train records), exact and
    with N2G's key normalisation (`normalize`, suffix "+norm")."""
    out: dict[str, TokenLookup | NgramLookup] = {}
    for suffix, mode in (("", "none"), ("+norm", normalize)):
        out["token_max" + suffix] = TokenLookup("max", mode, a_max, fire_threshold).fit(train)
        out["token_rate" + suffix] = TokenLookup("rate", mode, a_max, fire_threshold).fit(train)
        out["bigram" + suffix] = NgramLookup(2, backoff=False, normalize=mode).fit(train)
        out["trigram" + suffix] = NgramLookup(3, backoff=False, normalize=mode).fit(train)
        out["trigram_backoff" + suffix] = NgramLookup(3, backoff=True, normalize=mode).fit(train)
    return out
