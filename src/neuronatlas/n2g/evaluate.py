"""Evaluation of a graph on held-out records, against two lookup baselines.

A token *fires* when its activation is at least `fire_threshold × a_max` (a_max = the neuron's
maximum stored activation), for the truth and for a prediction alike. Precision, recall and F1
are computed over all held-out tokens pooled (micro-averaged within the neuron):
precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R). A precision or recall
with a zero denominator is 0 (scikit-learn's zero_division=0), except that F1 is None when the
held-out text has no firing token and nothing is predicted to fire (nothing to score).

Baselines, fitted on the same train records the graph was built from:
- token lookup: the highest activation seen for each exact token string; unseen tokens 0;
- n-gram lookup: the highest activation seen after the same n−1 preceding tokens, backing off
  to shorter contexts and finally to the token lookup.

ev_correlation_score is OpenAI's: Pearson correlation over all held-out tokens flattened into
one list (neuronatlas.explain.scoring).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from neuronatlas.explain.scoring import ev_correlation_score

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


class TokenLookup:
    """Baseline: max activation per exact token string seen in training."""

    def __init__(self) -> None:
        self.table: dict[str, float] = {}

    def fit(self, records: Sequence[tuple[Sequence[str], Sequence[float | None]]]) -> TokenLookup:
        table = self.table
        for tokens, acts in records:
            for tok, a in zip(tokens, acts, strict=False):
                if a is not None and a > table.get(tok, float("-inf")):
                    table[tok] = a
        return self

    def predict(self, tokens: Sequence[str]) -> list[float]:
        return [self.table.get(t, 0.0) for t in tokens]


class NgramLookup:
    """Baseline: max activation per (n−1 preceding tokens, token), with back-off."""

    def __init__(self, n: int = 2) -> None:
        if n < 1:
            raise ValueError("n-gram order must be ≥ 1")
        self.n = n
        self.tables: list[dict[tuple[str, ...], float]] = [{} for _ in range(n)]

    def fit(self, records: Sequence[tuple[Sequence[str], Sequence[float | None]]]) -> NgramLookup:
        for tokens, acts in records:
            for i, a in enumerate(acts):
                if a is None:
                    continue
                for k in range(self.n):  # k tokens of left context
                    if i - k < 0:
                        break
                    key = tuple(tokens[i - k : i + 1])
                    table = self.tables[k]
                    if a > table.get(key, float("-inf")):
                        table[key] = a
        return self

    def predict(self, tokens: Sequence[str]) -> list[float]:
        out = []
        for i in range(len(tokens)):
            value = 0.0
            for k in range(min(self.n - 1, i), -1, -1):  # longest context first
                hit = self.tables[k].get(tuple(tokens[i - k : i + 1]))
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
