"""N2G prunes a round of batches before it builds them, so its progress counts work (model
tokens, predicted from the pruned examples) instead of neurons; the tiny detector GPT-2 and a
small atlas of its real activations."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from n2g_atlas import build_atlas
from neuronatlas.ids import format_id
from neuronatlas.n2g import run as n2g_run
from neuronatlas.n2g.order import Batch
from neuronatlas.n2g.run import Work, _rounds

NEURONS = [(0, 3), (0, 10), (0, 11), (0, 12), (0, 13), (1, 5), (1, 7), (1, 20), (1, 21)]
IDS = [format_id(*n) for n in NEURONS]


@pytest.fixture(scope="module")
def work_atlas(tmp_path_factory, tiny_gpt2_dir):
    db = tmp_path_factory.mktemp("n2g_work") / "atlas.db"
    return build_atlas(db, tiny_gpt2_dir, NEURONS, n_sentences=120)


def _graphs(db) -> list[tuple]:
    """Every graph row but its batch's cost share (which depends on the batch's make-up)."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT neuron_id, a_max, trie, mask_token, json_remove(stats, '$.model_tokens_share')"
            " FROM n2g_graphs ORDER BY neuron_id"
        ).fetchall()
        return rows + conn.execute("SELECT * FROM n2g_metrics ORDER BY neuron_id").fetchall()
    finally:
        conn.close()


def test_rounds_cut_after_enough_neurons():
    batches = [Batch(0, ["a", "b"]), Batch(1, ["c"]), Batch(0, ["d", "e"]), Batch(1, ["f"])]
    assert _rounds(batches, 3) == [batches[:2], batches[2:]]
    assert _rounds(batches, 100) == [batches]
    assert _rounds(batches, 1) == [[b] for b in batches]
    assert _rounds([], 3) == []


def test_work_counts_unpruned_neurons_at_the_mean_of_the_pruned():
    said: list[tuple[float, float]] = []
    work = Work(10, lambda done, total: said.append((done, total)))
    assert work.total() == 10  # nothing known yet
    prune = n2g_run.PRUNE_TOKENS_PER_BUILD_TOKEN
    work.add_pruned(2, int(40 * prune), 160.0)  # 2 neurons: 40 + 160 = 100 each
    assert said[-1] == pytest.approx((40.0, 1000.0))
    work.add_pruned(3, int(30 * prune), 30.0)  # 5 neurons known at 260: 52 each
    assert said[-1] == pytest.approx((70.0, 520.0))
    work.add_built(160.0)
    assert said[-1] == pytest.approx((230.0, 520.0))


def test_a_round_of_pruning_first_stores_the_graphs_a_batch_at_a_time_would(
    work_atlas, tmp_path, monkeypatch
):
    runs = {}
    for name, round_neurons in (("batch by batch", 1), ("one round", 2048)):
        monkeypatch.setattr(n2g_run, "ROUND_NEURONS", round_neurons)
        db = tmp_path / f"{round_neurons}.db"
        shutil.copy(work_atlas, db)
        said: list[tuple[float, float]] = []
        seen: list[str] = []
        report = n2g_run.run_n2g(
            db,
            all_=True,
            batch_neurons=2,
            progress=lambda nid, _n, seen=seen: seen.append(nid),
            on_work=lambda done, total, said=said: said.append((done, total)),
        )
        assert report.failed == [] and sorted(report.done) == IDS
        assert len(said) == 5 + len(IDS)  # each of the 5 batches pruned, each neuron built
        assert all(0 < d <= t for d, t in said)
        assert [d for d, _ in said] == sorted(d for d, _ in said)
        assert said[-1][0] == pytest.approx(said[-1][1])  # all done
        runs[name] = (seen, _graphs(db), said)
    (seen_a, rows_a, _), (seen_b, rows_b, said_b) = runs.values()
    assert seen_a == seen_b and rows_a == rows_b
    # one round: the total is known (not sampled) once the 5 batches are pruned
    assert len({round(t, 6) for _, t in said_b[4:]}) == 1
    assert said_b[4][0] < said_b[4][1] / 2  # pruning is the small part of the work


def test_predicted_build_tokens_without_augmentation(work_atlas):
    """Saliency feeds L + 1 rows of L tokens (and a BOS) for an example cut to L tokens: with
    no substitutes to try, that is the prediction, exact for one example and an upper bound
    for many (a row several examples share runs once)."""
    from dataclasses import replace

    from neuronatlas.n2g.build import finish_tokens
    from neuronatlas.n2g.examples import load_examples
    from neuronatlas.n2g.settings import N2GSettings
    from neuronatlas.store import open_reader

    settings = N2GSettings().with_(substitutes=0, pivots="max", min_context=3)
    session = n2g_run.open_session(work_atlas, settings=settings, device="cpu")
    conn = open_reader(work_atlas)
    examples = [load_examples(conn, nid, settings) for nid in IDS if nid.startswith("L00")]

    def fed(batch) -> tuple[float, int]:
        pruned = session.prune(0, batch, True)
        predicted = finish_tokens(session.runner, pruned, settings)
        before = session.runner.count.tokens
        builds = session.finish(0, batch, pruned, True)
        assert [b.examples.neuron_id for b in builds] == [ex.neuron_id for ex in batch]
        return sum(predicted.values()), session.runner.count.tokens - before

    one = replace(examples[-1], build=examples[-1].build[:1])
    predicted, actual = fed([one])
    assert predicted == actual > 3 * 4  # at least min_context tokens in each of 4+ rows
    predicted, actual = fed(examples)
    assert 0 < actual <= predicted


def test_the_n2g_bar_counts_thousands_of_tokens_and_names_the_graphs(work_atlas, tmp_path):
    from neuronatlas.n2g.stage import STAGE, N2GStageSettings

    db = tmp_path / "bar.db"
    shutil.copy(work_atlas, db)
    said: list[tuple[int, int, str]] = []
    report = STAGE.run(
        db,
        N2GStageSettings(layer=1, batch_neurons=2, device="cpu"),
        lambda done, total, detail="": said.append((done, total, detail)),
    )
    assert report.result.failed == [] and len(report.result.done) == 4
    assert said[0] == (0, 0, "loading model") and said[1] == (0, 4, "")  # neurons, until pruned
    by_work = said[2:]
    assert all(d.startswith("k tokens · ") for _, _, d in by_work)
    assert by_work[-1][0] == by_work[-1][1] >= 1
    assert by_work[-1][2].startswith("k tokens · 4/4 graphs · L01N")
