"""Top-token explanations: what a neuron fires on, read straight off its stored records.

Every neuron gets an explanation and a score even without OpenAI's data or an N2G graph: the
tokens on which the neuron reaches at least half its maximum in its training records, scored
by OpenAI's ev_correlation_score of a token-lookup simulation (each token predicted at the
largest activation seen for it in training) against held-out records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from neuronatlas.models.tokens import character_of
from neuronatlas.openai_scores import all_scores
from neuronatlas.store import AtlasWriter, open_reader, reader
from neuronatlas.store.reader import StoredRecord

log = logging.getLogger(__name__)

SOURCE = "top-tokens"
#: The stage's name, also its `runs` rows' (before the stage contract: explain-top-tokens).
STAGE_NAME = "explain"


@dataclass(frozen=True)
class TopTokenSettings:
    """Settings of the top-token explainer."""

    fire_fraction: float = 0.5
    """A token is listed when it reaches this fraction of the neuron's maximum activation."""
    max_tokens: int = 6
    """At most this many distinct tokens appear in the explanation."""
    categories: tuple[str, ...] = field(default=("top", "random"))
    """Record categories used; records alternate between training and held-out by rank."""


@dataclass
class TopTokenResult:
    text: str
    ev_correlation_score: float | None
    rsquared_score: float | None
    absolute_dev_explained_score: float | None


def _split(
    recs: Mapping[str, Sequence[StoredRecord]], categories: Iterable[str]
) -> tuple[list[StoredRecord], list[StoredRecord]]:
    """Even ranks train, odd ranks test, within each category (top records interleave)."""
    train: list[StoredRecord] = []
    test: list[StoredRecord] = []
    for cat in categories:
        for i, rec in enumerate(recs.get(cat, [])):
            (train if i % 2 == 0 else test).append(rec)
    return train, test


def _lookup(train: list[StoredRecord]) -> dict[str, float]:
    """Largest activation seen for each token string in training records, a character split
    over several tokens counting as that character on each of them (`character_of`)."""
    table: dict[str, float] = {}
    for rec in train:
        for tok, act in zip(character_of(rec.tokens), rec.activations, strict=False):
            if act is not None and act > table.get(tok, float("-inf")):
                table[tok] = act
    return table


def explain_records(
    recs: Mapping[str, Sequence[StoredRecord]], settings: TopTokenSettings = TopTokenSettings()
) -> TopTokenResult | None:
    """Explain one neuron from its records; None when it has no records.

    A neuron that never activates positively in its training records gets a plain statement
    of that with no score, so every neuron with records has an explanation.
    """
    train, test = _split(recs, settings.categories)
    table = _lookup(train)
    a_max = max((v for v in table.values()), default=None)
    if a_max is None:
        return None
    if a_max <= 0:
        return TopTokenResult(f"never fires (largest activation {a_max:.3g})", None, None, None)
    firing = sorted(
        ((act, tok) for tok, act in table.items() if act >= settings.fire_fraction * a_max),
        reverse=True,
    )
    shown: list[str] = []
    for _, tok in firing:
        label = tok.strip() or repr(tok)
        if label not in shown:
            shown.append(label)
        if len(shown) >= settings.max_tokens:
            break
    text = "fires on " + ", ".join(f"“{t}”" for t in shown)
    if test:
        default = 0.0
        truth = [[0.0 if a is None else a for a in rec.activations] for rec in test]
        pred = [[table.get(t, default) for t in character_of(rec.tokens)] for rec in test]
        ev, rsq, absdev = all_scores(truth, pred)
    else:
        ev = rsq = absdev = None
    return TopTokenResult(text, ev, rsq, absdev)


def explain_atlas(
    db: str | Path,
    settings: TopTokenSettings = TopTokenSettings(),
    overwrite: bool = False,
    batch: int = 512,
    progress: Callable[[int, int], None] | None = None,
    neurons: Collection[str] | None = None,
) -> int:
    """Write a top-token explanation for every neuron that lacks one; returns how many.

    `neurons`: rewrite exactly these neurons' explanations (whose records were repaired).
    """
    conn = open_reader(db)
    ids = reader.neuron_ids(conn)
    if neurons is not None:
        todo = [i for i in ids if i in neurons]
    else:
        done = set() if overwrite else reader.neurons_with_explanation(conn, SOURCE)
        todo = [i for i in ids if i not in done]
    written = 0
    with AtlasWriter(db) as writer:
        run = writer.begin_run(STAGE_NAME, settings.__dict__)
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            with writer.transaction():
                for nid in chunk:
                    res = explain_records(reader.records(conn, nid), settings)
                    if res is None:
                        continue
                    writer.write_explanations(
                        nid,
                        SOURCE,
                        [
                            (
                                res.text,
                                res.ev_correlation_score,
                                res.rsquared_score,
                                res.absolute_dev_explained_score,
                            )
                        ],
                    )
                    written += 1
            if progress:
                progress(min(start + batch, len(todo)), len(todo))
        writer.end_run(run)
    conn.close()
    log.info("wrote %d top-token explanations", written)
    return written
