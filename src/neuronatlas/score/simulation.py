"""The `simulation` scorer: OpenAI's simulator, all records at once, scored by
ev_correlation_score (Pearson correlation of true activations and simulated values, pooled
over every token of the held-out top and random records).

Three methods, stored with each score as details["method"] (never compare scores across
methods):
- `logits` (a local model): the assistant turn lists every token with `unknown` as its value;
  at each `unknown` the model's exact distribution over 0–10 gives the expected value;
- `logprobs` (an HTTP endpoint that returns logprobs, the default ask): the model answers a
  JSON object with one list of integers per record at temperature 0, and each integer is
  replaced by the expected value over the 0–10 alternatives the endpoint listed for the token
  that wrote it (see `expected_value` for the approximation). A slot whose token has no such
  alternatives keeps its integer and is counted in details["logprob_fallbacks"];
- `json` (an HTTP endpoint that gives no logprobs, or refuses to): the same answer, the
  integers themselves.
In the last two a record whose list has the wrong length or values outside 0–10 is excluded
and counted, never read as zeros.
"""

from __future__ import annotations

import logging
import math
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import msgspec

from neuronatlas.errors import LLMError, LLMRefused
from neuronatlas.explain.llm_explainer import ANSWER_PREFIX, FEW_SHOT
from neuronatlas.explain.records import Excerpt, Splits
from neuronatlas.llm.client import ChatRequest, ChatResponse, LLMClient, TokenLogprobs
from neuronatlas.openai_scores import ev_correlation_score
from neuronatlas.score.base import Scorer, ScoreResult, require

log = logging.getLogger(__name__)

RECORDS_EACH = 5
"""Held-out top records and random records simulated (OpenAI: 5 + 5)."""

TOP_LOGPROBS = 10
"""Alternatives asked for per generated token (OpenAI allows 20): the eleven values 0–10
rarely all carry mass, and fewer alternatives keep the cached answers small."""

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

    def __init__(self, llm: LLMClient, top_logprobs: int = TOP_LOGPROBS):
        self.llm = llm
        self.concurrency = llm.concurrency
        self.top_logprobs = top_logprobs
        #: Set once the endpoint rejected a request with logprobs and answered one without:
        #: later neurons skip the doomed first try.
        self.refuses_logprobs = False

    @property
    def judge(self) -> str:
        return self.llm.model

    @property
    def method(self) -> str:
        """The method asked for. `logprobs` may still come back as `json` (an endpoint that
        ignores the ask): each score's details say which method produced it."""
        if hasattr(self.llm, "value_distributions"):
            return "logits"
        return "logprobs" if self.top_logprobs > 0 and not self.refuses_logprobs else "json"

    def score(self, text: str, splits: Splits) -> ScoreResult:
        records = simulation_records(splits)
        require(
            len(splits.positives) >= 1 and len(records) >= 2,
            "the simulation scorer needs held-out top records and random records",
        )
        if self.method == "logits":
            sim = self._by_logits(text, records)
        else:
            sim = self._by_answer(text, records)
        n_tokens = sum(len(r.tokens) for r in records)
        n_kept = sum(len(p) for p in sim.predicted)
        require(
            n_kept * 2 >= n_tokens,
            f"simulation: only {n_kept} of {n_tokens} token predictions usable "
            f"({sim.failed} failed)",
        )
        score = ev_correlation_score(sim.truth, sim.predicted)
        require(
            score is not None, "simulation: constant truth or prediction, correlation undefined"
        )
        assert score is not None  # require() above raised otherwise
        return ScoreResult(
            float(score),
            {
                "method": sim.method,
                "records": len(records),
                "tokens_requested": n_tokens,
                "tokens_scored": n_kept,
                "failed": sim.failed,
                **sim.extra,
            },
        )

    def _by_logits(self, text: str, records: list[Excerpt]) -> _Simulated:
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
        return _Simulated("logits", truth, predicted, failed)

    def _by_answer(self, text: str, records: list[Excerpt]) -> _Simulated:
        """Predictions from the JSON answer: expected values where the answer came with
        logprobs (`logprobs`), its integers otherwise (`json`). A record whose list is
        malformed is excluded, its tokens counted as failed."""
        resp = self._ask(self._request(text, records))
        lists = _answer_lists(resp.text)
        reader = _LogprobReader.of(resp)
        truth: list[list[float]] = []
        predicted: list[list[float]] = []
        failed = 0
        for i, r in enumerate(records):
            got: Any = lists[i] if isinstance(lists, list) and i < len(lists) else None
            if not _well_formed(got, len(r.tokens)):  # a whole record excluded
                failed += len(r.tokens)
                continue
            truth.append(r.activations)
            predicted.append([float(v) for v in got] if reader is None else reader.record(i, got))
        if reader is None:
            return _Simulated("json", truth, predicted, failed)
        return _Simulated(
            "logprobs", truth, predicted, failed, {"logprob_fallbacks": reader.fallbacks}
        )

    def _request(self, text: str, records: list[Excerpt]) -> ChatRequest:
        """The JSON ask: every record's tokens, one list of integers per record wanted."""
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
        return ChatRequest(
            messages=(("system", SYSTEM), ("user", ask)),
            max_tokens=8 * sum(len(r.tokens) for r in records) + 50,
            temperature=0.0,
            json_mode=True,
            top_logprobs=0 if self.method == "json" else self.top_logprobs,
        )

    def _ask(self, request: ChatRequest) -> ChatResponse:
        """The answer; an endpoint that rejects the logprobs ask (some models do, with a 400)
        is asked once more without them, and never again with them by this scorer."""
        try:
            return self.llm.chat(request)
        except LLMRefused:
            if not request.alternatives:
                raise
            resp = self.llm.chat(msgspec.structs.replace(request, top_logprobs=msgspec.UNSET))
            if not self.refuses_logprobs:
                log.warning("%s refused logprobs: simulating by JSON", self.llm.endpoint)
            self.refuses_logprobs = True
            return resp


@dataclass
class _Simulated:
    """What one simulation produced: the kept true and predicted values, record by record."""

    method: str
    truth: list[list[float]]
    predicted: list[list[float]]
    failed: int
    extra: dict[str, int] = field(default_factory=dict)


def _answer_lists(text: str) -> Any:
    try:
        return msgspec.json.decode(text)["records"]
    except (msgspec.DecodeError, KeyError, TypeError) as exc:
        raise LLMError(f"simulation: the answer is not the JSON asked for ({exc})") from exc


def _well_formed(got: Any, n_tokens: int) -> bool:
    """One integer 0–10 per token (the same test for the `json` and `logprobs` methods)."""
    return (
        isinstance(got, list)
        and len(got) == n_tokens
        and all(isinstance(v, int) and 0 <= v <= 10 for v in got)
    )


Span = tuple[int, int]
"""[start, end) character offsets of a number in the answer text."""

_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def number_spans(text: str) -> list[Span]:
    """Where each number of a JSON text is written, in order (digits inside strings are not
    numbers: strings are blanked first). msgspec has decoded the text already; this only
    finds offsets, and `_LogprobReader` trusts them only when they spell the decoded values."""
    blanked = _STRING.sub(lambda m: " " * len(m.group()), text)
    return [m.span() for m in _NUMBER.finditer(blanked)]


def _flat_numbers(value: Any) -> list[Any]:
    """Every number of a decoded JSON value in document order (bools are not numbers)."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in _flat_numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _flat_numbers(v)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value]
    return []


_VALUE = re.compile(r"10|[0-9]")


def expected_value(token: TokenLogprobs, value: int) -> float | None:
    """The expected value 0–10 at the token that began writing the integer `value`: over the
    token's listed alternatives whose text, stripped of whitespace, is an integer 0–10, their
    probabilities renormalised over those. None when no alternative is one.

    The generated token itself counts as `value`, the integer it began ("1" followed by "0"
    counts 10). Any other alternative counts as the integer it spells: an alternative "1"
    counts 1 although the model might have continued it to "10". That is the approximation of
    reading one token's alternatives: exact for tokenizers with a token "10", a slight
    undercount of 10 for tokenizers that write digits one at a time.
    """
    weights: list[tuple[float, float]] = []
    for alt, logprob in token.top:
        if _VALUE.fullmatch(alt.strip()) is None or math.isnan(logprob):
            continue
        weights.append((float(value if alt == token.token else int(alt.strip())), logprob))
    if not weights:
        return None
    top = max(lp for _, lp in weights)
    ps = [(v, math.exp(lp - top)) for v, lp in weights]
    return sum(v * p for v, p in ps) / sum(p for _, p in ps)


class _LogprobReader:
    """An answer's generated tokens by character offset, and the expected value at each of its
    integers. Counts the slots that fell back to the integer."""

    def __init__(self, text: str, tokens: list[TokenLogprobs]):
        self.tokens = tokens
        self.starts: list[int] = []
        pos = 0
        for t in tokens:
            self.starts.append(pos)
            pos += len(t.token)
        self.spans = _record_spans(text)
        self.fallbacks = 0

    @classmethod
    def of(cls, resp: ChatResponse) -> _LogprobReader | None:
        """A reader, or None when the answer came without logprobs, or with tokens that do not
        spell its text (then no offset can be trusted)."""
        if not resp.logprobs or "".join(t.token for t in resp.logprobs) != resp.text:
            return None
        return cls(resp.text, resp.logprobs)

    def record(self, index: int, values: list[int]) -> list[float]:
        """Expected values for record `index` of the answer, whose integers are `values`."""
        spans = self._record_spans(index, len(values))
        out = []
        for span, v in zip(spans, values, strict=True):
            ev = self._at(span, v) if span is not None else None
            if ev is None:
                self.fallbacks += 1
                ev = float(v)
            out.append(ev)
        return out

    def _record_spans(self, index: int, n: int) -> list[Span | None]:
        got = self.spans[index] if self.spans is not None and index < len(self.spans) else None
        return [None] * n if got is None or len(got) != n else list(got)

    def _at(self, span: Span, value: int) -> float | None:
        """The expected value at the token holding the integer's first character, when that
        token has only whitespace before it (so its alternatives are values, not ',5')."""
        start = span[0]
        i = bisect_right(self.starts, start) - 1
        if i < 0:
            return None
        token = self.tokens[i]
        before = token.token[: start - self.starts[i]]
        if start >= self.starts[i] + len(token.token) or before.strip():
            return None
        return expected_value(token, value)


def _record_spans(text: str) -> list[list[Span]] | None:
    """The spans of each record's integers, or None when the text's numbers do not line up
    one to one with the decoded values (a key besides "records" holding numbers, say)."""
    decoded = msgspec.json.decode(text)
    spans = number_spans(text)
    numbers = _flat_numbers(decoded)
    records = decoded.get("records") if isinstance(decoded, dict) else None
    if len(spans) != len(numbers) or not isinstance(records, list):
        return None
    if any(float(text[a:b]) != float(v) for (a, b), v in zip(spans, numbers, strict=True)):
        return None
    out: list[list[Span]] = []
    at = 0
    for rec in records:
        n = len(_flat_numbers(rec))
        flat_ints = isinstance(rec, list) and all(type(v) in (int, float) for v in rec)
        out.append(spans[at : at + n] if flat_ints else [])
        at += n
    return out


def make_scorer(llm: LLMClient | None = None, embedder: str | None = None) -> Scorer:
    """The `simulation` scorer of `score.registry`: it needs `--llm`; the embedder is unused."""
    from neuronatlas.errors import BadInput

    if llm is None:
        raise BadInput("--scorer simulation needs --llm SPEC (e.g. local:smollm2)")
    return SimulationScorer(llm)  # HTTP clients ask for logprobs (TOP_LOGPROBS)
