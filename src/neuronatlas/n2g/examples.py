"""Examples for N2G, read from the store, and a de-duplicated train/test split.

Records hold token *strings*. The model needs ids, so `VocabIndex` inverts the model's own
token-string function (`LoadedModel.token_strings`) over the whole vocabulary: a string that
belongs to exactly one id maps back exactly. A few strings are shared by several ids
(SentencePiece's byte-fallback pieces display like the characters they encode); a shared
string resolves to the id the tokenizer itself produces for it. A character split over several
tokens is stored whole on its first piece with "" on the others (`models.tokens`): such a group
maps back to the ids the tokenizer gives its text when they display exactly as stored. Records
of older atlases whose split pieces show U+FFFD are not used for model passes rather than
guessed at (they are still evaluated, since evaluation needs only strings).

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
    a_max = data.stats.max_activation
    out = NeuronExamples(
        data.id, data.layer, data.neuron, float(a_max) if a_max is not None else 0.0
    )
    pool: list[Rec] = []
    for category, recs in data.records.items():
        if category == "top":
            recs = recs[: settings.examples]
        elif category.startswith("quantile") and not settings.use_quantile_records:
            continue
        for rank, r in enumerate(recs):
            pool.append(Rec(category, rank, r.tokens, r.activations))
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
        self.record_strings = loaded.record_strings

    def token_id(self, token: str) -> int | None:
        """The id of one token string, or None when it cannot be told exactly.

        A string several ids display as is resolved to the id the tokenizer itself produces
        for it (SentencePiece keeps byte-fallback pieces such as `<0x2C>` beside `,`, but only
        uses them for characters its vocabulary lacks). A string with U+FFFD is refused rather
        than guessed: in records of older atlases every byte of a split character showed as
        U+FFFD, so it cannot tell which bytes, nor even whether the text held U+FFFD. A string
        no entry displays as is accepted when the tokenizer encodes it to exactly one token.
        """
        if "\ufffd" in token:
            return None
        hit = self.unique.get(token)
        if hit is not None:
            return hit
        candidates = self.shared.get(token)
        encoded = self.tokenizer.encode(token, add_special_tokens=False)
        if len(encoded) != 1 or (candidates is not None and encoded[0] not in candidates):
            return None
        return int(encoded[0])

    def to_ids(self, tokens: Sequence[str]) -> list[int] | None:
        """Ids of a record's tokens, or None if any token is ambiguous or unknown.

        A token followed by "" tokens is one character split over them: its text must encode
        to exactly that many tokens that display as stored. Failing that (a piece holding the
        end of one character and the start of the next), the whole record's text is encoded
        and accepted when it displays exactly as stored.
        """
        ids: list[int] = []
        at = 0
        while at < len(tokens):
            end = at + 1
            while end < len(tokens) and tokens[end] == "":
                end += 1
            group = list(tokens[at:end])
            if len(group) == 1:
                one = self.token_id(group[0])
                got = None if one is None else [one]
            else:
                got = self._encode_as(group)
            if got is None:
                return self._encode_as(list(tokens))
            ids.extend(got)
            at = end
        return ids

    def _encode_as(self, tokens: list[str]) -> list[int] | None:
        """The ids the tokenizer gives the tokens' text, if they display exactly as `tokens`."""
        text = "".join(tokens)
        if not text or "\ufffd" in text:
            return None
        encoded = [int(i) for i in self.tokenizer.encode(text, add_special_tokens=False)]
        if len(encoded) != len(tokens) or self.record_strings(encoded) != tokens:
            return None
        return encoded
