"""Explanations in words written by an LLM, on OpenAI's explainer pattern.

The prompt (our own wording and few-shot example): a system message on the record format; one
worked example neuron; then the target neuron's top records (the explainer split of
`explain.records`) as `token<TAB>value` lines scaled 0–10 over the records shown, a zero-free
repeat when fewer than 20 % of the values are non-zero, the strongest tokens listed, and the
user turn ending in "the main thing this neuron does is find", which the answer continues.
The answer's first sentence is the explanation, stored with source `llm:<model>` and its
provenance (model, endpoint, prompt digest, settings, usage). A call that fails, or an answer
with nothing usable, is reported and left for the next run; it is never stored.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from neuronatlas.errors import LLMError, NeuronAtlasError
from neuronatlas.explain.records import Splits, format_block, scaled, split_records
from neuronatlas.llm.client import ChatRequest, LLMClient, Usage
from neuronatlas.store import AtlasWriter, open_reader, reader
from neuronatlas.store import llm as store_llm

log = logging.getLogger(__name__)

PROMPT_VERSION = "explain-v1"
ANSWER_PREFIX = "the main thing this neuron does is find"

SYSTEM = (
    "You study the neurons of a language model. Each neuron responds to one particular kind "
    "of thing in a text. You are shown short texts one token per line: the token, a TAB, and "
    "how strongly the neuron responds to that token, from 0 (not at all) to 10 (its strongest "
    "response). Say in a few words what the neuron responds to: name the pattern, do not list "
    "the tokens one by one."
)

#: A worked example in our own words: a neuron for days of the week.
FEW_SHOT = (
    (
        [
            ["The", " meeting", " moved", " to", " Tuesday", " after", " the", " holiday", "."],
            ["See", " you", " on", " Friday", " or", " maybe", " Saturday", " night", "."],
        ],
        [[0, 0, 0, 0, 10, 0, 0, 0, 0], [0, 0, 0, 9, 0, 0, 7, 0, 0]],
        "names of the days of the week",
    ),
)

#: The stage's name, also its `runs` rows' (before the stage contract: explain-llm).
STAGE_NAME = "llm"


@dataclass(frozen=True)
class ExplainerSettings:
    """How explanations are asked for (stored with each one)."""

    max_tokens: int = 60
    temperature: float = 0.0
    """0 = greedy: the same prompt gives the same explanation (and the cache holds it)."""
    seed: int = 0
    strongest: int = 6
    """Distinct strongest tokens listed after the records."""
    version: str = PROMPT_VERSION


def _neuron_section(
    index: int, blocks: list[tuple[list[str], list[int]]], strongest: list[str]
) -> str:
    values = [v for _, vals in blocks for v in vals]
    parts = [f"Neuron {index}", "Activations:"]
    parts += [format_block(toks, vals) for toks, vals in blocks]
    if values and sum(v > 0 for v in values) < 0.2 * len(values):
        parts.append("Same activations, but with all zeros filtered out:")
        parts += [format_block(toks, vals, skip_zeros=True) for toks, vals in blocks]
    if strongest:
        parts.append("Strongest tokens: " + ", ".join(f"“{t}”" for t in strongest))
    parts.append("")
    parts.append(f"Explanation of neuron {index} behavior: {ANSWER_PREFIX}")
    return "\n".join(parts)


def _strongest(blocks: list[tuple[list[str], list[int]]], k: int) -> list[str]:
    ranked = sorted(
        ((v, t) for toks, vals in blocks for t, v in zip(toks, vals, strict=True) if v > 0),
        key=lambda x: -x[0],
    )
    out: list[str] = []
    for _, tok in ranked:
        if tok not in out:
            out.append(tok)
        if len(out) >= k:
            break
    return out


def explainer_request(splits: Splits, settings: ExplainerSettings) -> ChatRequest:
    """The chat request that asks for one neuron's explanation."""
    messages: list[tuple[str, str]] = [("system", SYSTEM)]
    for i, (tokens, values, answer) in enumerate(FEW_SHOT, start=1):
        blocks = list(zip(tokens, values, strict=True))
        messages.append(
            ("user", _neuron_section(i, blocks, _strongest(blocks, settings.strongest)))
        )
        messages.append(("assistant", f"{answer}."))
    a_max = max((e.peak for e in splits.train), default=0.0)
    blocks = [(e.tokens, scaled(e.activations, a_max)) for e in splits.train]
    target = _neuron_section(len(FEW_SHOT) + 1, blocks, _strongest(blocks, settings.strongest))
    messages.append(("user", target))
    return ChatRequest(
        messages=tuple(messages),
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        seed=settings.seed,
    )


_PREFIX = re.compile(r"^\W*(the main thing this neuron does is find)\W*", re.IGNORECASE)


def parse_explanation(answer: str) -> str:
    """The explanation in an answer: its first sentence, without an echoed prefix or the final
    period. Raises LLMError when nothing usable is left."""
    text = answer.strip()
    text = _PREFIX.sub("", text)
    text = text.split("\n", 1)[0].strip()
    text = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].strip()
    text = text.strip("\"'“”` ").rstrip(".").strip()
    if len(text) > 200:
        text = text[:200].rsplit(" ", 1)[0]
    if len(re.findall(r"\w", text)) < 2:
        raise LLMError(f"the answer holds no explanation: {answer[:120]!r}")
    return text


def explain_one(client: LLMClient, splits: Splits, settings: ExplainerSettings):
    """(explanation, prompt digest, usage of this call) for one neuron's records."""
    request = explainer_request(splits, settings)
    resp = client.chat(request)
    try:
        text = parse_explanation(resp.text)
    except LLMError:
        client.forget(request)  # not kept: the next run asks again
        raise
    return text, client.digest(request), resp.usage


def llm_source(client: LLMClient) -> str:
    return f"llm:{client.model}"


@dataclass
class ExplainReport:
    done: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(neuron id, why): named on stderr, left for the next run."""
    not_started: list[str] = field(default_factory=list)
    """Left because the budget (--max-cost) ran out."""
    usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0


def explain_neurons(
    db: str | Path,
    client: LLMClient,
    neurons: Sequence[str] | None = None,
    layer: int | None = None,
    all_: bool = False,
    max_neurons: int | None = None,
    max_cost: float | None = None,
    overwrite: bool = False,
    settings: ExplainerSettings | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ExplainReport:
    """Write an LLM explanation for each chosen neuron that lacks one from this model.

    Calls run `client.concurrency` at a time; each answer is written as it arrives, so an
    interrupted run keeps what it got and the next run starts where it stopped.
    """
    settings = settings or ExplainerSettings()
    source = llm_source(client)
    started = time.monotonic()
    report = ExplainReport()
    conn = open_reader(db)
    targets = reader.select_neurons(conn, neurons, layer, all_)
    have = set() if overwrite else reader.neurons_with_explanation(conn, source)
    report.already = [t for t in targets if t in have]
    todo = [t for t in targets if t not in have]
    if max_neurons is not None:
        todo = todo[:max_neurons]
    conn.close()
    total = len(todo)
    with AtlasWriter(db) as writer:
        run = writer.begin_run(STAGE_NAME, {"llm": source, **asdict(settings)})

        def work(nid: str):
            c = open_reader(db, check_same_thread=False)
            try:
                splits = split_records(reader.records(c, nid))
            finally:
                c.close()
            if not splits.train or splits.max_activation <= 0:
                raise LLMError("no top records with a positive activation to explain")
            return explain_one(client, splits, settings)

        pending = list(reversed(todo))
        running: dict[Future, str] = {}
        with ThreadPoolExecutor(max_workers=client.concurrency) as pool:
            while pending or running:
                while pending and len(running) < client.concurrency:
                    if max_cost is not None and (client.usage.cost or 0.0) >= max_cost:
                        report.not_started = list(reversed(pending))
                        pending = []
                        break
                    nid = pending.pop()
                    running[pool.submit(work, nid)] = nid
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    nid = running.pop(fut)
                    try:
                        text, digest, usage = fut.result()
                    except NeuronAtlasError as exc:
                        report.failed.append((nid, str(exc)))
                    else:
                        store_llm.write_llm_explanation(
                            writer.conn,
                            nid,
                            source,
                            text,
                            store_llm.Provenance(
                                model=client.model,
                                endpoint=client.endpoint,
                                prompt_digest=digest,
                                settings=asdict(settings),
                                usage=usage,
                            ),
                            run,
                        )
                        report.done.append(nid)
                    if progress:
                        progress(nid, len(report.done) + len(report.failed), total)
        partial = report.failed or report.not_started
        writer.end_run(run, "partial" if partial else "done")
    report.usage = client.usage
    report.seconds = time.monotonic() - started
    return report
