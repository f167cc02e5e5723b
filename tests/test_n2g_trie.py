"""N2G trie and prediction: insertion, aggregation, wildcards, backtracking, JSON round trip."""

from __future__ import annotations

import json

import pytest

from neuronatlas.n2g.predict import best_match, predict, predict_normalized
from neuronatlas.n2g.trie import WILDCARD, Trie, normalize_token


def test_normalisation_modes():
    assert normalize_token(" cat", "space") == "cat"
    assert normalize_token(" The", "space") == "The"
    assert normalize_token(" The", "space_title") == "the"
    assert normalize_token("THE", "space_title") == "THE"
    assert normalize_token("iPhone", "space_title") == "iPhone"
    assert normalize_token("\n", "space") == "\n"
    assert normalize_token(" cat", "none") == " cat"


def test_single_token_line_predicts_everywhere_that_token_appears():
    t = Trie()
    t.insert([(" cat", 1.0)], 0.9)
    assert predict_normalized(t, [" a", " cat", "cat", " dog"]) == [0.0, 0.9, 0.9, 0.0]
    assert predict(t, [" cat"], a_max=2.0) == [1.8]


def test_end_activations_are_aggregated_not_first_wins():
    mean, mx = Trie(aggregate="mean"), Trie(aggregate="max")
    for t in (mean, mx):
        t.insert([(" cat", 1.0)], 0.6)
        t.insert([(" cat", 1.0)], 1.0)
    assert predict_normalized(mean, [" cat"]) == [pytest.approx(0.8)]
    assert predict_normalized(mx, [" cat"]) == [1.0]


def test_context_and_wildcard_lines():
    t = Trie()
    # "New York" fires strongly; "in * York" fires a bit; York alone is not a line.
    t.insert([(" York", 1.0), (" New", 0.9)], 1.0)
    t.insert([(" York", 1.0), (WILDCARD, 0.1), (" in", 0.8)], 0.6)
    assert predict_normalized(t, [" New", " York"]) == [0.0, 1.0]
    assert predict_normalized(t, [" in", " old", " York"]) == [0.0, 0.0, 0.6]
    assert predict_normalized(t, [" old", " York"]) == [0.0, 0.0]  # no complete match


def test_backtracking_finds_a_match_behind_a_failed_exact_branch():
    t = Trie()
    # exact path " B" then needs " X"; wildcard path then needs " A"
    t.insert([(" C", 1.0), (" B", 0.9), (" X", 0.9)], 0.9)
    t.insert([(" C", 1.0), (WILDCARD, 0.1), (" A", 0.9)], 0.7)
    # text "A B C": exact branch B → X fails (A ≠ X); a greedy matcher would stop there.
    assert predict_normalized(t, [" A", " B", " C"]) == [0.0, 0.0, 0.7]


def test_best_match_rule_deepest_then_highest():
    t = Trie()
    t.insert([(" C", 1.0)], 0.95)
    t.insert([(" C", 1.0), (" B", 0.9)], 0.6)  # deeper but lower: wins
    t.insert([(" C", 1.0), (WILDCARD, 0.1)], 0.8)  # same depth as " B", higher: wins the tie
    depth, value, _ = best_match(t, ["A", "B", "C"], 2)
    assert (depth, value) == (2, 0.8)
    assert predict_normalized(t, [" C"]) == [0.95]


def test_json_round_trip_predicts_identically():
    t = Trie(normalize="space_title", aggregate="max")
    t.insert([(" York", 1.0), (" New", 0.9)], 1.0, [(5, 4), (5, 5)])
    t.insert([(" York", 1.0), (WILDCARD, 0.1), (" in", 0.8)], 0.6)
    t.insert([("\n", 0.5)], 0.55)
    text = json.dumps(t.to_json())
    back = Trie.from_json(json.loads(text))
    assert back.to_json() == t.to_json()
    seq = [" in", " the", " York", " New", " York", "\n", " new", " york"]
    assert predict_normalized(back, seq) == predict_normalized(t, seq)
    node = back.children[0]["york"]
    assert (back.subs_tried[node], back.subs_failed[node]) == (5, 4)


def test_unknown_format_version_is_refused():
    with pytest.raises(ValueError):
        Trie.from_json({"version": 99, "normalize": "space", "aggregate": "mean", "nodes": []})
