"""The N2G evaluation protocol on small synthetic data: document split, record sets, metrics,
paired statistics, the protocol's baselines and END calibration. No model."""

from __future__ import annotations

import numpy as np
import pytest

from neuronatlas.n2g.calibrate import calibrate
from neuronatlas.n2g.evaluate import (
    NgramLookup,
    TokenLookup,
    auprc,
    baselines,
    paired_comparison,
    reach,
    score_neuron,
    summarize,
)
from neuronatlas.n2g.predict import predict
from neuronatlas.n2g.protocol import (
    TEST,
    TRAIN,
    VALIDATION,
    RecordPlan,
    Windows,
    document_windows,
    neuron_sets,
    shared_random,
    split_documents,
)
from neuronatlas.n2g.trie import Trie


class WordTokenizer:
    """Whitespace 'tokenizer': one id per word, in order of first appearance."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def __call__(self, text, add_special_tokens=False, verbose=False):
        ids = [self.vocab.setdefault(w, len(self.vocab)) for w in text.split()]
        return {"input_ids": ids}

    def strings(self, ids):
        inv = {v: k for k, v in self.vocab.items()}
        return [" " + inv[i] for i in ids]


def test_documents_are_cut_into_windows_of_one_document():
    tok = WordTokenizer()
    docs = [("wiki", " ".join(f"a{i}" for i in range(10))), ("python", "x y"), ("wiki", "b c d e")]
    w = document_windows(docs, tok, tok.strings, context=4, max_tokens=100, min_tokens=2)
    # doc 0 → 4 + 4 + 2 tokens; doc 1 → 2; doc 2 → 4
    assert [len(x) for x in w.ids] == [4, 4, 2, 2, 4]
    assert w.doc == [0, 0, 0, 1, 2] and w.kinds == ["wiki", "python", "wiki"]
    assert w.strings[3] == [" x", " y"]
    short = document_windows(docs, tok, tok.strings, context=4, max_tokens=100, min_tokens=3)
    assert short.kinds == ["wiki", "wiki"] and short.doc == [0, 0, 1]  # 2-token pieces dropped


def test_split_is_by_document_seeded_and_sized():
    side = split_documents(1000, seed=1)
    assert set(np.unique(side)) == {TRAIN, VALIDATION, TEST}
    assert [int((side == s).sum()) for s in (TRAIN, VALIDATION, TEST)] == [500, 200, 300]
    assert np.array_equal(side, split_documents(1000, seed=1))
    assert not np.array_equal(side, split_documents(1000, seed=2))
    with pytest.raises(ValueError):
        split_documents(10, seed=0, fractions=(0.5, 0.5, 0.5))


def _synthetic(n_docs=60, per_doc=3, width=6, seed=0):
    rng = np.random.default_rng(seed)
    w = Windows()
    for d in range(n_docs):
        w.kinds.append("wiki")
        for _ in range(per_doc):
            ids = rng.integers(0, 50, size=width).tolist()
            w.ids.append(ids)
            w.strings.append([f" t{i}" for i in ids])
            w.doc.append(d)
    acts = rng.random((len(w), width)).astype(np.float32)
    return w, acts


def test_record_sets_never_share_a_document_and_a_max_is_train_only():
    w, acts = _synthetic()
    side = split_documents(w.n_docs, seed=3)
    doc_side = side[np.asarray(w.doc)]
    test_row = int(np.flatnonzero(doc_side == TEST)[0])
    acts[test_row, 2] = 100.0  # the most extreme activation is in a test document
    rand = shared_random(side, w, 10, seed=3)
    plan = RecordPlan(train_top=5, train_quantiles=3, train_random=6, eval_top=4, eval_random=10)
    s = neuron_sets("0/1", 0, 1, acts, w, side, rand, plan)
    train_max = float(acts[doc_side == TRAIN].max())
    assert s.a_max == pytest.approx(train_max) and s.a_max < 100.0
    assert s.sets["test_A"][0].acts[2] == pytest.approx(100.0)  # top test window found

    doc_of = {tuple(toks): d for toks, d in zip(w.strings, w.doc, strict=True)}

    def docs_of(recs):
        return {doc_of[tuple(r.tokens)] for r in recs}

    train_docs = docs_of(s.train)
    for name in ("validation_A", "validation_B", "test_A", "test_B"):
        assert not train_docs & docs_of(s.sets[name]), name
    assert docs_of(s.sets["test_A"]) | docs_of(s.sets["test_B"]) <= set(
        np.flatnonzero(side == TEST).tolist()
    )
    cats = [r.category for r in s.train]
    assert cats.count("top") == 5 and cats.count("quantile") == 3
    # test set B is the same windows for another neuron
    other = neuron_sets("0/2", 0, 2, acts[:, ::-1].copy(), w, side, rand, plan)
    assert [r.tokens for r in other.sets["test_B"]] == [r.tokens for r in s.sets["test_B"]]
    assert len(s.sets["test_B"]) == 10
    assert s.firing_tokens("test_A") >= 1


def test_auprc_matches_scikit_learn_and_needs_a_firing_token():
    truth = [[0.9, 0.1, 0.6], [0.0, 0.8]]
    pred = [[0.5, 0.5, 0.1], [0.0, 0.3]]
    from sklearn.metrics import average_precision_score  # 1.7 s to import: here, not at collection

    expected = average_precision_score([1, 0, 1, 0, 1], [0.5, 0.5, 0.1, 0.0, 0.3])
    assert auprc(truth, pred, 0.5) == pytest.approx(expected)
    assert auprc([[0.1, None]], [[0.4, 0.2]], 0.5) is None


def test_summary_pools_counts_and_averages_neurons():
    a = score_neuron([[1.0, 0.0, 1.0, 0.0]], [[1.0, 1.0, 0.0, 0.0]], 0.5)  # tp1 fp1 fn1
    b = score_neuron([[1.0, 1.0, 1.0, 0.0]], [[1.0, 1.0, 1.0, 0.0]], 0.5)  # tp3
    assert (a.tp, a.fp, a.fn, a.f1) == (1, 1, 1, 0.5) and b.f1 == 1.0
    s = summarize([a, b])
    assert s["mean_f1"] == pytest.approx(0.75) and s["median_f1"] == pytest.approx(0.75)
    assert s["pooled_precision"] == pytest.approx(4 / 5) and s["pooled_recall"] == 4 / 5
    assert s["pooled_f1"] == pytest.approx(0.8)
    silent = score_neuron([[0.0, 0.0]], [[0.0, 0.0]], 0.5)
    assert silent.f1 is None and summarize([a, silent])["scored"] == 1


def test_paired_comparison_ci_and_wilcoxon():
    ours = [0.5 + 0.01 * i for i in range(30)]
    theirs = [0.3 + 0.01 * i for i in range(30)]
    pc = paired_comparison(ours, theirs, resamples=2000)
    assert pc.neurons == 30 and pc.mean_difference == pytest.approx(0.2)
    assert pc.ci_low == pytest.approx(0.2) and pc.ci_high == pytest.approx(0.2)
    assert pc.wilcoxon_p < 1e-5
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.1, size=200)
    pc2 = paired_comparison(noise.tolist(), [0.0] * 200, resamples=2000)
    assert pc2.ci_low < pc2.mean_difference < pc2.ci_high
    assert pc2.ci_low < 0.0 < pc2.ci_high and pc2.wilcoxon_p > 0.05
    skip = paired_comparison([0.1, None, 0.3], [0.0, 0.5, None])
    assert skip.neurons == 1 and skip.wilcoxon_p is not None
    assert paired_comparison([0.2, 0.2], [0.2, 0.2]).wilcoxon_p == 1.0


def test_protocol_baselines():
    train = [
        ([" a", " cat"], [0.0, 1.0]),
        ([" the", " cat"], [0.0, 0.2]),
        ([" my", " cat"], [0.0, 0.1]),
        (["The", " Cat"], [0.0, 0.9]),
    ]
    by_max = TokenLookup("max").fit(train)
    by_rate = TokenLookup("rate", a_max=1.0).fit(train)
    assert by_max.predict([" cat"]) == [1.0]
    assert by_rate.predict([" cat", " dog"]) == [pytest.approx(1 / 3), 0.0]  # fired 1 of 3
    strict = NgramLookup(2, backoff=False).fit(train)
    assert strict.predict([" a", " cat"]) == [0.0, 1.0]
    assert strict.predict([" your", " cat"]) == [0.0, 0.0]  # no back-off
    assert NgramLookup(2).fit(train).predict([" your", " cat"]) == [0.0, 1.0]
    normed = TokenLookup("max", "space").fit(train)
    assert normed.predict(["cat"]) == [1.0]
    fitted = baselines(train, a_max=1.0)
    assert set(fitted) >= {"token_max", "token_rate+norm", "bigram", "trigram_backoff+norm"}


def test_reach_counts_held_out_firing_a_train_token_lookup_can_find():
    train = [([" a", " cat", " sat"], [0.0, 1.0, 0.2]), ([" the", " dog"], [0.6, 0.1])]
    held = [([" cat", " dog", " fox", " a"], [0.9, 0.8, 0.7, 0.1]), ([" Cat"], [None])]
    r = reach(train, held, a_max=1.0)
    # fire at ≥ 0.5: " cat" (fired in train), " dog" (seen, never fired), " fox" (unseen)
    assert (r.firing, r.reachable, r.unseen) == (3, 1, 1)
    assert r.ceiling_f1 == pytest.approx(2 * (1 / 3) / (1 + 1 / 3))
    # the lookup by max fires on exactly the reachable tokens here: its F1 meets the ceiling
    lookup = TokenLookup("max").fit(train)
    truth = [acts for _, acts in held]
    got = score_neuron(truth, [lookup.predict(t) for t, _ in held], 0.5)
    assert got.precision == 1.0 and got.f1 == pytest.approx(r.ceiling_f1)
    assert reach(train, [([" cat"], [0.1])], a_max=1.0).ceiling_f1 is None


def test_calibration_turns_off_a_pattern_that_rarely_fires():
    trie = Trie("none", "mean")
    trie.insert([(" cat", 1.0)], 0.9)
    trie.insert([(" cat", 1.0), (" the", 0.9)], 0.8)
    train = [
        ([" the", " cat"], [0.0, 0.8]),
        ([" a", " cat"], [0.0, 0.1]),
        ([" my", " cat"], [0.0, 0.0]),
        ([" one", " cat"], [0.0, 0.2]),
    ]
    assert predict(trie, [" a", " cat"], 1.0)[1] == pytest.approx(0.9)  # fires uncalibrated
    calibrate(trie, train, a_max=1.0, mode="mean")
    assert predict(trie, [" a", " cat"], 1.0)[1] == pytest.approx(0.1)
    assert predict(trie, [" the", " cat"], 1.0)[1] == pytest.approx(0.8)
    calibrate(trie, train, a_max=1.0, mode="precision")
    assert predict(trie, [" a", " cat"], 1.0)[1] == pytest.approx(0.0)  # precision 0 of 3
    assert predict(trie, [" the", " cat"], 1.0)[1] == pytest.approx(0.8)
    again = Trie.from_json(trie.to_json())
    assert again.calibrated == trie.calibrated
    calibrate(trie, train, a_max=1.0, mode="none")
    assert predict(trie, [" a", " cat"], 1.0)[1] == pytest.approx(0.9)
