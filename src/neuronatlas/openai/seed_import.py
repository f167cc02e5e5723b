"""`import_seed`: the seed notebook's own SQLite database → an atlas, resumable and idempotent.

The seed notebook loads OpenAI's GPT-2-small explanations and activation records into two
tables (`neurons`, `activations`; read by `store.seed`) and embeds each explanation with
all-mpnet-base-v2 into `neurons.explanation_embedding`. People already have such databases, so
this turns one into an atlas without the original files: the same neurons, OpenAI's first
explanation with its three scores (explanation source 'openai', as `import-openai` stores it),
the moments, the records by category in the notebook's order, and the vectors tagged with the
embedder that made them, so semantic search, similar neurons and `neuronatlas map` use them
as they are. The notebook stores no map, so `neuronatlas map` draws one afterwards.

It writes through the importer's path (`prepare` → `AtlasWriter.write_neurons`, 256 neurons a
transaction) and a neuron's vector lands in the same transaction as its rows, so after a crash
the neurons stored are complete and a rerun imports only the rest (a neuron counts as done when
it is stored from the seed and, if the seed has its vector, the vector is stored too: a
database embedded after a first import gains its vectors on the next run). Bad rows are
returned as `Skipped` (naming the row and the reason), never stored; the source file is only
read.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from neuronatlas.errors import BadInput
from neuronatlas.ids import format_id
from neuronatlas.openai import layout
from neuronatlas.openai.parse import Skipped
from neuronatlas.store import AtlasWriter, Explanation, NeuronData, PreparedNeuron, Record, prepare
from neuronatlas.store import embed as store_embed
from neuronatlas.store import seed as store_seed
from neuronatlas.store.search import rebuild_token_index, stale_search_indexes
from neuronatlas.store.writer import now
from neuronatlas.version import __version__

log = logging.getLogger(__name__)

#: `neuron_info.source` of neurons imported from a seed database (what a rerun skips).
SOURCE = "seed"
#: The notebook keeps OpenAI's first explanation: stored as `import-openai` stores it.
EXPLANATION_SOURCE = "openai"
#: The notebook's embedder, and the length of its vectors.
SEED_EMBEDDER = "all-mpnet-base-v2"
SEED_EMBEDDER_DIM = 768

Progress = Callable[[int, int], None]  # (neurons finished so far incl. skipped, total)


@dataclass
class SeedImportConfig:
    """Settings of one `import-seed` run (saved in the run's provenance)."""

    seed: Path = Path("seed.db")  # the notebook's SQLite database (only read)
    overwrite: bool = False  # re-import neurons already imported from the seed
    embedder: str = SEED_EMBEDDER  # the tag for `explanation_embedding`'s vectors
    batch_size: int = 256  # neurons per write transaction

    def __post_init__(self) -> None:
        self.seed = Path(self.seed)
        if self.batch_size < 1:
            raise BadInput("batch_size must be positive")
        if not self.embedder.strip():
            raise BadInput("--embedder must name the model that made the seed's vectors")

    def embedder_tag(self) -> tuple[str, str]:
        """(the tag stored with the vectors, the spec that loads the embedder again): a
        registered name's canonical spelling, so `neuronatlas embed` and semantic search
        recognise the vectors as theirs. Nothing is loaded."""
        from neuronatlas.embed.embedders import resolve_embedder

        found = resolve_embedder(self.embedder)
        return found.name, found.spec


@dataclass
class SeedImportResult:
    """What a run did."""

    imported: int = 0  # neurons written
    embedded: int = 0  # vectors written
    already_done: int = 0  # neurons (and their vectors) stored by an earlier run
    skipped: list[Skipped] = field(default_factory=list)
    orphan_records: int = 0  # `activations` rows naming no row of `neurons` (when read)
    model_id: str | None = None
    run_id: int | None = None


class _Bad(Exception):
    """One seed row that cannot be used; `where` names the row for the report."""

    def __init__(self, where: str, reason: str):
        super().__init__(reason)
        self.where = where
        self.reason = reason


# -- values as SQLite stored them --------------------------------------------------------------
# A column's declared type decides how SQLite stores what the notebook bound (a float bound to
# a TEXT column comes back as '0.61'), so values are read by what they mean, not by their type.


def _int(value: object, what: str, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise _Bad(where, f"{what} is {value!r}, not an integer")


def _number(value: object, what: str, where: str) -> float | None:
    """A score or moment: None stays None (NaN and ±inf too: 'no value')."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        x = float(value)
    elif isinstance(value, str | bytes):
        try:
            x = float(value)
        except ValueError:
            raise _Bad(where, f"{what} is {value!r}, not a number") from None
    else:
        raise _Bad(where, f"{what} is {type(value).__name__}, not a number")
    return x if math.isfinite(x) else None


_TOKENS = msgspec.json.Decoder(list[str])
_VALUES = msgspec.json.Decoder(list[float | None])
_NUMBERS = msgspec.json.Decoder(list[float])


def _json_array(value: object, decoder: msgspec.json.Decoder[Any], what: str, where: str) -> Any:
    """A JSON array as the notebook wrote it, checked against `decoder`'s type in C (the
    values are ~2 million numbers per 3,072 neurons). `json.dumps` spells NaN and Infinity
    bare, which msgspec refuses: those few go through `json.loads` first."""
    if not isinstance(value, str | bytes):
        raise _Bad(where, f"{what} is {type(value).__name__}, not JSON text")
    try:
        return decoder.decode(value)
    except msgspec.ValidationError as exc:
        raise _Bad(where, f"{what}: wrong type: {exc}") from None
    except msgspec.DecodeError:
        pass
    try:
        loaded = json.loads(value)
    except ValueError as exc:
        raise _Bad(where, f"{what} is malformed JSON: {exc}") from None
    try:
        return msgspec.convert(loaded, decoder.type)
    except msgspec.ValidationError as exc:
        raise _Bad(where, f"{what}: wrong type: {exc}") from None


def _vector(value: object, dim: int | None, where: str) -> np.ndarray:
    """The seed's embedding as a float32 unit vector (the store's contract: the notebook
    normalised, then rounded to 8 decimals)."""
    vec = np.asarray(_json_array(value, _NUMBERS, "explanation_embedding", where))
    if not len(vec) or not np.isfinite(vec).all():
        raise _Bad(where, "explanation_embedding is not a non-empty array of finite numbers")
    if dim is not None and len(vec) != dim:
        raise _Bad(where, f"explanation_embedding has {len(vec)} numbers, the others {dim}")
    norm = float(np.linalg.norm(vec))
    if norm == 0.0:
        raise _Bad(where, "explanation_embedding is all zeros")
    return (vec / norm).astype(np.float32)


# -- one neuron --------------------------------------------------------------------------------


def _neuron_data(
    row: store_seed.SeedNeuron, records: Sequence[store_seed.SeedRecord]
) -> NeuronData:
    where = f"neurons row {row.rowid}"
    layer = _int(row.layer_index, "layer_index", where)
    neuron = _int(row.neuron_index, "neuron_index", where)
    if layer < 0 or neuron < 0 or format_id(layer, neuron) != str(row.id):
        raise _Bad(where, f"id {row.id!r} but layer_index {layer}, neuron_index {neuron}")
    text = row.explanation_text
    if text is not None and not isinstance(text, str):
        raise _Bad(where, f"explanation_text is {type(text).__name__}, not text")
    by_category: dict[str, list[Record]] = {}
    for rec in records:
        at = f"activations row {rec.rowid}"
        if not isinstance(rec.category, str) or not rec.category:
            raise _Bad(at, f"category is {rec.category!r}, not a name")
        tokens = _json_array(rec.tokens, _TOKENS, "tokens", at)
        acts = _json_array(rec.activation_values, _VALUES, "activation_values", at)
        if len(tokens) != len(acts):
            raise _Bad(at, f"{len(tokens)} tokens but {len(acts)} activation values")
        by_category.setdefault(rec.category, []).append(Record(tokens, acts))
    explanations = []
    if text is not None:
        explanations.append(
            Explanation(
                text,
                _number(row.ev_correlation_score, "explanation_ev_correlation_score", where),
                _number(row.rsquared_score, "explanation_rsquared_score", where),
                _number(
                    row.absolute_dev_explained_score,
                    "explanation_absolute_dev_explained_score",
                    where,
                ),
            )
        )
    return NeuronData(
        layer=layer,
        neuron=neuron,
        source=SOURCE,
        records=by_category,
        mean=_number(row.mean, "activation_mean", where),
        variance=_number(row.variance, "activation_variance", where),
        skewness=_number(row.skewness, "activation_skewness", where),
        kurtosis=_number(row.kurtosis, "activation_kurtosis", where),
        explanations=explanations,
        explanation_source=EXPLANATION_SOURCE,
    )


# -- the run -----------------------------------------------------------------------------------


def _shape(rows: Iterable[store_seed.SeedNeuron]) -> tuple[int, int, layout.ModelShape | None]:
    """(n_layers, d_mlp, the smallest known model holding every id) from the seed's indices."""
    top_layer = top_neuron = -1
    for row in rows:
        try:
            top_layer = max(top_layer, _int(row.layer_index, "layer_index", ""))
            top_neuron = max(top_neuron, _int(row.neuron_index, "neuron_index", ""))
        except _Bad:
            continue  # reported when the row is imported
    for shape in sorted(layout.MODELS.values(), key=lambda s: s.n_layers * s.d_mlp):
        if top_layer < shape.n_layers and top_neuron < shape.d_mlp:
            return shape.n_layers, shape.d_mlp, shape
    return top_layer + 1, top_neuron + 1, None


def _write_meta(
    writer: AtlasWriter, seed: Path, n_layers: int, d_mlp: int, shape: layout.ModelShape | None
) -> None:
    have = writer.meta().get("model_id")
    if shape is not None and have and have != shape.model_id:
        raise BadInput(
            f"this atlas is of model {have}, the seed is {shape.model_id}: use another --db"
        )
    items: dict[str, object] = {
        "data_source": f"{seed.resolve()} (seed notebook database)",
        "activation_note": layout.GELU_NOTE,
        "n_layers": n_layers,
        "d_mlp": d_mlp,
        "code_version": __version__,
    }
    if shape is not None:
        items["model_id"] = shape.model_id
    else:
        log.warning("%s: shape %d x %d is no known model", seed, n_layers, d_mlp)
    if "created_at" not in writer.meta():
        items["created_at"] = now()
    writer.set_meta(items)


def _first_dim(conn: sqlite3.Connection, rows: Sequence[store_seed.SeedNeuron]) -> int | None:
    """The length of the seed's first readable vector (None when it has none)."""
    for row in rows:
        if row.embedded:
            value = store_seed.seed_embeddings(conn, [row.rowid]).get(row.rowid)
            try:
                return len(_vector(value, None, ""))
            except _Bad:
                continue
    return None


def _check_vectors(seed: Path, tag: str, dim: int | None) -> None:
    if dim is not None and tag == SEED_EMBEDDER and dim != SEED_EMBEDDER_DIM:
        raise BadInput(
            f"{seed}: explanation_embedding holds {dim}-number vectors, but "
            f"{SEED_EMBEDDER} makes {SEED_EMBEDDER_DIM}: pass --embedder NAME of the model that "
            "made them (e.g. all-MiniLM-L6-v2)"
        )


def _open(config: SeedImportConfig, db: Path) -> tuple[sqlite3.Connection, store_seed.SeedLayout]:
    if db.exists() and config.seed.exists() and os.path.samefile(config.seed, db):
        raise BadInput(f"--db {db} is the seed database itself: give a new file for the atlas")
    return store_seed.open_seed(config.seed)


def describe_seed(config: SeedImportConfig, db: str | Path) -> str:
    """One sentence on what the seed holds, before anything is written (raises as
    `import_seed` does for a file that is not a seed database)."""
    conn, seed_layout = _open(config, Path(db))
    try:
        n = store_seed.seed_counts(conn, seed_layout)
    finally:
        conn.close()
    return (
        f"seed-notebook database {config.seed}: {n.neurons:,} neurons ({n.embedded:,} with an "
        f"explanation embedding), {n.records:,} activation records"
    )


def import_seed(
    config: SeedImportConfig, db: str | Path, progress: Progress | None = None
) -> SeedImportResult:
    """Import the seed database `config.seed` into the atlas `db` (created if needed).

    Raises NotASeedDatabase when the file lacks the notebook's tables or columns (nothing is
    written then), BadInput when `db` is the seed itself or of another model."""
    conn, seed_layout = _open(config, Path(db))
    try:
        return _import(conn, seed_layout, config, Path(db), progress)
    finally:
        conn.close()


def _import(
    conn: sqlite3.Connection,
    seed_layout: store_seed.SeedLayout,
    config: SeedImportConfig,
    db: Path,
    progress: Progress | None,
) -> SeedImportResult:
    rows = store_seed.seed_neurons(conn, seed_layout)
    dim = _first_dim(conn, rows)
    tag, spec = config.embedder_tag()
    _check_vectors(config.seed, tag, dim)
    n_layers, d_mlp, shape = _shape(rows)
    result = SeedImportResult(model_id=shape.model_id if shape else None)
    known = Counter(str(r.id) for r in rows)
    with AtlasWriter(db) as writer:
        if dim is not None:
            store_embed.check_embedder(writer.conn, tag)
        _write_meta(writer, config.seed, n_layers, d_mlp, shape)
        if dim is not None:  # what `neuronatlas embed` and semantic search read
            writer.set_meta({"embedder": tag, "embedder_spec": spec})
        result.run_id = writer.begin_run(
            "import-seed",
            {
                "seed": str(config.seed.resolve()),
                "overwrite": config.overwrite,
                "embedder": tag,
                "batch_size": config.batch_size,
            },
        )
        status = "failed"
        try:
            done = set() if config.overwrite else writer.done_neurons(SOURCE)
            vectors = store_seed.embedded_neurons(writer.conn, EXPLANATION_SOURCE, tag)
            todo = [
                r
                for r in rows
                if not (str(r.id) in done and (not r.embedded or str(r.id) in vectors))
            ]
            result.already_done = len(rows) - len(todo)
            if progress:
                progress(0, len(todo))
            record_rowids: dict[str, list[int]] = {}
            if todo:  # one scan of `activations` (~1 s per 3,072 neurons): only with work to do
                found = store_seed.seed_record_rowids(conn)
                record_rowids = {str(k): v for k, v in found.items()}
                result.orphan_records = sum(
                    len(v) for k, v in record_rowids.items() if k not in known
                )
            for start in range(0, len(todo), config.batch_size):
                batch = todo[start : start + config.batch_size]
                _write_batch(conn, writer, batch, record_rowids, known, dim, tag, config, result)
                if progress:
                    progress(start + len(batch), len(todo))
            # `neuronatlas tokens` answers from the token index (2 s per 3,072 neurons to
            # rebuild: not on a rerun that wrote nothing, unless it is stale).
            if result.imported or "token_index" in stale_search_indexes(writer.conn):
                rebuild_token_index(writer.conn)
            result.skipped.sort(key=lambda s: s.neuron_id)
            status = "partial" if result.skipped else "done"
        finally:
            writer.end_run(result.run_id, status)
    return result


def _write_batch(
    conn: sqlite3.Connection,
    writer: AtlasWriter,
    batch: Sequence[store_seed.SeedNeuron],
    record_rowids: dict[str, list[int]],
    known: Counter[str],
    dim: int | None,
    tag: str,
    config: SeedImportConfig,
    result: SeedImportResult,
) -> None:
    """Read, check and write one batch: its neurons and their vectors in one transaction."""
    wanted = [r for rid in (str(n.id) for n in batch) for r in record_rowids.get(rid, [])]
    records: dict[str, list[store_seed.SeedRecord]] = {}
    for rec in store_seed.seed_records(conn, wanted):
        records.setdefault(str(rec.neuron_id), []).append(rec)
    embedded = store_seed.seed_embeddings(conn, [n.rowid for n in batch if n.embedded])
    prepared: list[PreparedNeuron] = []
    vectors: dict[str, tuple[str, np.ndarray]] = {}  # neuron id -> (explanation text, vector)
    for row in batch:
        nid = str(row.id)
        try:
            if known[nid] > 1:
                raise _Bad(f"neurons row {row.rowid}", f"{known[nid]} rows of neurons have this id")
            data = _neuron_data(row, records.get(nid, []))
            text, vec = row.explanation_text, None
            if row.embedded and isinstance(text, str):  # no explanation: nothing to attach to
                vec = _vector(embedded.get(row.rowid), dim, f"neurons row {row.rowid}")
            prepared.append(prepare(data))
            if vec is not None and isinstance(text, str):
                vectors[nid] = (text, vec)
        except _Bad as bad:
            result.skipped.append(Skipped(nid, [f"{config.seed} {bad.where}"], bad.reason))
        except ValueError as exc:  # prepare: a record's shape
            result.skipped.append(Skipped(nid, [f"{config.seed} activations"], str(exc)))
    with writer.transaction():
        result.imported += writer.write_neurons(prepared)
        ids = store_seed.first_explanation_ids(writer.conn, list(vectors), EXPLANATION_SOURCE)
        rows = [
            (ids[nid], store_embed.text_digest(text), vec)
            for nid, (text, vec) in vectors.items()
            if nid in ids
        ]
        if rows:
            result.embedded += store_embed.write_embeddings(writer.conn, tag, rows)


__all__ = [
    "SEED_EMBEDDER",
    "SeedImportConfig",
    "SeedImportResult",
    "describe_seed",
    "import_seed",
]
