"""What the writers store, as plain typed values, and their preparation into SQL rows.

Preparation (JSON encoding, excerpt digests, per-record maxima) is pure Python with no
database, so importer and scraper workers in other processes do it and the single writer only
runs `executemany`.

Two ways in, the same rows out: `prepare` takes one neuron's `NeuronData` (lists, as importers
parse them); `prepare_block` takes many neurons' records as numpy arrays, as a scrape holds
them, so no value becomes a Python float on the way and each excerpt's tokens JSON and digest
are made once per excerpt, not once per record (bench/README.md, "Writing the scrape").
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from neuronatlas.ids import format_id
from neuronatlas.store import values

_encode = msgspec.json.Encoder().encode


class Record(msgspec.Struct, frozen=True):
    """One excerpt and one neuron's activation on each of its tokens (None = NaN in source)."""

    tokens: list[str]
    activations: list[float | None]


class Explanation(msgspec.Struct, frozen=True):
    """An explanation of a neuron with OpenAI's three scores (any may be None)."""

    text: str
    ev_correlation_score: float | None = None
    rsquared_score: float | None = None
    absolute_dev_explained_score: float | None = None


class NeuronData(msgspec.Struct):
    """Everything stored about one neuron's activations.

    `records` maps a category ('top', 'random', 'quantile_0', ...) to records in rank order.
    `explanations`, when not None, replaces the neuron's explanations from `explanation_source`.
    """

    layer: int
    neuron: int
    source: str
    records: dict[str, list[Record]]
    mean: float | None = None
    variance: float | None = None
    skewness: float | None = None
    kurtosis: float | None = None
    quantile_boundaries: list[float | None] | None = None
    explanations: list[Explanation] | None = None
    explanation_source: str = "openai"


class PreparedNeuron(msgspec.Struct, array_like=True):
    """SQL-ready rows for one neuron; see `prepare`."""

    neuron_id: str
    info: tuple[Any, ...]
    excerpts: list[tuple[int, str]]
    records: list[tuple[Any, ...]]
    explanations: list[tuple[Any, ...]] | None
    explanation_source: str


def excerpt_digest(tokens_json: str | bytes) -> int:
    """Content address of an excerpt: 64 bits of blake2b as a signed SQLite integer.

    Equal token lists share one row: writers insert by digest (INSERT OR IGNORE), with no
    read first. A collision needs ~4e9 distinct excerpts to become likely (birthday bound),
    far beyond any atlas.
    """
    data = tokens_json.encode("utf-8") if isinstance(tokens_json, str) else tokens_json
    digest = hashlib.blake2b(data, digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def encode_json(value: object) -> str:
    """Compact JSON (shortest round-trip floats, NaN/inf as null, UTF-8 unescaped)."""
    return _encode(value).decode("utf-8")


def _clean(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def prepare(data: NeuronData) -> PreparedNeuron:
    """Turn one neuron's data into rows for `neuron_info`, `excerpts`, `records`, `explanations`."""
    nid = format_id(data.layer, data.neuron)
    excerpts: dict[int, str] = {}
    records: list[tuple[Any, ...]] = []
    overall: float | None = None
    flat = [
        (category, rank, rec)
        for category, recs in data.records.items()
        for rank, rec in enumerate(recs)
    ]
    for category, rank, rec in flat:
        if len(rec.tokens) != len(rec.activations):
            raise ValueError(
                f"{category} record {rank}: {len(rec.tokens)} tokens but "
                f"{len(rec.activations)} activations"
            )
    stored = values.encode([rec.activations for _, _, rec in flat])
    for (category, rank, rec), v in zip(flat, stored, strict=False):
        tokens_json = _encode(rec.tokens)
        eid = excerpt_digest(tokens_json)
        excerpts[eid] = tokens_json.decode("utf-8")
        if v.max_activation is not None and (overall is None or v.max_activation > overall):
            overall = v.max_activation
        records.append((nid, category, rank, eid, *v))
    qb = None if data.quantile_boundaries is None else encode_json(data.quantile_boundaries)
    info = (
        nid,
        data.layer,
        data.neuron,
        _clean(data.mean),
        _clean(data.variance),
        _clean(data.skewness),
        _clean(data.kurtosis),
        overall,
        qb,
        data.source,
    )
    explanations = None
    if data.explanations is not None:
        explanations = [
            (
                nid,
                data.explanation_source,
                pos,
                e.text,
                _clean(e.ev_correlation_score),
                _clean(e.rsquared_score),
                _clean(e.absolute_dev_explained_score),
            )
            for pos, e in enumerate(data.explanations)
        ]
    return PreparedNeuron(
        nid, info, list(excerpts.items()), records, explanations, data.explanation_source
    )


@dataclass(frozen=True)
class NeuronBlock:
    """Consecutive neurons of one layer and all their records as arrays.

    Records are in write order: grouped by neuron (in `neurons` order), then by category in
    the order the neuron's `NeuronData.records` would list them, then by rank; the same rows
    `prepare` makes of each neuron's `NeuronData`, with its float32 values as they are.
    """

    layer: int
    neurons: list[int]
    source: str
    #: per record: its neuron's position in `neurons` (non-decreasing)
    owner: np.ndarray
    category: list[str]
    rank: list[int]
    #: per record: its excerpt's digest (`excerpt_digest` of the tokens JSON)
    digest: list[int]
    #: float32 [records, tokens]
    values: np.ndarray
    #: per neuron (float64 or float32 arrays; NaN / ±inf are stored as NULL)
    mean: np.ndarray
    variance: np.ndarray
    skewness: np.ndarray
    kurtosis: np.ndarray
    #: [neurons, boundaries]
    quantile_boundaries: np.ndarray


class PreparedBlock(msgspec.Struct, array_like=True):
    """SQL-ready rows for a `NeuronBlock` (see `prepare_block`); no explanations."""

    neuron_ids: list[str]
    info: list[tuple[Any, ...]]
    records: list[tuple[Any, ...]]


def prepare_block(block: NeuronBlock) -> PreparedBlock:
    """Rows for `neuron_info` and `records` of every neuron of `block`: the same rows that
    `prepare` gives for each neuron's `NeuronData` (same value texts, maxima and peaks)."""
    n = len(block.neurons)
    rows = len(block.owner)
    if block.values.ndim != 2 or block.values.shape[0] != rows:
        raise ValueError(f"values of shape {block.values.shape} for {rows} records")
    if not (len(block.category) == len(block.rank) == len(block.digest) == rows):
        raise ValueError("category, rank and digest need one entry per record")
    ids = [format_id(block.layer, neuron) for neuron in block.neurons]
    texts, tops, peaks = values.encode_f32(block.values)
    # each neuron's maximum: the largest of its records' maxima (None when none has one)
    top_arr = np.array([-math.inf if t is None else t for t in tops], dtype=np.float64)
    overall = np.full(n, -math.inf)
    np.maximum.at(overall, np.asarray(block.owner, dtype=np.intp), top_arr)
    owners = [ids[i] for i in np.asarray(block.owner).tolist()]
    records = list(
        zip(
            owners,
            block.category,
            block.rank,
            block.digest,
            texts,
            [True] * rows,
            tops,
            peaks,
            strict=True,
        )
    )
    moments = [
        _clean_array(a) for a in (block.mean, block.variance, block.skewness, block.kurtosis)
    ]
    bounds = np.asarray(block.quantile_boundaries, dtype=np.float64).tolist()
    info = [
        (
            ids[i],
            block.layer,
            neuron,
            moments[0][i],
            moments[1][i],
            moments[2][i],
            moments[3][i],
            None if overall[i] == -math.inf else float(overall[i]),
            encode_json(bounds[i]),
            block.source,
        )
        for i, neuron in enumerate(block.neurons)
    ]
    return PreparedBlock(ids, info, records)


def _clean_array(a: np.ndarray) -> list[float | None]:
    """`_clean` of each value: doubles, None where not finite."""
    wide = np.asarray(a, dtype=np.float64)
    return [
        v if f else None for v, f in zip(wide.tolist(), np.isfinite(wide).tolist(), strict=True)
    ]
