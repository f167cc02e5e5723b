"""N2G end to end on the tiny token-detector GPT-2 and a small atlas of its real activations."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from n2g_atlas import build_atlas
from neuronatlas.cli import app
from neuronatlas.errors import BadInput, ModelUnavailable
from neuronatlas.store import AtlasWriter, open_reader
from neuronatlas.store import n2g as n2g_store

DETECTORS = ["L00N0003", "L01N0005", "L01N0007"]
OTHERS = [(0, 10), (1, 20)]


@pytest.fixture(scope="module")
def loaded(tiny_gpt2_dir):
    from neuronatlas.models import load_model

    return load_model(str(tiny_gpt2_dir))


@pytest.fixture(scope="module")
def atlas(tmp_path_factory, tiny_gpt2_dir):
    db = tmp_path_factory.mktemp("n2g") / "atlas.db"
    return build_atlas(db, tiny_gpt2_dir, [(0, 3), (1, 5), (1, 7), *OTHERS])


@pytest.fixture(scope="module")
def built(atlas):
    from neuronatlas.n2g.run import run_n2g

    report = run_n2g(atlas, all_=True)
    assert report.failed == []
    return atlas, report


def test_vocab_index_round_trips_gpt2_tokens(loaded):
    from neuronatlas.n2g.examples import VocabIndex

    vocab = VocabIndex(loaded)
    text = "The café's naïve owner said:\n\t'hello' — 42 cats, 3.5% off! <|endoftext|>x"
    ids = loaded.tokenizer.encode(text)
    strings = loaded.token_strings(ids)
    assert vocab.to_ids(strings) == ids
    split_char = loaded.tokenizer.encode("“hello” 28\u202fkm 😀")  # split UTF-8 characters
    shown = loaded.record_strings(split_char)
    assert "" in shown and "\ufffd" not in "".join(shown)
    assert vocab.to_ids(shown) == split_char  # whole characters map back to their pieces
    from neuronatlas.models.tokens import legacy_strings

    old = legacy_strings(loaded.strings, split_char)  # what older atlases stored
    assert any("\ufffd" in p for p in old)
    assert vocab.to_ids(old) is None  # refused, never guessed


def test_mask_token_is_chosen_on_purpose(loaded):
    from neuronatlas.n2g.saliency import choose_mask

    mask = choose_mask(loaded.tokenizer)
    assert mask.token_id == 50256 and "special" in mask.reason  # not id 1, which is '"'
    assert choose_mask(loaded.tokenizer, forced=1).token == '"'


def test_detector_graphs_fire_exactly_on_their_token(built):
    atlas, report = built
    assert set(DETECTORS) <= set(report.done)
    conn = open_reader(atlas)
    for nid in DETECTORS:
        m = n2g_store.read_metrics(conn, nid)
        assert m.f1 >= 0.9, (nid, m)
        assert m.n_firing_tokens > 0 and m.ev_correlation_score > 0.9
        graph = n2g_store.read_graph(conn, nid)
        assert graph.mask_token["id"] == 50256
        assert graph.settings["substitute_sources"] == ["model"]
        roots = graph.trie["nodes"]
        activating = {row[1] for row in roots if row[0] == 0}
        detectors = json.loads((graph_model_dir(graph) / "detectors.json").read_text())
        assert activating == {detectors[nid]["token"].strip()}
        # substitutes of the detector token all fail: evidence that the token is required
        node = next(row for row in roots if row[0] == 0)
        assert node[7] > 0 and node[8] == node[7]


def graph_model_dir(graph):
    from pathlib import Path

    return Path(graph.model)


def test_show_json_reports_n2g(built):
    atlas, _ = built
    out = CliRunner().invoke(app, ["show", "L01N0005", "--db", str(atlas), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    n2g = {**data["n2g"]["metrics"], "explanation": data["n2g"]["explanation"]}
    for key in (
        "precision",
        "recall",
        "f1",
        "baseline_token_f1",
        "baseline_ngram_f1",
        "ev_correlation_score",
        "explanation",
    ):
        assert key in n2g
    assert n2g["f1"] >= 0.9 and "dog" in n2g["explanation"]
    sources = [e["source"] for e in data["explanations"]]
    assert "n2g" in sources
    text = CliRunner().invoke(app, ["show", "L01N0005", "--db", str(atlas)]).stdout
    assert f"N2G F1 {n2g['f1']:.3f}" in text


def test_trie_predicts_identically_after_reload(atlas, loaded):
    from neuronatlas.n2g.api import load_trie, neuron_graph, predict_text
    from neuronatlas.n2g.examples import load_examples
    from neuronatlas.n2g.predict import predict
    from neuronatlas.n2g.run import Session, finish_neuron
    from neuronatlas.n2g.settings import N2GSettings
    from neuronatlas.store import reader

    settings = N2GSettings()
    session = Session(loaded, settings, prepend_bos=True)
    conn = open_reader(atlas)
    examples = [load_examples(conn, "L00N0010", settings)]
    build = session.build(0, examples, stored_full=True)[0]
    assert len(build.trie) > 0
    with AtlasWriter(atlas) as w:
        finish_neuron(w, build, settings, session.mask, "tiny", None, {})
    conn = open_reader(atlas)
    trie, a_max = load_trie(conn, "L00N0010")
    assert trie.to_json() == build.trie.to_json()
    for recs in reader.records(conn, "L00N0010").values():
        for r in recs:
            want = predict(build.trie, r.tokens, build.examples.a_max)
            assert predict_text(conn, "L00N0010", r.tokens) == want
            assert predict(trie, r.tokens, a_max) == want
    page = neuron_graph(conn, "L00N0010")
    assert page["graph"]["nodes"] and "<svg" in page["svg"]
    assert page["metrics"]["n_test_records"] > 0 and page["explanation"]


def test_cli_is_resumable_and_reports_skips(built):
    atlas, _ = built
    runner = CliRunner()
    again = runner.invoke(app, ["n2g", "--db", str(atlas), "--all", "--silent"])
    assert again.exit_code == 0, again.output
    bad = runner.invoke(
        app, ["n2g", "--db", str(atlas), "--neurons", "L01N0005,L01N0099", "--silent"]
    )
    assert bad.exit_code == 3
    assert "L01N0099" in bad.stderr
    none = runner.invoke(app, ["n2g", "--db", str(atlas)])
    assert isinstance(none.exception, BadInput) and "--all" in str(none.exception)


@pytest.mark.slow
def test_batched_schedule_needs_far_fewer_model_tokens_than_reference(atlas, loaded):
    from neuronatlas.n2g.examples import load_examples
    from neuronatlas.n2g.run import Session
    from neuronatlas.n2g.settings import N2GSettings, reference_settings

    conn = open_reader(atlas)
    ours = Session(loaded, N2GSettings(), prepend_bos=True)
    ref = Session(loaded, reference_settings(pass_structure="reference"), prepend_bos=True)
    exs = [load_examples(conn, nid, ours.settings) for nid in ("L01N0005", "L01N0007")]
    ours.build(1, exs, stored_full=True)
    ref.build(
        1,
        [load_examples(conn, nid, ref.settings) for nid in ("L01N0005", "L01N0007")],
        stored_full=False,
    )
    assert ref.runner.count.tokens > 3 * ours.runner.count.tokens
    assert ref.runner.count.passes > 10 * ours.runner.count.passes


def test_substitute_sources(loaded):
    from neuronatlas.n2g.augment import AugmentContext, make_sources
    from neuronatlas.n2g.casings import CasingTable
    from neuronatlas.n2g.examples import VocabIndex
    from neuronatlas.n2g.forward import Runner

    vocab = VocabIndex(loaded)
    ctx = AugmentContext(Runner(loaded, True), vocab)
    ctx._casings = CasingTable({"cat": [("cat", 5.0), ("Cat", 2.0), ("CAT", 1.0)]}, "test")
    model, emb, casing = make_sources(["model", "embedding", "casing"], ctx)
    ids = loaded.tokenizer.encode(" the cat sat")
    for source in (model, emb):
        (cands,) = source.propose([(ids, 1)], 5)
        assert len(cands) == 5 and ids[1] not in cands and len(set(cands)) == 5
    (cands,) = casing.propose([(ids, 1)], 5)
    assert [vocab.strings[c] for c in cands][:2] == [" Cat", " CAT"]


def test_distilbert_source_says_it_needs_the_hub(loaded):
    from neuronatlas.n2g.augment import AugmentContext, make_sources
    from neuronatlas.n2g.examples import VocabIndex
    from neuronatlas.n2g.forward import Runner

    ctx = AugmentContext(Runner(loaded, True), VocabIndex(loaded))
    with pytest.raises(ModelUnavailable, match="distilbert"):
        make_sources(["distilbert"], ctx)


@pytest.mark.slow
def test_vocab_index_round_trips_gemma_sentencepiece():
    """SentencePiece keeps byte-fallback pieces (`<0x2C>`) beside the characters they encode:
    shared strings must resolve to the id the tokenizer itself produces."""
    from neuronatlas.models import load_model
    from neuronatlas.n2g.examples import VocabIndex

    loaded = load_model("default")
    vocab = VocabIndex(loaded)
    text = "The café costs 2,500 euros.\n  Indented   text — done! 日本語 ok"
    ids = loaded.tokenizer.encode(text, add_special_tokens=False)
    assert vocab.to_ids(loaded.record_strings(ids)) == ids
    rare = "Runes ᚠᛇᚻ and 🜂🜄 at 28\u202fkm"  # byte fallback: characters split into <0xXX>
    ids = loaded.tokenizer.encode(rare, add_special_tokens=False)
    shown = loaded.record_strings(ids)
    assert "" in shown and "".join(shown) == rare
    assert vocab.to_ids(shown) == ids


def test_runner_shares_rows_across_neurons_and_stops_at_the_layer(loaded):
    import numpy as np

    from neuronatlas.n2g.forward import Runner

    runner = Runner(loaded, prepend_bos=True)
    cat = loaded.tokenizer.encode(" the cat")
    dog = loaded.tokenizer.encode(" a dog")
    out = runner.activations(0, [cat, dog, cat], [3, 10])  # `cat` asked twice: one row
    assert runner.count.rows == 2 and runner.count.passes == 1
    assert runner.count.tokens == len(cat) + len(dog) + 2  # BOS counted
    assert runner.count.token_layers == runner.count.tokens  # layer 0 of 2: one block each
    assert np.array_equal(out[0], out[2]) and out[0].shape == (len(cat), 2)
    full = loaded.neuron_activations([[loaded.bos_token_id, *cat]], [0])[0][0, 1:, [3, 10]]
    assert np.allclose(out[0], full.numpy(), atol=1e-5)
    assert out[0][1, 0] > 5 and out[0][0, 0] < 1  # the " cat" detector fires on " cat"


def test_every_firing_token_can_be_a_pivot(atlas, loaded):
    from neuronatlas.n2g.examples import load_examples
    from neuronatlas.n2g.predict import predict
    from neuronatlas.n2g.run import Session
    from neuronatlas.n2g.settings import N2GSettings

    conn = open_reader(atlas)
    results = {}
    for pivots in ("max", "firing"):
        session = Session(loaded, N2GSettings(pivots=pivots), prepend_bos=True)
        ex = load_examples(conn, "L01N0007", session.settings)  # " the": often twice a record
        (build,) = session.build(1, [ex], stored_full=True)
        results[pivots] = build
        for r in ex.test:
            pred = predict(build.trie, r.tokens, ex.a_max)
            assert all((p > 0) == (t == " the") for p, t in zip(pred, r.tokens, strict=False))
    assert results["firing"].used_examples > results["max"].used_examples


def test_runner_memo_runs_a_sequence_once_for_every_neuron_of_its_layer(loaded):
    import numpy as np

    from neuronatlas.n2g.forward import Runner

    plain = Runner(loaded, prepend_bos=True)
    memo: dict = {}
    first, second = Runner(loaded, prepend_bos=True), Runner(loaded, prepend_bos=True)
    first.memo = second.memo = memo
    cat = loaded.tokenizer.encode(" the cat")
    dog = loaded.tokenizer.encode(" a dog")
    a = first.activations(0, [cat, dog], [3, 10])
    b = second.activations(0, [dog, cat], [10])  # other runner, other neuron subset: no pass
    assert first.count.passes == 1 and second.count.passes == 0
    want = plain.activations(0, [cat, dog], [3, 10])
    assert np.allclose(a[0], want[0]) and np.allclose(a[1], want[1])
    assert np.allclose(b[0][:, 0], want[1][:, 1]) and np.allclose(b[1][:, 0], want[0][:, 1])
    c = second.activations(0, [cat], [5])  # a new neuron of the layer: one more pass
    assert second.count.passes == 1 and c[0].shape == (len(cat), 1)
    assert np.allclose(c[0], plain.activations(0, [cat], [5])[0])
    top = first.next_token_top([cat], 3)
    assert np.array_equal(second.next_token_top([cat], 3)[0], top[0])
    assert second.count.passes == 1


def test_calibrated_build_keeps_detectors_and_stores_calibration(atlas, loaded):
    from neuronatlas.n2g.build import assemble
    from neuronatlas.n2g.examples import load_examples
    from neuronatlas.n2g.predict import predict
    from neuronatlas.n2g.run import Session
    from neuronatlas.n2g.settings import N2GSettings
    from neuronatlas.n2g.trie import Trie

    conn = open_reader(atlas)
    session = Session(loaded, N2GSettings(calibrate="mean"), prepend_bos=True)
    ex = load_examples(conn, "L01N0007", session.settings)
    (build,) = session.build(1, [ex], stored_full=True)
    assert build.trie.calibrated  # measured on the train records
    again = Trie.from_json(build.trie.to_json())
    for r in ex.test:
        pred = predict(build.trie, r.tokens, ex.a_max)
        assert pred == predict(again, r.tokens, ex.a_max)
        assert all(
            (p >= 0.5 * ex.a_max) == (t == " the") for p, t in zip(pred, r.tokens, strict=True)
        )
    plain = assemble(build, N2GSettings())  # same sources, no model pass, no calibration
    assert not plain.calibrated and len(plain) == len(build.trie)


def test_next_token_top_at_chosen_rows_equals_the_full_head(loaded):
    import numpy as np

    from neuronatlas.n2g.forward import Runner

    runner = Runner(loaded, prepend_bos=True)
    seqs = [loaded.tokenizer.encode(" the cat sat on"), loaded.tokenizer.encode(" a dog")]
    full = runner.next_token_top(seqs, 4)
    some = runner.next_token_top(seqs, 4, rows=[[1, 3], [2]])
    assert np.array_equal(some[0][[1, 3]], full[0][[1, 3]])
    assert np.array_equal(some[1][2], full[1][2])
    # one batch: the head ran at rows 1-3 of both sequences (the union), never at row 0
    assert (some[0][0] == -1).all() and (some[1][0] == -1).all()
