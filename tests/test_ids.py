import pytest

from neuronatlas.errors import BadNeuronId
from neuronatlas.ids import canonical, format_id, parse_id, parse_layers


@pytest.mark.parametrize("text", ["L05N0123", "L5N123", "5:123", " l5n123 "])
def test_spellings_parse_to_the_same_neuron(text):
    assert parse_id(text) == (5, 123)
    assert canonical(text) == "L05N0123"


@pytest.mark.parametrize("text", ["", "L5", "5-123", "N5L3", "L5N-1"])
def test_bad_ids_are_refused(text):
    with pytest.raises(BadNeuronId):
        parse_id(text)


def test_format_keeps_large_indices():
    assert format_id(47, 6399) == "L47N6399"
    assert format_id(3, 11007) == "L03N11007"


def test_layer_specs():
    assert parse_layers("0-2,5") == [0, 1, 2, 5]
    assert parse_layers(None) is None
    with pytest.raises(ValueError):
        parse_layers("3-1")
    with pytest.raises(ValueError):
        parse_layers("12", n_layers=12)


@pytest.mark.parametrize(
    "text", ["L05N0123", "L5N123", "l5n123", "5:123", "L999N999999", "L5", "5-123", "L٥N1", "٥:1"]
)
def test_the_parser_accepts_what_the_route_pattern_accepts(text):
    """One grammar: a spelling the HTTP routes let through parses, and one they refuse
    (Arabic-Indic digits included) is BadNeuronId, so a schema never promises what the
    parser rejects; every canonical id matches the read model's canonical pattern."""
    import re

    from neuronatlas.ids import CANONICAL_ID_PATTERN, NEURON_ID_PATTERN

    if re.match(NEURON_ID_PATTERN, text):
        assert re.match(CANONICAL_ID_PATTERN, canonical(text))
    else:
        with pytest.raises(BadNeuronId):
            parse_id(text)
