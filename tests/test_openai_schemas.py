"""OpenAI neuron-explainer schemas: every serialisation quirk decodes; writers round-trip."""

from __future__ import annotations

import json
import math

import msgspec
import pytest

from neuronatlas.openai import schemas as S
from openai_fixtures import neuron_record, simulation_results


def _b(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_neuron_record_with_and_without_dataclass_name():
    for tag in (True, False):
        raw = neuron_record(3, 17, seed=1, tag=tag, quantiles=True)
        rec = S.decode_neuron_record(_b(raw))
        assert (rec.neuron_id.layer_index, rec.neuron_id.neuron_index) == (3, 17)
        assert rec.most_positive_activation_records[1].activations == [
            None if a is None else float(a)
            for a in raw["most_positive_activation_records"][1]["activations"]
        ]
        assert [len(b) for b in rec.random_sample_by_quantile] == [2, 0, 1]
        assert rec.quantile_boundaries == [0.01, None]


def test_every_float_may_be_null_and_bare_nan_reads_as_null():
    raw = neuron_record(0, 0, seed=2, null_stats=True)
    rec = S.decode_neuron_record(_b(raw))
    assert (rec.mean, rec.variance, rec.skewness, rec.kurtosis) == (None, None, None, None)
    raw["mean"] = math.nan
    raw["kurtosis"] = -math.inf
    raw["random_sample"][0]["activations"][0] = math.inf
    text = json.dumps(raw)  # Python's json writes NaN / -Infinity / Infinity bare
    assert "NaN" in text
    rec = S.decode_neuron_record(text.encode())
    assert rec.mean is None and rec.kurtosis is None
    assert rec.random_sample[0].activations[0] is None


def test_empty_random_sample_and_unicode_tokens():
    raw = neuron_record(1, 2, seed=3, empty_random=True)
    raw["most_positive_activation_records"][0]["tokens"][:3] = ["日本", "\n", " 🙂"]
    rec = S.decode_neuron_record(json.dumps(raw, ensure_ascii=False).encode("utf-8"))
    assert rec.random_sample == []
    assert rec.most_positive_activation_records[0].tokens[:3] == ["日本", "\n", " 🙂"]


@pytest.mark.parametrize("old", [False, True])
@pytest.mark.parametrize("tag", [False, True])
def test_simulation_results_old_and_new_field_names(old, tag):
    raw = simulation_results(2, 5, seed=4, old_names=old, tag=tag)
    res = S.decode_simulation_results(_b(raw))
    key = "scored_explanation_or_baseline_list" if old else "scored_explanations"
    text_key = "explanation_or_baseline" if old else "explanation"
    assert [e.explanation for e in res.scored_explanations] == [e[text_key] for e in raw[key]]
    first = res.scored_explanations[0]
    assert (
        first.scored_simulation.ev_correlation_score
        == raw[key][0]["scored_simulation"]["ev_correlation_score"]
    )
    seq = first.scored_simulation.scored_sequence_simulations[0]
    assert seq.simulation.activation_scale == "neuron_activations"  # from `unit` when old
    assert seq.simulation.expected_activations[1] is None
    assert seq.simulation.distribution_values == [[0.0, 1.0], [0.0, None]]
    nid, summaries = S.decode_explanation_summaries(_b(raw))
    assert (nid.layer_index, nid.neuron_index) == (2, 5)
    assert [s.text for s in summaries] == [e.explanation for e in res.scored_explanations]
    assert summaries[0].rsquared_score == first.scored_simulation.rsquared_score


def test_null_scores_and_missing_simulation_list():
    raw = simulation_results(0, 1, seed=5, null_scores=True)
    _, summaries = S.decode_explanation_summaries(_b(raw))
    assert all(
        s.ev_correlation_score is None
        and s.rsquared_score is None
        and s.absolute_dev_explained_score is None
        for s in summaries
    )
    bare = {
        "neuron_id": {"layer_index": 0, "neuron_index": 1},
        "scored_explanations": [
            {"explanation": " x", "scored_simulation": {"ev_correlation_score": 0.5}}
        ],
    }
    res = S.decode_simulation_results(_b(bare))
    assert res.scored_explanations[0].scored_simulation.scored_sequence_simulations == []


def test_jsonl_reads_the_first_nonempty_line():
    raw = simulation_results(0, 1, seed=6)
    data = b"\n" + _b(raw) + b"\n\n"
    assert S.decode_simulation_results(data).neuron_id.neuron_index == 1
    with pytest.raises(msgspec.DecodeError):
        S.decode_simulation_results(b"\n\n")


def test_wrong_types_and_truncation_raise_msgspec_errors():
    raw = neuron_record(0, 0, seed=7)
    raw["most_positive_activation_records"][0]["activations"] = "high"
    with pytest.raises(msgspec.ValidationError, match="activations"):
        S.decode_neuron_record(_b(raw))
    with pytest.raises(msgspec.DecodeError, match="truncated"):
        S.decode_neuron_record(_b(neuron_record(0, 0, seed=7))[:100])
    tagged = neuron_record(0, 0, seed=7)
    tagged["dataclass_name"] = "SomethingElse"
    with pytest.raises(msgspec.ValidationError):
        S.decode_neuron_record(_b(tagged))


def test_writers_emit_openai_json_that_reads_back_equal():
    raw = simulation_results(4, 9, seed=8, old_names=True)
    res = S.decode_simulation_results(_b(raw))
    line = S.encode_explanations_file(res)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = json.loads(line)
    assert back["dataclass_name"] == "NeuronSimulationResults"
    assert "scored_explanations" in back and "scored_explanation_or_baseline_list" not in back
    seq = back["scored_explanations"][0]["scored_simulation"]["scored_sequence_simulations"][0]
    assert seq["simulation"]["activation_scale"] == "neuron_activations"
    assert "unit" not in seq["simulation"]
    assert S.decode_simulation_results(line) == res
    rec = S.decode_neuron_record(_b(neuron_record(1, 1, seed=9, quantiles=True)))
    encoded = S.encode(rec)
    assert json.loads(encoded)["neuron_id"] == {
        "dataclass_name": "NeuronId",
        "layer_index": 1,
        "neuron_index": 1,
    }
    assert S.decode_neuron_record(encoded) == rec
