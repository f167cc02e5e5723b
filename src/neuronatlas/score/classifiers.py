"""Delphi-style classification scorers, balanced accuracy = (TP/P + TN/N) / 2.

- `detection`: can the LLM, given the explanation, tell the neuron's held-out top excerpts
  from quiet random ones (no marks)?
- `fuzzing`: every excerpt has tokens marked «like this»; in held-out top excerpts the marks
  sit on the tokens where the neuron fires (≥ 0.3 of the excerpt's peak), in quiet random
  excerpts on as many random tokens. Does the LLM tell right marks from wrong ones?

Examples go 5 to a prompt, shuffled with a fixed seed; the answer is one line per example,
`Example N<TAB>1` (yes) or `Example N<TAB>0` (no). Two methods, stored with each score:
`logits` (a local model): the answer lines are written with `unknown` after each TAB and the
model's exact P(1) / (P(0) + P(1)) at each one decides (above 0.5 = yes; its AUROC is kept
too); `generation` (an endpoint): the model writes the lines (or a JSON list of 0/1) at
temperature 0. A batch whose answer does not parse is excluded and counted (never read as
zeros); fewer than half the examples answered, or a class with no answered example, gives no
score.
"""

from __future__ import annotations

import random
import re
from abc import abstractmethod
from typing import Any

import msgspec

from neuronatlas.errors import BadInput
from neuronatlas.explain.llm_explainer import ANSWER_PREFIX
from neuronatlas.explain.records import NEGATIVE_FRACTION, Excerpt, Splits
from neuronatlas.llm.client import ChatRequest, LLMClient
from neuronatlas.score.base import Scorer, ScoreResult, ScorerFactory, require

PER_PROMPT = 5
MAX_EACH = 10
SEED = 22

_LIST = re.compile(r"\[[^\[\]]*\]")


_LINE = re.compile(r"Example\s*(\d+)\s*[:\t]\s*([01])\b")


def parse_labels(answer: str, n: int) -> list[int] | None:
    """n labels 0/1 from `Example N<TAB>v` lines (every N from 1 to n present), else from the
    first JSON list if it holds exactly n values 0/1; None otherwise."""
    lines = {int(k): int(v) for k, v in _LINE.findall(answer)}
    if all(i in lines for i in range(1, n + 1)):
        return [lines[i] for i in range(1, n + 1)]
    m = _LIST.search(answer)
    if not m:
        return None
    try:
        values = msgspec.json.decode(m.group(0))
    except msgspec.DecodeError:
        return None
    if len(values) != n or any(v not in (0, 1) or isinstance(v, bool) for v in values):
        return None
    return [int(v) for v in values]


def balanced_accuracy(labels: list[int], predicted: list[int]) -> float:
    pos = [p for y, p in zip(labels, predicted, strict=True) if y == 1]
    neg = [p for y, p in zip(labels, predicted, strict=True) if y == 0]
    return 0.5 * (sum(pos) / len(pos) + (len(neg) - sum(neg)) / len(neg))


def _marked(tokens: list[str], marks: set[int]) -> str:
    return "".join(f"«{t}»" if i in marks else t for i, t in enumerate(tokens))


class ClassifierScorer(Scorer):
    question: str

    def __init__(self, llm: LLMClient):
        self.llm = llm
        self.concurrency = llm.concurrency

    @property
    def judge(self) -> str:
        return self.llm.model

    @abstractmethod
    def samples(self, splits: Splits) -> list[tuple[str, int]]:
        """(example text as shown, label 1/0)."""

    def score(self, text: str, splits: Splits) -> ScoreResult:
        samples = self.samples(splits)
        require(
            sum(y for _, y in samples) >= 2 and sum(1 - y for _, y in samples) >= 2,
            f"{self.name} needs 2 held-out top and 2 quiet random records",
        )
        random.Random(SEED).shuffle(samples)
        labels: list[int] = []
        predicted: list[int] = []
        p_yes: list[float] = []
        failed = 0
        logits = hasattr(self.llm, "value_distributions")
        for start in range(0, len(samples), PER_PROMPT):
            batch = samples[start : start + PER_PROMPT]
            request = self._request(text, batch)
            if logits:
                probs = self._by_logits(request, len(batch))
                known = [p for p in probs if p is not None]
                got = [int(p > 0.5) for p in known] if len(known) == len(probs) else None
            else:
                got = parse_labels(self.llm.chat(request).text, len(batch))
            if got is None:
                failed += len(batch)
                continue
            labels += [y for _, y in batch]
            predicted += got
            if logits:
                p_yes += [p for p in probs if p is not None]
        require(
            len(labels) * 2 >= len(samples) and 0 < sum(labels) < len(labels),
            f"{self.name}: only {len(labels)} of {len(samples)} examples answered usably",
        )
        details: dict[str, Any] = {
            "method": "logits" if logits else "generation",
            "metric": "balanced_accuracy",
            "examples": len(samples),
            "negative_rule": splits.negative_rule,
            "answered": len(labels),
            "failed": failed,
        }
        if logits:
            from neuronatlas.score.embedding import auroc

            details["auroc"] = auroc(
                [p for p, y in zip(p_yes, labels, strict=True) if y == 1],
                [p for p, y in zip(p_yes, labels, strict=True) if y == 0],
            )
        return ScoreResult(balanced_accuracy(labels, predicted), details)

    def _by_logits(self, request: ChatRequest, n: int) -> list[float | None]:
        """P(1) / (P(0) + P(1)) at each answer line, from the local model's logits."""
        answer = "\n".join(f"Example {i + 1}\tunknown" for i in range(n))
        slots = [answer.index("\tunknown", answer.index(f"Example {i + 1}")) + 1 for i in range(n)]
        dists = self.llm.value_distributions(request.as_messages(), answer, slots)  # type: ignore[attr-defined]
        out: list[float | None] = []
        for d in dists:
            out.append(None if d is None or d[0] + d[1] <= 0 else d[1] / (d[0] + d[1]))
        return out

    def _request(self, explanation: str, batch: list[tuple[str, int]]) -> ChatRequest:
        shown = "\n".join(f"Example {i + 1}: {t}" for i, (t, _) in enumerate(batch))
        ask = (
            f"A neuron of a language model was explained: {ANSWER_PREFIX} {explanation}.\n\n"
            f"{shown}\n\n{self.question} Answer with one line per example, in order: "
            "`Example N`, a TAB, then 1 for yes or 0 for no. Nothing else."
        )
        return ChatRequest(
            messages=(("system", "You check explanations of neurons."), ("user", ask)),
            max_tokens=8 * len(batch) + 8,
            temperature=0.0,
        )


class DetectionScorer(ClassifierScorer):
    name = "detection"
    question = "For each example: does the neuron respond to something in it?"

    def samples(self, splits: Splits) -> list[tuple[str, int]]:
        pos = [(e.text, 1) for e in splits.positives[:MAX_EACH]]
        return pos + [(e.text, 0) for e in splits.negatives[:MAX_EACH]]


class FuzzingScorer(ClassifierScorer):
    name = "fuzzing"
    question = (
        "In each example some tokens are marked «like this». For each example: are all the "
        "marked tokens what the neuron responds to?"
    )

    def samples(self, splits: Splits) -> list[tuple[str, int]]:
        pos = splits.positives[:MAX_EACH]
        marks = [_firing(e) for e in pos]
        n_marks = max(1, round(sum(len(m) for m in marks) / max(1, len(marks))))
        rng = random.Random(SEED)
        out = [(_marked(e.tokens, m), 1) for e, m in zip(pos, marks, strict=True)]
        for e in splits.negatives[:MAX_EACH]:
            wrong = set(rng.sample(range(len(e.tokens)), min(n_marks, len(e.tokens))))
            out.append((_marked(e.tokens, wrong), 0))
        return out


def _firing(e: Excerpt) -> set[int]:
    return {i for i, a in enumerate(e.activations) if a >= NEGATIVE_FRACTION * e.peak > 0}


def _factory(cls: type[ClassifierScorer]) -> ScorerFactory:
    def make(llm: LLMClient | None = None, embedder: str | None = None) -> Scorer:
        if llm is None:
            raise BadInput(f"--scorer {cls.name} needs --llm SPEC (e.g. local:smollm2)")
        return cls(llm)

    return make


#: The `detection` and `fuzzing` scorers of `score.registry`: both need `--llm`.
make_detection = _factory(DetectionScorer)
make_fuzzing = _factory(FuzzingScorer)
