"""The `simulation` scorer: OpenAI's simulator, all records at once, scored by
ev_correlation_score (Pearson correlation of true activations and simulated values, pooled
over every token of the held-out top and random records).

Two methods, stored with each score (never compare scores across methods):
- `logits` (a local model): the assistant turn lists every token with `unknown` as its value;
  at each `unknown` the model's exact distribution over 0–10 gives the expected value;
- `json` (an HTTP endpoint): the model answers a JSON object with one list of integers per
  record at temperature 0. A record whose list has the wrong length or values outside 0–10
  is excluded and counted, never read as zeros.
"""

from __future__ import annotations

from typing import Any

import msgspec

from neuronatlas.errors import LLMError
from neuronatlas.explain.llm_explainer import ANSWER_PREFIX, FEW_SHOT
from neuronatlas.explain.records import Excerpt, Splits
from neuronatlas.explain.scoring import ev_correlation_score
from neuronatlas.llm.client import ChatRequest, LLMClient
from neuronatlas.score.base import Scorer, ScoreResult, register_scorer, require

RECORDS_EACH = 5
"""Held-out top records and random records simulated (OpenAI: 5 + 5)."""

SYSTEM = (
    "You predict how a neuron of a language model responds to each token of a text, from an "
    "explanation of what the neuron looks for. Texts are written one token per line: the "
    "token, a TAB, and the response from 0 (none) to 10 (strongest). `unknown` marks a value "
    "still to predict. Most values are 0."
)


def _lines(tokens: list[str], values: list[str]) -> str:
    body = "\n".join(f"{t}\t{v}" for t, v in zip(tokens, values, strict=True))
    return f"<start>\n{body}\n<end>"


def _messages(explanation: str) -> list[dict[str, str]]:
    """System, the worked example (values revealed after its first tokens), the target's turn."""
    msgs = [{"role": "system", "content": SYSTEM}]
    tokens, values, answer = FEW_SHOT[0]
    msgs.append({"role": "user", "content": f"Neuron 1\nExplanation: {ANSWER_PREFIX} {answer}"})
    shown = [
        _lines(toks, ["unknown" if i < 2 else str(v) for i, v in enumerate(vals)])
        for toks, vals in zip(tokens, values, strict=True)
    ]
    msgs.append({"role": "assistant", "content": "Activations:\n" + "\n".join(shown)})
    msgs.append(
        {"role": "user", "content": f"Neuron 2\nExplanation: {ANSWER_PREFIX} {explanation}"}
    )
    return msgs


def simulation_records(splits: Splits) -> list[Excerpt]:
    return splits.positives[:RECORDS_EACH] + splits.randoms[:RECORDS_EACH]


class SimulationScorer(Scorer):
    name = "simulation"
    needs_llm = True

    def __init__(self, llm: LLMClient):
        self.llm = llm
        self.concurrency = llm.concurrency

    @property
    def judge(self) -> str:
        return self.llm.model

    @property
    def method(self) -> str:
        return "logits" if hasattr(self.llm, "value_distributions") else "json"

    def score(self, text: str, splits: Splits) -> ScoreResult:
        records = simulation_records(splits)
        require(
            len(splits.positives) >= 1 and len(records) >= 2,
            "the simulation scorer needs held-out top records and random records",
        )
        if self.method == "logits":
            truth, pred, failed = self._by_logits(text, records)
        else:
            truth, pred, failed = self._by_json(text, records)
        n_tokens = sum(len(r.tokens) for r in records)
        n_kept = sum(len(p) for p in pred)
        require(
            n_kept * 2 >= n_tokens,
            f"simulation: only {n_kept} of {n_tokens} token predictions usable ({failed} failed)",
        )
        score = ev_correlation_score(truth, pred)
        require(
            score is not None, "simulation: constant truth or prediction, correlation undefined"
        )
        assert score is not None  # require() above raised otherwise
        return ScoreResult(
            float(score),
            {
                "method": self.method,
                "records": len(records),
                "tokens_requested": n_tokens,
                "tokens_scored": n_kept,
                "failed": failed,
            },
        )

    def _by_logits(self, text: str, records: list[Excerpt]):
        """Expected values from the local model's exact 0–10 distributions; failed slots are
        dropped with their true value (a record keeps its usable tokens only)."""
        answer = "Activations:\n" + "\n".join(
            _lines(r.tokens, ["unknown"] * len(r.tokens)) for r in records
        )
        slots = []
        pos = 0
        for r in records:
            for _ in r.tokens:
                pos = answer.index("\tunknown", pos) + 1
                slots.append(pos)
        dists = self.llm.value_distributions(_messages(text), answer, slots)  # type: ignore[attr-defined]
        truth: list[list[float]] = []
        predicted: list[list[float]] = []
        failed = 0
        i = 0
        for r in records:
            kept_true, kept_ev = [], []
            for a in r.activations:
                d = dists[i]
                i += 1
                if d is None:  # a token straddles the slot: excluded and counted
                    failed += 1
                    continue
                kept_true.append(a)
                kept_ev.append(sum(v * p for v, p in enumerate(d)))
            truth.append(kept_true)
            predicted.append(kept_ev)
        return truth, predicted, failed

    def _by_json(self, text: str, records: list[Excerpt]):
        """Integer predictions in a JSON object; a record that does not parse is excluded."""
        listing = "\n".join(
            f"Record {i + 1}: " + msgspec.json.encode(r.tokens).decode()
            for i, r in enumerate(records)
        )
        ask = (
            f"Explanation of the neuron: {ANSWER_PREFIX} {text}\n\n"
            f"Records, each a JSON list of tokens:\n{listing}\n\n"
            'Answer with one JSON object {"records": [[v, v, ...], ...]}: for each record in '
            "order, one integer from 0 to 10 per token, as many integers as the record has tokens."
        )
        request = ChatRequest(
            messages=(("system", SYSTEM), ("user", ask)),
            max_tokens=8 * sum(len(r.tokens) for r in records) + 50,
            temperature=0.0,
            json_mode=True,
        )
        resp = self.llm.chat(request)
        try:
            lists = msgspec.json.decode(resp.text)["records"]
        except (msgspec.DecodeError, KeyError, TypeError) as exc:
            raise LLMError(f"simulation: the answer is not the JSON asked for ({exc})") from exc
        truth: list[list[float]] = []
        predicted: list[list[float]] = []
        failed = 0
        for i, r in enumerate(records):
            got: Any = lists[i] if isinstance(lists, list) and i < len(lists) else None
            ok = (
                isinstance(got, list)
                and len(got) == len(r.tokens)
                and all(isinstance(v, int) and 0 <= v <= 10 for v in got)
            )
            if ok:
                truth.append(r.activations)
                predicted.append([float(v) for v in got])
            else:  # a whole record excluded: its tokens count as failed
                failed += len(r.tokens)
        return truth, predicted, failed


def _factory(llm=None, embedder=None) -> Scorer:
    from neuronatlas.errors import BadInput

    if llm is None:
        raise BadInput("--scorer simulation needs --llm SPEC (e.g. local:smollm2)")
    return SimulationScorer(llm)


register_scorer("simulation", _factory)
