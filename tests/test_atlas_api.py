"""`neuronatlas.Atlas`: the Python/Jupyter view of an atlas, same data as the explorer."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import neuronatlas
from neuronatlas.errors import BadNeuronId, ModelUnavailable, NeuronNotFound


@pytest.fixture(scope="module")
def atlas(synthetic_atlas):
    path = synthetic_atlas("atlas", layers=2, per_layer=6, n_top=4, n_random=3, length=10)
    with neuronatlas.Atlas(path) as a:
        yield a


def test_atlas_is_exported_lazily():
    code = (
        "import sys, neuronatlas; assert 'neuronatlas.atlas' not in sys.modules; "
        "neuronatlas.Atlas; assert 'neuronatlas.atlas' in sys.modules; "
        "assert 'fastapi' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError):
        neuronatlas.NoSuchThing  # noqa: B018


def test_ids_and_len(atlas):
    assert len(atlas) == 12
    assert atlas.ids()[:2] == ["L00N0000", "L00N0001"] and atlas.ids(1)[-1] == "L01N0005"


def test_neuron_data_matches_the_api_shape(atlas):
    n = atlas.neuron("1:2")
    assert n.id == "L01N0002" and n["layer"] == 1
    assert n.explanation.startswith("the word")
    assert len(n.records["top"]) == 4 and len(n.records["random"]) == 3
    assert n.to_dict()["nav"]["next"] == "L01N0003" and n.page.nav.next == "L01N0003"
    with pytest.raises(NeuronNotFound):
        atlas.neuron("L07N0000")
    with pytest.raises(BadNeuronId):
        atlas.neuron("seven")


def test_neuron_html_is_self_contained_heat_maps(atlas):
    html = atlas.neuron("L00N0001")._repr_html_()
    assert "<style>" in html and "<script" not in html
    assert not re.search(r'(?:src|href)=["\']https?:', html)
    assert html.count('class="na-tok') == (4 + 3) * 10  # every shown record's tokens
    assert 'data-v="' in html and "<svg" in html  # token values on hover, histogram


def test_search_returns_rendered_results(atlas):
    results = atlas.search("river", k=3, mode="substring")
    assert results and all("river" in r.explanation for r in results)
    assert "<table>" in results._repr_html_() and results[0].id in results._repr_html_()


def test_live_needs_a_model(atlas):
    with pytest.raises(ModelUnavailable):
        atlas.activate("the cat")


def test_record_categories_read_top_quantiles_random():
    from neuronatlas.read.render import category_order

    got = category_order(["random", "quantile_10", "quantile_2", "top", "quantile_0"])
    assert got == ["top", "quantile_0", "quantile_2", "quantile_10", "random"]
