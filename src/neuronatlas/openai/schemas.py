"""msgspec Structs for OpenAI's neuron-explainer files, lenient readers and exact writers.

The public Structs (`NeuronRecord`, `NeuronSimulationResults`, ...) are the canonical shape:
encoding one gives the JSON OpenAI's own code writes, `dataclass_name` first. Reading is
lenient in the ways the published files need (see docs OPENAI_FORMATS.md):

* `dataclass_name` may be present or absent (it is a msgspec tag: optional on decode);
* every float may be `null` (NaN and ±inf were written as null); files written by Python's
  `json` with bare `NaN`/`Infinity` are accepted too, through a slower fallback;
* old field names: `unit` → `activation_scale`, `scored_explanation_or_baseline_list` →
  `scored_explanations`, `explanation_or_baseline` → `explanation`, and both `simulation` and
  `sequence_simulation` in a ScoredSequenceSimulation.

msgspec renames map one Python name to one wire name, so the four types with aliases are read
through private `_Wire*` Structs that carry both names and are then normalised. The importer
does not need the per-sequence simulations at all: `decode_explanation_summaries` reads only
each explanation's text and three scores and lets msgspec skip the rest unparsed.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import msgspec

Float = float | None
_T = TypeVar("_T")


def _tagged(name: str) -> dict[str, Any]:
    return {"tag_field": "dataclass_name", "tag": name, "kw_only": True}


# -- canonical structs (decode + encode) -----------------------------------------------------


class NeuronId(msgspec.Struct, **_tagged("NeuronId")):
    """A neuron's position: layer and index within the layer's MLP, both 0-based."""

    layer_index: int
    neuron_index: int


class ActivationRecord(msgspec.Struct, **_tagged("ActivationRecord")):
    """One excerpt: decoded token strings and the neuron's activation on each."""

    tokens: list[str]
    activations: list[Float]


class NeuronRecord(msgspec.Struct, **_tagged("NeuronRecord")):
    """The `collated-activations/{L}/{N}.json` file: samples and moments of one neuron."""

    neuron_id: NeuronId
    random_sample: list[ActivationRecord]
    random_sample_by_quantile: list[list[ActivationRecord]] | None = None
    quantile_boundaries: list[Float] | None = None
    mean: Float = None
    variance: Float = None
    skewness: Float = None
    kurtosis: Float = None
    most_positive_activation_records: list[ActivationRecord] = []


class SequenceSimulation(msgspec.Struct, **_tagged("SequenceSimulation")):
    """A simulator's predicted activations for one sequence."""

    tokens: list[str]
    expected_activations: list[Float]
    activation_scale: str | None = None
    distribution_values: list[list[Float]] = []
    distribution_probabilities: list[list[Float]] = []
    uncalibrated_simulation: SequenceSimulation | None = None


class ScoredSequenceSimulation(msgspec.Struct, **_tagged("ScoredSequenceSimulation")):
    """One sequence's simulation, its true activations and the per-sequence scores."""

    simulation: SequenceSimulation
    true_activations: list[Float]
    ev_correlation_score: Float = None
    rsquared_score: Float = None
    absolute_dev_explained_score: Float = None


class ScoredSimulation(msgspec.Struct, **_tagged("ScoredSimulation")):
    """All sequences simulated for one explanation and the explanation's three scores."""

    scored_sequence_simulations: list[ScoredSequenceSimulation] = []
    ev_correlation_score: Float = None
    rsquared_score: Float = None
    absolute_dev_explained_score: Float = None


class ScoredExplanation(msgspec.Struct, **_tagged("ScoredExplanation")):
    """An explanation (raw text, often with a leading space) and how well it simulates."""

    explanation: str
    scored_simulation: ScoredSimulation


class NeuronSimulationResults(msgspec.Struct, **_tagged("NeuronSimulationResults")):
    """One line of `explanations/{L}/{N}.jsonl`: a neuron's scored explanations, best first."""

    neuron_id: NeuronId
    scored_explanations: list[ScoredExplanation] = []


# -- wire structs: every accepted name, normalised into the canonical ones --------------------


class _Wire(msgspec.Struct, kw_only=True):
    dataclass_name: str | None = None


class _WireSequenceSimulation(_Wire, kw_only=True):
    tokens: list[str]
    expected_activations: list[Float]
    activation_scale: str | None = None
    unit: str | None = None
    distribution_values: list[list[Float]] = []
    distribution_probabilities: list[list[Float]] = []
    uncalibrated_simulation: _WireSequenceSimulation | None = None

    def canonical(self) -> SequenceSimulation:
        return SequenceSimulation(
            tokens=self.tokens,
            expected_activations=self.expected_activations,
            activation_scale=self.activation_scale
            if self.activation_scale is not None
            else self.unit,
            distribution_values=self.distribution_values,
            distribution_probabilities=self.distribution_probabilities,
            uncalibrated_simulation=None
            if self.uncalibrated_simulation is None
            else self.uncalibrated_simulation.canonical(),
        )


class _WireScoredSequenceSimulation(_Wire, kw_only=True):
    simulation: _WireSequenceSimulation | None = None
    sequence_simulation: _WireSequenceSimulation | None = None
    true_activations: list[Float]
    ev_correlation_score: Float = None
    rsquared_score: Float = None
    absolute_dev_explained_score: Float = None

    def canonical(self) -> ScoredSequenceSimulation:
        sim = self.simulation if self.simulation is not None else self.sequence_simulation
        if sim is None:
            raise msgspec.ValidationError(
                "ScoredSequenceSimulation has neither `simulation` nor `sequence_simulation`"
            )
        return ScoredSequenceSimulation(
            simulation=sim.canonical(),
            true_activations=self.true_activations,
            ev_correlation_score=self.ev_correlation_score,
            rsquared_score=self.rsquared_score,
            absolute_dev_explained_score=self.absolute_dev_explained_score,
        )


class _WireScoredSimulation(_Wire, kw_only=True):
    scored_sequence_simulations: list[_WireScoredSequenceSimulation] = []
    ev_correlation_score: Float = None
    rsquared_score: Float = None
    absolute_dev_explained_score: Float = None

    def canonical(self) -> ScoredSimulation:
        return ScoredSimulation(
            scored_sequence_simulations=[s.canonical() for s in self.scored_sequence_simulations],
            ev_correlation_score=self.ev_correlation_score,
            rsquared_score=self.rsquared_score,
            absolute_dev_explained_score=self.absolute_dev_explained_score,
        )


class _WireScoredExplanation(_Wire, kw_only=True):
    explanation: str | None = None
    explanation_or_baseline: str | None = None
    scored_simulation: _WireScoredSimulation = msgspec.field(default_factory=_WireScoredSimulation)

    def text(self) -> str:
        text = self.explanation if self.explanation is not None else self.explanation_or_baseline
        if text is None:
            raise msgspec.ValidationError(
                "ScoredExplanation has neither `explanation` nor `explanation_or_baseline`"
            )
        return text

    def canonical(self) -> ScoredExplanation:
        return ScoredExplanation(
            explanation=self.text(), scored_simulation=self.scored_simulation.canonical()
        )


class _WireResults(_Wire, kw_only=True):
    neuron_id: NeuronId
    scored_explanations: list[_WireScoredExplanation] | None = None
    scored_explanation_or_baseline_list: list[_WireScoredExplanation] | None = None

    def items(self) -> list:
        if self.scored_explanations is not None:
            return self.scored_explanations
        return self.scored_explanation_or_baseline_list or []

    def canonical(self) -> NeuronSimulationResults:
        return NeuronSimulationResults(
            neuron_id=self.neuron_id, scored_explanations=[e.canonical() for e in self.items()]
        )


# The importer's slim view of an explanations line: text and scores only. Fields not declared
# here (the per-sequence simulations, by far the bulk of the file) are skipped by msgspec.


class _SlimScores(msgspec.Struct):
    ev_correlation_score: Float = None
    rsquared_score: Float = None
    absolute_dev_explained_score: Float = None


class _SlimExplanation(msgspec.Struct):
    explanation: str | None = None
    explanation_or_baseline: str | None = None
    scored_simulation: _SlimScores = msgspec.field(default_factory=_SlimScores)


class _SlimResults(msgspec.Struct):
    neuron_id: NeuronId
    scored_explanations: list[_SlimExplanation] | None = None
    scored_explanation_or_baseline_list: list[_SlimExplanation] | None = None


class ExplanationSummary(msgspec.Struct, frozen=True):
    """What the store keeps of one scored explanation."""

    text: str
    ev_correlation_score: Float
    rsquared_score: Float
    absolute_dev_explained_score: Float


# -- decoding -------------------------------------------------------------------------------

_decoders: dict[type, msgspec.json.Decoder] = {}


def _decode(data: bytes | str, type_: type[_T]) -> _T:
    """Decode with msgspec; on bare NaN/Infinity (Python `json` output) fall back to `json`.

    Errors are msgspec's own (DecodeError for broken JSON, ValidationError for wrong types)
    so callers can name the reason.
    """
    dec = _decoders.get(type_)
    if dec is None:
        dec = _decoders[type_] = msgspec.json.Decoder(type_)
    try:
        return dec.decode(data)
    except msgspec.DecodeError as exc:
        if isinstance(exc, msgspec.ValidationError):
            raise
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if "NaN" not in text and "Infinity" not in text:
            raise
        try:
            loose = json.loads(text, parse_constant=lambda _: None)
        except ValueError:
            raise exc from None
        return msgspec.convert(loose, type_)


def _first_line(data: bytes | str) -> bytes | str:
    """The first non-empty line of a .jsonl file (OpenAI's have exactly one)."""
    nl = b"\n" if isinstance(data, bytes) else "\n"
    for line in data.split(nl):  # type: ignore[arg-type]
        if line.strip():
            return line
    raise msgspec.DecodeError("empty explanations file")


def decode_neuron_record(data: bytes | str) -> NeuronRecord:
    """Parse a `collated-activations` (or seed `activations`) file."""
    return _decode(data, NeuronRecord)


def decode_simulation_results(data: bytes | str) -> NeuronSimulationResults:
    """Parse the first line of an explanations `.jsonl`, old field names included."""
    return _decode(_first_line(data), _WireResults).canonical()


def decode_explanation_summaries(data: bytes | str) -> tuple[NeuronId, list[ExplanationSummary]]:
    """The neuron id and (text, three scores) of each explanation, skipping the simulations."""
    raw = _decode(_first_line(data), _SlimResults)
    items = raw.scored_explanations
    if items is None:
        items = raw.scored_explanation_or_baseline_list or []
    out = []
    for i, e in enumerate(items):
        text = e.explanation if e.explanation is not None else e.explanation_or_baseline
        if text is None:
            raise msgspec.ValidationError(
                f"scored explanation {i} has neither `explanation` nor `explanation_or_baseline`"
            )
        s = e.scored_simulation
        out.append(
            ExplanationSummary(
                text, s.ev_correlation_score, s.rsquared_score, s.absolute_dev_explained_score
            )
        )
    return raw.neuron_id, out


# -- encoding -------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()


def encode(value: msgspec.Struct) -> bytes:
    """Compact OpenAI JSON for any canonical Struct (`dataclass_name` included, NaN as null)."""
    return _encoder.encode(value)


def encode_explanations_file(results: NeuronSimulationResults) -> bytes:
    """The bytes of an explanations `.jsonl` file: one line, newline-terminated."""
    return _encoder.encode(results) + b"\n"
