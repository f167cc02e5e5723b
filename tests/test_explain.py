"""OpenAI's score formulas and the top-token explainer."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest

from neuronatlas.explain.top_tokens import explain_atlas, explain_records
from neuronatlas.openai_scores import (
    absolute_dev_explained_score,
    all_scores,
    ev_correlation_score,
    rsquared_score,
)
from neuronatlas.store import AtlasWriter, NeuronData, Record, prepare


def test_scores_flatten_sequences_before_scoring():
    true = [[0.0, 1.0], [2.0, 3.0, 4.0]]
    pred = [[0.5, 1.0], [2.5, 2.0, 4.5]]
    r = np.array([0, 1, 2, 3, 4.0])
    p = np.array([0.5, 1, 2.5, 2, 4.5])
    assert ev_correlation_score(true, pred) == pytest.approx(np.corrcoef(r, p)[0, 1])
    assert rsquared_score(true, pred) == pytest.approx(1 - np.mean((r - p) ** 2) / np.mean(r * r))
    assert absolute_dev_explained_score(true, pred) == pytest.approx(
        1 - np.mean(np.abs(r - p)) / np.mean(np.abs(r))
    )
    # Not the mean of per-sequence correlations:
    per_seq = np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(true, pred, strict=False)])
    assert not math.isclose(ev_correlation_score(true, pred), per_seq)


def test_undefined_scores_are_none():
    assert ev_correlation_score([[1.0, 1.0]], [[0.0, 2.0]]) is None
    assert all_scores([[0.0, 0.0]], [[1.0, 0.0]])[1:] == (None, None)


def _records(token, n=6):
    top = [Record([" a", token, " b"], [0.0, 4.0 - 0.1 * i, 0.1]) for i in range(n)]
    rnd = [
        Record([" x", " y", token if i % 3 == 0 else " z"], [0.0, 0.05, 3.0 if i % 3 == 0 else 0.0])
        for i in range(n)
    ]
    return {"top": top, "random": rnd}


def test_top_token_explanation_names_the_token_and_scores_well():
    res = explain_records(_records(" cat"))
    assert res.text == "fires on “cat”"
    assert res.ev_correlation_score > 0.95


def test_explain_atlas_writes_one_explanation_per_neuron(db_path):
    with AtlasWriter(db_path) as w:
        w.write_neurons(
            [
                prepare(NeuronData(layer=0, neuron=i, source="scrape", records=_records(tok)))
                for i, tok in enumerate([" cat", " dog", " the"])
            ]
        )
    assert explain_atlas(db_path) == 3
    assert explain_atlas(db_path) == 0  # resumable: nothing left to do
    rows = (
        sqlite3.connect(db_path)
        .execute("SELECT id, explanation_text FROM neurons ORDER BY id")
        .fetchall()
    )
    assert rows == [
        ("L00N0000", "fires on “cat”"),
        ("L00N0001", "fires on “dog”"),
        ("L00N0002", "fires on “the”"),
    ]


def test_a_neuron_that_never_fires_is_said_to_and_gets_no_score():
    recs = {"top": [Record([" a", " b"], [-0.1, -0.05])] * 4}
    res = explain_records(recs)
    assert res.text == "never fires (largest activation -0.05)"
    assert res.ev_correlation_score is None


def test_top_tokens_count_a_split_character_as_that_character():
    """The pieces of "😀" are " 😀", "", "", "" in a record; the neuron peaks on the last one
    (where the character is complete): the explanation names the character, never "" or �."""
    tokens = [" I", " saw", " 😀", "", "", "", " today"]
    acts = [0.0, 0.1, 0.2, 0.5, 1.0, 3.0, 0.0]
    recs = {"top": [Record(tokens, acts)] * 4}
    got = explain_records(recs)
    assert got is not None
    assert got.text == "fires on “😀”"
    # every piece of the character is predicted at the character's activation: correlated
    assert got.ev_correlation_score is not None and got.ev_correlation_score > 0.5
