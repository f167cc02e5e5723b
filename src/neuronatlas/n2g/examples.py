"""Examples for N2G, read from the store, and a de-duplicated train/test split.

Records hold token *strings*. The model needs ids, so `VocabIndex` inverts the model's own
token-string function (`LoadedModel.token_strings`, the function the scraper wrote them with)
over the whole vocabulary: a string that belongs to exactly one id maps back exactly. A few
strings are shared by several ids (byte-level pieces of a split UTF-8 character all display as
U+FFFD; SentencePiece's byte-fallback pieces display like the characters they encode). A
shared string resolves to the id the tokenizer itself produces for it; a record with split
UTF-8 pieces is not used for model passes rather than guessed at (it is still evaluated, since
evaluation needs only strings).

The split: records of all categories are grouped so that two records sharing any run of
`shingle` tokens (overlapping windows of one document, repeated boilerplate) land in the same
group; whole groups go to train or test, in a seeded random order, until the train side holds
`train_fraction` of the top records (and of the other records). Graphs are built from train top
records (plus quantile records that reach the trie threshold); baselines are fitted on every
train record; evaluation uses the test top and random records.
"""

from __future__ import annotations

import logging
import random
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

from neuronatlas.n2g.settings import N2GSettings
from neuronatlas.store import reader

log = logging.getLogger(__name__)


@dataclass
class Rec:
    """One stored record of one neuron."""

    category: str
    rank: int
    tokens: list[str]
    acts: list[float | None]

    @property
    def peak(self) -> tuple[float, int]:
        best, where = float("-inf"), -1
        for i, a in enumerate(self.acts):
            if a is not None and a > best:
                best, where = a, i
        return best, where

    def pair(self) -> tuple[list[str], list[float | None]]:
        return self.tokens, self.acts


@dataclass
class NeuronExamples:
    """A neuron's records split for building (train) and scoring (test)."""

    neuron_id: str
    layer: int
    neuron: int
    a_max: float
    build: list[Rec] = field(default_factory=list)
    train: list[Rec] = field(default_factory=list)
    test: list[Rec] = field(default_factory=list)


class _UnionFind:
    def __init__(self, n: int):
        self.up = list(range(n))

    def find(self, i: int) -> int:
        while self.up[i] != i:
            self.up[i] = self.up[self.up[i]]
            i = self.up[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.up[max(ra, rb)] = min(ra, rb)


def near_duplicate_groups(records: Sequence[Rec], shingle: int) -> list[list[int]]:
    """Indices of records grouped by shared `shingle`-token runs (transitively)."""
    uf = _UnionFind(len(records))
    first: dict[tuple[str, ...], int] = {}
    for i, rec in enumerate(records):
        toks = rec.tokens
        keys = (
            [tuple(toks)]
            if len(toks) < shingle
            else [tuple(toks[j : j + shingle]) for j in range(len(toks) - shingle + 1)]
        )
        for key in keys:
            seen = first.setdefault(key, i)
            if seen != i:
                uf.union(seen, i)
    groups: dict[int, list[int]] = {}
    for i in range(len(records)):
        groups.setdefault(uf.find(i), []).append(i)
    return list(groups.values())


def split(
    records: Sequence[Rec], settings: N2GSettings, neuron_id: str
) -> tuple[list[Rec], list[Rec]]:
    """(train, test): near-duplicate groups never straddle the split; seeded per neuron."""
    groups = near_duplicate_groups(records, settings.shingle)
    rng = random.Random(f"{settings.seed}:{neuron_id}")
    rng.shuffle(groups)
    n_top = sum(r.category == "top" for r in records)
    n_rest = len(records) - n_top
    want_top = round(settings.train_fraction * n_top)
    want_rest = round(settings.train_fraction * n_rest)
    got_top = got_rest = 0
    train_idx: set[int] = set()
    for group in groups:
        tops = sum(records[i].category == "top" for i in group)
        goes = got_top < want_top if tops else got_rest < want_rest
        if goes:
            train_idx.update(group)
            got_top += tops
            got_rest += len(group) - tops
    train = [r for i, r in enumerate(records) if i in train_idx]
    test = [r for i, r in enumerate(records) if i not in train_idx]
    return train, test


def load_examples(
    conn: sqlite3.Connection, neuron_id: str, settings: N2GSettings
) -> NeuronExamples:
    """Read a neuron's records and split them (see module docstring)."""
    data = reader.neuron(conn, neuron_id)
    a_max = data["stats"]["max_activation"]
    out = NeuronExamples(
        data["id"], data["layer"], data["neuron"], float(a_max) if a_max is not None else 0.0
    )
    pool: list[Rec] = []
    for category, recs in data["records"].items():
        if category == "top":
            recs = recs[: settings.examples]
        elif category.startswith("quantile") and not settings.use_quantile_records:
            continue
        for rank, r in enumerate(recs):
            pool.append(Rec(category, rank, r["tokens"], r["activations"]))
    train, test = split(pool, settings, out.neuron_id)
    out.train = train
    out.test = [r for r in test if r.category in ("top", "random")]
    limit = settings.activation_threshold * out.a_max
    out.build = [
        r
        for r in train
        if r.category == "top" or (r.category.startswith("quantile") and r.peak[0] > limit)
    ]
    return out


class VocabIndex:
    """Token string → id for one model, inverting `token_strings` over the vocabulary."""

    def __init__(self, loaded) -> None:
        self.tokenizer = loaded.tokenizer
        size = len(loaded.tokenizer)
        strings = loaded.token_strings(range(size))
        self.unique: dict[str, int] = {}
        self.shared: dict[str, list[int]] = {}
        for i, s in enumerate(strings):
            if s in self.shared:
                self.shared[s].append(i)
            elif s in self.unique:
                self.shared[s] = [self.unique.pop(s), i]
            else:
                self.unique[s] = i
        self.strings = strings

    def token_id(self, token: str) -> int | None:
        """The id of one token string, or None when it cannot be told exactly.

        A string several ids display as is resolved to the id the tokenizer itself produces
        for it (SentencePiece keeps byte-fallback pieces such as `<0x2C>` beside `,`, but only
        uses them for characters its vocabulary lacks), except a string with U+FFFD: split
        UTF-8 bytes all look alike and are refused rather than guessed. A string no entry
        displays as is accepted when the tokenizer encodes it to exactly one token.
        """
        hit = self.unique.get(token)
        if hit is not None:
            return hit
        candidates = self.shared.get(token)
        if candidates is not None and "\ufffd" in token:
            return None
        encoded = self.tokenizer.encode(token, add_special_tokens=False)
        if len(encoded) != 1 or (candidates is not None and encoded[0] not in candidates):
            return None
        return int(encoded[0])

    def to_ids(self, tokens: Sequence[str]) -> list[int] | None:
        """Ids of a record's tokens, or None if any token is ambiguous or unknown."""
        ids = []
        for t in tokens:
            i = self.token_id(t)
            if i is None:
                return None
            ids.append(i)
        return ids
