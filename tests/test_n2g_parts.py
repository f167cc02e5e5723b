"""N2G parts without a model: evaluation formulas, baselines, split, saliency, prune, text."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from neuronatlas.errors import BadInput
from neuronatlas.n2g.casings import from_tokens, load_word_to_casings
from neuronatlas.n2g.draw import graph_json, to_dot, to_svg
from neuronatlas.n2g.evaluate import NgramLookup, TokenLookup, evaluate, fire_scores
from neuronatlas.n2g.examples import Rec, near_duplicate_groups, split
from neuronatlas.n2g.explain import describe
from neuronatlas.n2g.prune import candidate_lengths, post_pivot_end
from neuronatlas.n2g.saliency import importance_matrix
from neuronatlas.n2g.settings import N2GSettings, reference_settings
from neuronatlas.n2g.trie import WILDCARD, Trie


def test_fire_scores_formulas():
    truth = [[0.0, 1.0, 0.6, None], [0.9, 0.1]]
    pred = [[0.7, 1.0, 0.0, 5.0], [0.8, 0.0]]
    s = fire_scores(truth, pred, 0.5)  # TP: 1.0, 0.9; FP: 0.0→0.7; FN: 0.6; None skipped
    assert (s.tp, s.fp, s.fn) == (2, 1, 1)
    assert s.precision == pytest.approx(2 / 3) and s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 / 3)
    empty = fire_scores([[0.0, 0.1]], [[0.0, 0.0]], 0.5)
    assert empty.f1 is None and empty.precision == 0.0


def test_baselines():
    train = [([" a", " cat"], [0.0, 1.0]), ([" the", " cat"], [0.0, 0.2])]
    tok = TokenLookup().fit(train)
    assert tok.predict([" cat", " dog"]) == [1.0, 0.0]
    ngr = NgramLookup(2).fit(train)
    assert ngr.predict([" the", " cat"]) == [0.0, 0.2]
    assert ngr.predict([" my", " cat"]) == [0.0, 1.0]  # backs off to the token lookup


def test_evaluate_reports_all_metrics_and_pearson():
    train = [([" a", " cat"], [0.0, 2.0])]
    test = [([" the", " cat", " dog"], [0.0, 1.8, 0.1])]
    ev = evaluate([[0.0, 2.0, 0.0]], test, train, a_max=2.0)
    assert ev.f1 == 1.0 and ev.baseline_token_f1 == 1.0 and ev.baseline_ngram_f1 == 1.0
    r, p = np.array([0.0, 1.8, 0.1]), np.array([0.0, 2.0, 0.0])
    assert ev.ev_correlation_score == pytest.approx(np.corrcoef(r, p)[0, 1])
    assert (ev.n_test_records, ev.n_test_tokens, ev.n_firing_tokens) == (1, 3, 1)


def _rec(cat, tokens, peak_at=0):
    acts = [0.0] * len(tokens)
    acts[peak_at] = 1.0
    return Rec(cat, 0, tokens, acts)


def test_near_duplicates_never_straddle_the_split():
    base = [f" w{i}" for i in range(30)]
    recs = []
    for i in range(10):  # ten distinct excerpts, each with a shifted near-copy
        toks = [f" x{i}_{j}" for j in range(20)]
        recs.append(_rec("top", toks))
        recs.append(_rec("random", toks[3:] + base[:3]))
    groups = near_duplicate_groups(recs, 8)
    assert len(groups) == 10
    train, _test = split(recs, N2GSettings(), "L00N0001")
    train_ids = {id(r) for r in train}
    for g in groups:
        sides = {id(recs[i]) in train_ids for i in g}
        assert len(sides) == 1
    assert 3 <= sum(r.category == "top" for r in train) <= 7
    again, _ = split(recs, N2GSettings(), "L00N0001")
    assert [r.tokens for r in again] == [r.tokens for r in train]  # seeded


def test_importance_matrix():
    clean = np.array([1.0, 2.0, -0.1])
    masked = np.array(
        [
            [0.0, 1.0, -0.5],  # masking token 0
            [1.0, 0.0, 0.0],  # masking token 1
            [1.0, 2.5, 0.0],
        ]
    )  # masking token 2
    imp = importance_matrix(clean, masked)
    assert imp[0, 0] == 1.0 and imp[0, 1] == 0.5
    assert imp[1, 0] == 0.0  # a token never matters for positions before it
    assert imp[1, 1] == 1.0
    assert imp[2, 1] == 0.0  # an increase clips to 0, and k > j is 0 anyway
    assert (imp[:, 2] == 0.0).all()  # clean ≤ 0: nothing can drop
    assert ((imp >= 0) & (imp <= 1)).all()


def test_prune_lengths_and_post_pivot():
    assert candidate_lengths(40, N2GSettings(max_context=64)) == list(range(1, 42))
    assert candidate_lengths(40, reference_settings()) == [5, 10, 15, 20, 25, 30]
    assert candidate_lengths(7, reference_settings()) == [5, 8]
    toks = [" a", " cat", " sat", " on", ".", " The", " end"]
    assert post_pivot_end(toks, 1, 5) == 5  # stops after the sentence end
    assert post_pivot_end(toks, 1, 2) == 4
    assert post_pivot_end(toks, 4, 5) == 5  # the pivot ends the sentence


def test_settings_validate_and_round_trip():
    s = reference_settings()
    assert N2GSettings.from_json(json.loads(json.dumps(s.to_json()))) == s
    with pytest.raises(BadInput):
        N2GSettings(fire_threshold=1.5)


def test_word_to_casings_format(tmp_path):
    path = tmp_path / "word_to_casings.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump(
            {"the": [["the", 17], ["The", 2], ["THE", 1]], "apple": [["Apple", 3], ["apple", 9]]}, f
        )
    table = load_word_to_casings(path)
    assert table.variants("THE") == ["the", "The", "THE"]
    assert table.commonest("APPLE") == "apple"
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(BadInput):
        load_word_to_casings(bad)
    assert from_tokens([" Paris", " paris", " Paris", "!"]).variants("paris") == ["Paris", "paris"]


def _sample_trie():
    t = Trie()
    t.insert([(" York", 1.0), (" New", 0.95)], 1.0)
    t.insert([(" York", 1.0), (WILDCARD, 0.1), (" in", 0.8)], 0.6)
    t.insert([(" London", 0.9)], 0.7)
    return t


def test_explanation_names_tokens_and_context():
    text = describe(_sample_trie())
    assert text.startswith('Fires on "York", "London"')
    assert '"New York"' in text and '"in … York"' in text


def test_explanation_names_a_split_character_not_its_empty_pieces():
    """Records show "😀" on its first piece and "" on the others; a neuron that peaks on the
    last piece is explained by the character."""
    t = Trie()
    t.insert([("", 1.0), ("", 0.9), (" 😀", 0.9), (" a", 0.2)], 1.0)
    t.insert([("", 1.0), ("", 0.9), (" 😀", 0.9), (" the", 0.8)], 0.9)
    t.insert([(" cat", 0.9)], 0.5)
    text = describe(t)
    assert text.startswith('Fires on "😀", "cat" (strongest "😀")'), text
    assert '""' not in text and '"the 😀"' in text
    labels = [n["label"] for n in graph_json(t, a_max=1.0)["nodes"]]
    assert "" not in labels and "(😀 piece)" in labels and "😀" in labels


def test_graph_json_dot_and_svg():
    g = graph_json(_sample_trie(), a_max=3.0)
    kinds = {n["label"]: n["kind"] for n in g["nodes"]}
    assert kinds == {
        "York": "activating",
        "London": "activating",
        "New": "context",
        "*": "wildcard",
        "in": "context",
    }
    by_label = {n["label"]: n for n in g["nodes"]}
    assert by_label["New"]["end"] and not by_label["*"]["end"]
    assert by_label["York"]["activation_value"] == pytest.approx(3.0)
    assert {(e["source"], e["target"]) for e in g["edges"]} == {
        (by_label["New"]["id"], by_label["York"]["id"]),
        (by_label["*"]["id"], by_label["York"]["id"]),
        (by_label["in"]["id"], by_label["*"]["id"]),
    }
    dot = to_dot(g, "L00N0001")
    assert "rankdir=RL" in dot and "penwidth=3" in dot
    svg = to_svg(dot)
    assert svg.lstrip().startswith("<?xml") or "<svg" in svg
    assert "York" in svg


class _FakeRunner:
    """Activation of neuron 0 at each position = 1.0 once the context holds token 7, else 0.1;
    records every pass."""

    def __init__(self):
        self.calls = []

    def activations(self, layer, seqs, neurons):
        self.calls.append([len(s) for s in seqs])
        out = []
        for s in seqs:
            seen, col = False, []
            for t in s:
                seen = seen or t == 7
                col.append(1.0 if seen else 0.1)
            out.append(np.array(col, dtype=np.float32)[:, None].repeat(len(neurons), 1))
        return out


def test_prune_finds_the_shortest_context_in_growing_passes():
    from neuronatlas.n2g.prune import PruneJob, prune

    ids = [1, 2, 7, 3, 4, 5, 6, 9, 9, 9]  # token 7 must stay in the context of the pivot (6)
    strings = [" a", " b", " key", " c", " d", " e", " pivot", " x", " y", "."]
    runner = _FakeRunner()
    job = PruneJob(0, ids, strings, pivot=6, full=1.0, post_fires=[True, False, False])
    (p,) = prune(runner, 0, [job], N2GSettings())
    assert p.passed and (p.start, p.pivot) == (2, 4)  # shortest prefix holding token 7: 5 tokens
    assert runner.calls == [[1, 2, 3, 4], [5, 6, 7]]  # 4 lengths, then up to 8 more (7 exist)
    assert p.end == 8  # post context trimmed after the last firing token
    assert p.scale == pytest.approx(1.0)
    untrimmed = prune(_FakeRunner(), 0, [job], N2GSettings(trim_post_context=False))[0]
    assert untrimmed.end == 10  # up to the sentence end


def test_prune_keeps_the_longest_when_nothing_passes():
    from neuronatlas.n2g.prune import PruneJob, prune

    ids = [1, 2, 3, 4, 5, 6]
    job = PruneJob(0, ids, [" t"] * 6, pivot=5, full=5.0)
    (p,) = prune(_FakeRunner(), 0, [job], reference_settings())
    assert not p.passed and p.start == 0 and p.scale == pytest.approx(50.0)
