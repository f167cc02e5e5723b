"""Writing an atlas back out: OpenAI's file layout, or one Parquet table per relation.

`export_openai` writes `collated-activations/{L}/{N}.json` (NeuronRecord) and
`explanations/{L}/{N}.jsonl` (NeuronSimulationResults) for every stored neuron, so that
`import-openai` of the export into a fresh atlas gives the same `neurons` and `activations`
relations. Per-sequence simulations are not stored, so `scored_sequence_simulations` is empty;
explanations of every source are written, the neuron's primary one first. What OpenAI's files
cannot hold (each explanation's source and scores, the model) goes beside them
(`openai/extras.py`), so a re-import keeps it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

import msgspec

from neuronatlas.errors import BadInput
from neuronatlas.openai import extras
from neuronatlas.openai.schemas import (
    ActivationRecord,
    NeuronId,
    NeuronRecord,
    NeuronSimulationResults,
    ScoredExplanation,
    ScoredSimulation,
    encode,
    encode_explanations_file,
)
from neuronatlas.store import llm as store_llm
from neuronatlas.store import open_reader, reader
from neuronatlas.version import __version__

log = logging.getLogger(__name__)

_tokens = msgspec.json.Decoder(list[str])

Progress = Callable[[int, int], None]


@dataclass
class ExportResult:
    """What an export wrote."""

    neurons: int = 0
    files: int = 0
    dropped_categories: dict[str, int] = field(default_factory=dict)  # not representable


def _write(path: Path, body: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(body)
    os.replace(tmp, path)


def _merge(
    conn: sqlite3.Connection,
) -> Iterator[
    tuple[
        reader.NeuronInfoRow,
        list[tuple[str, str, int, str, list[float | None]]],
        list[reader.ExplanationRow],
    ]
]:
    """Each neuron's info with its records and explanations (three ordered scans, zipped)."""
    recs = groupby(reader.iter_record_rows(conn), key=lambda r: r[0])
    exps = groupby(reader.iter_explanation_rows(conn), key=lambda r: r[0])
    next_rec = next(recs, None)
    next_exp = next(exps, None)
    for info in reader.iter_neuron_info(conn):
        nid = info.id
        while next_rec is not None and next_rec[0] < nid:
            next_rec = next(recs, None)
        while next_exp is not None and next_exp[0] < nid:
            next_exp = next(exps, None)
        rows_r = list(next_rec[1]) if next_rec is not None and next_rec[0] == nid else []
        rows_e = list(next_exp[1]) if next_exp is not None and next_exp[0] == nid else []
        yield info, rows_r, rows_e


def neuron_record(
    info: reader.NeuronInfoRow, rows: list[tuple], dropped: dict[str, int]
) -> NeuronRecord:
    """A stored neuron as an OpenAI NeuronRecord."""
    by_cat: dict[str, list[ActivationRecord]] = {}
    for _, category, _, tokens, acts in rows:
        by_cat.setdefault(category, []).append(
            ActivationRecord(tokens=_tokens.decode(tokens), activations=acts)
        )
    buckets = {
        int(c.split("_", 1)[1]): v
        for c, v in by_cat.items()
        if c.startswith("quantile_") and c.split("_", 1)[1].isdigit()
    }
    for c in by_cat:
        if c not in ("top", "random") and not (
            c.startswith("quantile_") and c.split("_", 1)[1].isdigit()
        ):
            dropped[c] = dropped.get(c, 0) + 1
    qb = info.quantile_boundaries
    n_buckets = max([*(k + 1 for k in buckets), 0 if qb is None else len(qb) + 1])
    by_quantile = None
    if n_buckets:
        by_quantile = [buckets.get(i, []) for i in range(n_buckets)]
    return NeuronRecord(
        neuron_id=NeuronId(layer_index=info.layer, neuron_index=info.neuron),
        random_sample=by_cat.get("random", []),
        random_sample_by_quantile=by_quantile,
        quantile_boundaries=qb,
        mean=info.mean,
        variance=info.variance,
        skewness=info.skewness,
        kurtosis=info.kurtosis,
        most_positive_activation_records=by_cat.get("top", []),
    )


def simulation_results(
    info: reader.NeuronInfoRow, rows: list[reader.ExplanationRow]
) -> NeuronSimulationResults:
    """A stored neuron's explanations (primary first) as OpenAI NeuronSimulationResults."""
    return NeuronSimulationResults(
        neuron_id=NeuronId(layer_index=info.layer, neuron_index=info.neuron),
        scored_explanations=[
            ScoredExplanation(
                explanation=text,
                scored_simulation=ScoredSimulation(
                    ev_correlation_score=ev, rsquared_score=r2, absolute_dev_explained_score=ad
                ),
            )
            for _, _, _, text, ev, r2, ad in rows
        ],
    )


def neuron_extras(
    info: reader.NeuronInfoRow,
    rows: list[reader.ExplanationRow],
    scores: dict[store_llm.ExplanationKey, list[reader.ScoreRow]],
    provenance: dict[store_llm.ExplanationKey, store_llm.Provenance],
) -> extras.NeuronExtras:
    """What OpenAI's file of this neuron cannot hold, explanation by explanation."""
    items = []
    for r in rows:
        key = (r.neuron_id, r.source, r.position)
        llm = provenance.get(key)
        items.append(
            extras.ExplanationExtras(
                text=r.text,
                source=r.source,
                position=r.position,
                scores=[
                    msgspec.convert(s, extras.Score, from_attributes=True)
                    for s in scores.get(key, [])
                ],
                llm=None
                if llm is None
                else msgspec.convert(llm, extras.Provenance, from_attributes=True),
            )
        )
    return extras.NeuronExtras(neuron_id=info.id, source=info.source, explanations=items)


def export_openai(
    db: str | Path, out: str | Path, progress: Progress | None = None
) -> ExportResult:
    """Write every neuron of `db` under `out` in OpenAI's layout."""
    out = Path(out)
    conn = open_reader(db)
    try:
        return _export_openai(conn, out, progress)
    finally:
        conn.close()


def _export_openai(conn, out: Path, progress: Progress | None) -> ExportResult:
    total = reader.neuron_count(conn)
    result = ExportResult()
    made: set[Path] = set()
    scores = store_llm.scores_by_explanation(conn)
    provenance = store_llm.provenance_by_explanation(conn)
    meta = reader.meta(conn)
    out.mkdir(parents=True, exist_ok=True)
    _write(
        out / extras.MANIFEST,
        extras.encode(
            extras.Manifest(
                code_version=__version__,
                meta={k: meta[k] for k in extras.CARRIED_META if k in meta},
            )
        ),
    )
    (out / extras.FOLDER / "explanations").mkdir(parents=True, exist_ok=True)
    side: dict[int, list[bytes]] = {}
    for info, recs, exps in _merge(conn):
        layer = str(info.layer)
        for sub in ("collated-activations", "explanations"):
            d = out / sub / layer
            if d not in made:
                d.mkdir(parents=True, exist_ok=True)
                made.add(d)
        side.setdefault(info.layer, []).append(
            extras.encode(neuron_extras(info, exps, scores, provenance)) + b"\n"
        )
        n = info.neuron
        _write(
            out / "collated-activations" / layer / f"{n}.json",
            encode(neuron_record(info, recs, result.dropped_categories)),
        )
        _write(
            out / "explanations" / layer / f"{n}.jsonl",
            encode_explanations_file(simulation_results(info, exps)),
        )
        result.neurons += 1
        result.files += 2
        if progress:
            progress(result.neurons, total)
    for layer_index, lines in side.items():
        _write(extras.layer_file(out, layer_index), b"".join(lines))
        result.files += 1
    result.files += 1  # the manifest
    for cat, count in result.dropped_categories.items():
        log.warning(
            "category %r of %d neuron(s) has no place in OpenAI's format: not exported", cat, count
        )
    return result


def _arrow_schemas():
    import pyarrow as pa

    f, i, s = pa.float64(), pa.int64(), pa.string()
    return {
        "neurons": pa.schema(
            [
                ("id", s),
                ("layer_index", i),
                ("neuron_index", i),
                ("explanation_text", s),
                ("explanation_ev_correlation_score", f),
                ("explanation_rsquared_score", f),
                ("explanation_absolute_dev_explained_score", f),
                ("activation_mean", f),
                ("activation_variance", f),
                ("activation_skewness", f),
                ("activation_kurtosis", f),
                ("explanation_embedding", s),
                ("explanation_embedding_f32", pa.binary()),
            ]
        ),
        "activations": pa.schema(
            [("neuron_id", s), ("category", s), ("tokens", s), ("activation_values", s)]
        ),
        "explanations": pa.schema(
            [
                ("id", i),
                ("neuron_id", s),
                ("source", s),
                ("position", i),
                ("text", s),
                ("ev_correlation_score", f),
                ("rsquared_score", f),
                ("absolute_dev_explained_score", f),
                ("created_at", s),
            ]
        ),
    }


def export_parquet(db: str | Path, out: str | Path) -> dict[str, int]:
    """Write `neurons.parquet`, `activations.parquet`, `explanations.parquet` under `out`.

    Columns are the relations' own (JSON text stays text); returns rows written per table.
    """
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise BadInput("--format parquet needs pyarrow: pip install 'neuronatlas[model]'") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    conn = open_reader(db)
    try:
        return _export_parquet(conn, out)
    finally:
        conn.close()


def _export_parquet(conn, out: Path) -> dict[str, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    counts: dict[str, int] = {}
    for relation, schema in _arrow_schemas().items():
        path = out / f"{relation}.parquet"
        tmp = path.with_name(f".{path.name}.part")
        counts[relation] = 0
        with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
            for names, rows in reader.iter_relation(conn, relation):
                if names != schema.names:
                    raise BadInput(f"{relation}: columns {names} differ from {schema.names}")
                cols = list(zip(*rows, strict=False))
                w.write_table(
                    pa.Table.from_arrays(
                        [pa.array(c, type=t.type) for c, t in zip(cols, schema, strict=False)],
                        schema=schema,
                    )
                )
                counts[relation] += len(rows)
        os.replace(tmp, path)
    return counts
