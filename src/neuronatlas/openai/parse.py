"""Worker side of the import: read, decode and prepare a chunk of neurons.

`parse_chunk` runs in a worker process. It turns each neuron's two files into a
`PreparedNeuron` (SQL-ready rows) or a `Skipped` naming the file(s) and the reason, so the
main process only writes. Nothing here touches the database.
"""

from __future__ import annotations

import msgspec
import msgspec.structs

from neuronatlas.ids import format_id
from neuronatlas.openai.schemas import (
    NeuronRecord,
    decode_explanation_summaries,
    decode_neuron_record,
)
from neuronatlas.store.rows import Explanation, NeuronData, PreparedNeuron, Record, prepare


class Job(msgspec.Struct, array_like=True, frozen=True):
    """One neuron to parse: its two local files and how to name them in a report.

    For downloads the files are cache paths and the names are their URLs.
    """

    layer: int
    neuron: int
    explanations: str
    activations: str
    explanations_name: str
    activations_name: str


class Skipped(msgspec.Struct, array_like=True, frozen=True):
    """A neuron that was not imported: its id, the file(s) concerned and why."""

    neuron_id: str
    files: list[str]
    reason: str

    def line(self) -> str:
        return f"{self.neuron_id}: {', '.join(self.files)}: {self.reason}"


class BadFile(Exception):
    """One file that could not be used; carries the path for the report."""

    def __init__(self, path: str, reason: str):
        super().__init__(reason)
        self.path = path
        self.reason = reason


def _read(path: str, name: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise BadFile(name, f"cannot read: {exc.strerror or exc}") from None


def _why(exc: Exception) -> str:
    if isinstance(exc, msgspec.ValidationError):
        return f"wrong type: {exc}"
    if isinstance(exc, msgspec.DecodeError):
        return f"malformed JSON: {exc}"
    return str(exc)


def _check_id(path: str, found: tuple[int, int], expected: tuple[int, int]) -> None:
    if found != expected:
        raise BadFile(path, f"file is about {format_id(*found)}, expected {format_id(*expected)}")


def _records(rec: NeuronRecord) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = {
        "top": [Record(r.tokens, r.activations) for r in rec.most_positive_activation_records],
        "random": [Record(r.tokens, r.activations) for r in rec.random_sample],
    }
    for i, bucket in enumerate(rec.random_sample_by_quantile or []):
        out[f"quantile_{i}"] = [Record(r.tokens, r.activations) for r in bucket]
    return out


def parse_neuron(job: Job, source: str = "openai") -> PreparedNeuron:
    """One neuron's files → rows. Raises BadFile naming the file at fault."""
    expected = (job.layer, job.neuron)
    act_name, exp_name = job.activations_name, job.explanations_name
    try:
        rec = decode_neuron_record(_read(job.activations, act_name))
    except msgspec.DecodeError as exc:
        raise BadFile(act_name, _why(exc)) from None
    _check_id(act_name, (rec.neuron_id.layer_index, rec.neuron_id.neuron_index), expected)
    try:
        nid, summaries = decode_explanation_summaries(_read(job.explanations, exp_name))
    except msgspec.DecodeError as exc:
        raise BadFile(exp_name, _why(exc)) from None
    _check_id(exp_name, (nid.layer_index, nid.neuron_index), expected)
    data = NeuronData(
        layer=job.layer,
        neuron=job.neuron,
        source=source,
        records=_records(rec),
        mean=rec.mean,
        variance=rec.variance,
        skewness=rec.skewness,
        kurtosis=rec.kurtosis,
        quantile_boundaries=rec.quantile_boundaries,
        explanations=[
            Explanation(
                s.text, s.ev_correlation_score, s.rsquared_score, s.absolute_dev_explained_score
            )
            for s in summaries
        ],
        explanation_source=source,
    )
    try:
        return prepare(data)
    except ValueError as exc:
        raise BadFile(act_name, f"wrong shape: {exc}") from None


def parse_chunk(jobs: list[Job]) -> tuple[list[tuple], list[Skipped]]:
    """Parse a chunk of neurons; bad ones become `Skipped` entries, never exceptions.

    Prepared neurons travel back as plain tuples (`PreparedNeuron(*t)` rebuilds them):
    pickling tuples of strings is ~8x faster than pickling the Structs.
    """
    done: list[tuple] = []
    skipped: list[Skipped] = []
    for job in jobs:
        try:
            done.append(msgspec.structs.astuple(parse_neuron(job)))
        except BadFile as bad:
            skipped.append(Skipped(format_id(job.layer, job.neuron), [bad.path], bad.reason))
    return done, skipped
