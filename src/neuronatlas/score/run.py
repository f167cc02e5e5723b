"""Scoring the explanations stored in an atlas (`score_neurons`) or a given text
(`score_text`, nothing stored)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from neuronatlas.explain.records import split_records
from neuronatlas.ids import canonical
from neuronatlas.score.base import Scorer, ScoreResult
from neuronatlas.store import AtlasWriter, open_reader, reader
from neuronatlas.store import llm as store_llm


@dataclass
class ScoreReport:
    scored: list[tuple[str, str, float]] = field(default_factory=list)
    """(neuron id, source, score) written."""
    already: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    """(neuron id, source, why): named on stderr, nothing stored."""
    seconds: float = 0.0
    judge: str = ""
    """The scorer's judge (its LLM or embedder), as stored with each score."""


def _neuron_splits(db: str | Path, neuron_id: str):
    conn = open_reader(db, check_same_thread=False)
    try:
        return split_records(reader.records(conn, neuron_id))
    finally:
        conn.close()


def score_neurons(
    db: str | Path,
    scorer: Scorer,
    neurons: Sequence[str] | None = None,
    layer: int | None = None,
    all_: bool = False,
    max_neurons: int | None = None,
    overwrite: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> ScoreReport:
    """Score every stored explanation of the chosen neurons with `scorer` and store the
    scores; explanations already scored by this scorer and judge are skipped."""
    started = time.monotonic()
    report = ScoreReport(judge=scorer.judge)
    conn = open_reader(db)
    targets = reader.select_neurons(conn, neurons, layer, all_)
    explanations = store_llm.explanations_of(conn, targets)
    done = set()
    if reader.has_table(conn, "explanation_scores") and not overwrite:
        done = store_llm.scored_pairs(conn, scorer.name, scorer.judge)
    conn.close()
    by_neuron: dict[str, list[store_llm.ExplanationText]] = {}
    for e in explanations:
        if e.id in done:
            report.already += 1
        else:
            by_neuron.setdefault(e.neuron_id, []).append(e)
    todo = [n for n in targets if n in by_neuron][:max_neurons]
    total = len(todo)

    def work(nid: str) -> list[ScoreResult | str]:
        items = by_neuron[nid]
        return scorer.score_many([e.text.strip() for e in items], _neuron_splits(db, nid))

    with AtlasWriter(db) as writer:
        run = writer.begin_run("score", {"scorer": scorer.name, "judge": scorer.judge})
        with ThreadPoolExecutor(max_workers=max(1, scorer.concurrency)) as pool:
            for i, (nid, results) in enumerate(zip(todo, pool.map(work, todo), strict=True)):
                rows = []
                for e, res in zip(by_neuron[nid], results, strict=True):
                    if isinstance(res, str):
                        report.failed.append((nid, e.source, res))
                        continue
                    rows.append((e.id, scorer.name, scorer.judge, res.score, res.details, run))
                    report.scored.append((nid, e.source, res.score))
                store_llm.write_scores(writer.conn, rows)
                if progress:
                    progress(nid, i + 1, total)
        writer.end_run(run, "partial" if report.failed else "done")
    report.seconds = time.monotonic() - started
    return report


def score_text(db: str | Path, neuron_id: str, text: str, scorer: Scorer) -> dict:
    """Score `text` as an explanation of one neuron, storing nothing.

    Returns {neuron_id, text, scorer, judge, score, details}; raises ScoringFailed (or
    LLMError) when no honest score exists.
    """
    nid = canonical(neuron_id)
    conn = open_reader(db)
    try:
        reader.neuron(conn, nid, records_per_category=0)  # NeuronNotFound when absent
    finally:
        conn.close()
    res = scorer.score(text.strip(), _neuron_splits(db, nid))
    return {
        "neuron_id": nid,
        "text": text,
        "scorer": scorer.name,
        "judge": scorer.judge,
        "score": res.score,
        "details": res.details,
    }
