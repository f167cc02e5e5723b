"""The scrape's write path as it was before issue 25's writing work, kept for
`bench/write_bench.py` only (the library does not import it): the readout's lists of doubles,
`rows.prepare` one neuron at a time (`values.encode` per neuron, tokens JSON and digest per
record), and the writer's per-batch `executemany` calls, all as they were at commit 3f04ec9.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import orjson

from neuronatlas.ids import format_id
from neuronatlas.scrape.readout import neuron_results
from neuronatlas.store import AtlasWriter
from neuronatlas.store.rows import (
    NeuronData,
    PreparedNeuron,
    Record,
    _clean,
    encode_json,
    excerpt_digest,
)
from neuronatlas.store.search import rebuild_token_index
from neuronatlas.store.values import F32, StoredValues, f32_json
from neuronatlas.store.values import encode_json as values_encode_json

_encode = msgspec.json.Encoder().encode


def neuron_data(state, layer: int, token_strings):
    for r in neuron_results(state, layer, token_strings):
        yield NeuronData(
            layer=layer,
            neuron=r["neuron"],
            source="scrape",
            records={
                cat: [Record(tokens, acts) for tokens, acts in recs]
                for cat, recs in r["records"].items()
            },
            mean=r["mean"],
            variance=r["variance"],
            skewness=r["skewness"],
            kurtosis=r["kurtosis"],
            quantile_boundaries=r["quantile_boundaries"],
        )


_decode_flat = msgspec.json.Decoder(list[float]).decode


def f32_json_rows(block: np.ndarray) -> list[str]:
    block = np.ascontiguousarray(block, dtype=F32)
    rows, width = block.shape
    if rows == 0 or width == 0:
        return ["[]"] * rows
    finite = np.isfinite(block).all(axis=1)
    if not finite.all():
        out = [""] * rows
        for i in np.flatnonzero(~finite).tolist():
            out[i] = f32_json(block[i])
        keep = np.flatnonzero(finite)
        for i, text in zip(keep.tolist(), f32_json_rows(block[keep]), strict=True):
            out[i] = text
        return out
    text = orjson.dumps(block, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    texts = ["[" + row + "]" for row in text[2:-2].split("],[")]
    flat = "[" + ",".join([t[1:-1] for t in texts]) + "]"
    back = np.fromiter(_decode_flat(flat), dtype=np.float64, count=block.size)
    wrong = (back.astype(F32).reshape(block.shape) != block).any(axis=1)
    for i in np.flatnonzero(wrong).tolist():
        texts[i] = values_encode_json(block[i].astype(np.float64).tolist())
    return texts


def encode(records: Sequence[Sequence[float | None]]) -> list[StoredValues]:
    out: list[StoredValues | None] = [None] * len(records)
    by_length: dict[int, list[int]] = {}
    for i, vals in enumerate(records):
        by_length.setdefault(len(vals), []).append(i)
    for length, rows in by_length.items():
        if length == 0:
            for i in rows:
                out[i] = StoredValues("[]", True, None, None)
            continue
        block = records if len(rows) == len(records) else [records[i] for i in rows]
        for i, stored in zip(rows, _encode_block(np.array(block, dtype=np.float64)), strict=True):
            out[i] = stored
    return out  # type: ignore[return-value]


def _encode_block(wide: np.ndarray) -> list[StoredValues]:
    finite = np.isfinite(wide)
    all_finite = bool(finite.all())
    with np.errstate(over="ignore", invalid="ignore"):
        narrow = wide.astype(F32)
    if all_finite:
        exact = (narrow.astype(np.float64) == wide).all(axis=1).tolist()
        masked = wide
    else:
        exact = np.where(finite, narrow.astype(np.float64) == wide, True).all(axis=1).tolist()
        narrow[~finite] = np.nan
        masked = np.where(finite, wide, -np.inf)
    peaks = masked.argmax(axis=1)
    tops = masked[np.arange(len(wide)), peaks].tolist()
    peaks = peaks.tolist()
    f32_rows = [row for row, ok in enumerate(exact) if ok]
    spelled = f32_json_rows(narrow if len(f32_rows) == len(exact) else narrow[f32_rows])
    texts = dict(zip(f32_rows, spelled, strict=True))
    out = []
    for row, ok in enumerate(exact):
        top, peak = tops[row], peaks[row]
        if top == -math.inf:
            top, peak = None, None
        if ok:
            out.append(StoredValues(texts[row], True, top, peak))
        else:
            vals = [
                v if f else None
                for v, f in zip(wide[row].tolist(), finite[row].tolist(), strict=True)
            ]
            out.append(StoredValues(values_encode_json(vals), False, top, peak))
    return out


def prepare(data: NeuronData) -> PreparedNeuron:
    nid = format_id(data.layer, data.neuron)
    excerpts: dict[int, str] = {}
    records: list[tuple[Any, ...]] = []
    overall: float | None = None
    flat = [
        (category, rank, rec)
        for category, recs in data.records.items()
        for rank, rec in enumerate(recs)
    ]
    stored = encode([rec.activations for _, _, rec in flat])
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
    return PreparedNeuron(nid, info, list(excerpts.items()), records, None, data.explanation_source)


def write_neurons(writer: AtlasWriter, batch: list[PreparedNeuron]) -> int:
    latest = {p.neuron_id: p for p in batch}
    todo = list(latest.values())
    c = writer.conn
    with writer.transaction():
        c.executemany("DELETE FROM records WHERE neuron_id = ?", [(n,) for n in latest])
        c.executemany(
            "INSERT OR IGNORE INTO excerpts(digest, tokens) VALUES (?, ?)",
            chain.from_iterable(p.excerpts for p in todo),
        )
        c.executemany(
            "INSERT INTO records(neuron_id, category, rank, excerpt_digest,"
            " activation_values, values_f32, max_activation, peak_index)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            chain.from_iterable(p.records for p in todo),
        )
        c.executemany(
            "INSERT OR REPLACE INTO neuron_info(id, layer, neuron, mean, variance, skewness,"
            " kurtosis, max_activation, quantile_boundaries, source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [p.info for p in todo],
        )
    return len(todo)


def write_atlas(
    state, model, db: str | Path, meta: dict, run_config: dict, chunk: int = 1024
) -> int:
    """`scrape.output.write_atlas` as it was (no progress callback)."""
    from neuronatlas.store.writer import now

    done = 0
    with AtlasWriter(db) as writer:
        if "created_at" not in writer.meta():
            meta = {**meta, "created_at": now()}
        writer.set_meta(meta)
        run = writer.begin_run("scrape", run_config)
        for layer in sorted(state.layers):
            buf = []
            for data in neuron_data(state, layer, model.record_strings):
                buf.append(prepare(data))
                if len(buf) == chunk:
                    done += write_neurons(writer, buf)
                    buf = []
            if buf:
                done += write_neurons(writer, buf)
        rebuild_token_index(writer.conn)
        writer.end_run(run, "done")
    return done
