"""N2G runs its batches of neurons in a seeded random order, and stores exactly what the id
order stores (the tiny detector GPT-2 and a small atlas of its real activations)."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from n2g_atlas import build_atlas
from neuronatlas.errors import BadInput
from neuronatlas.ids import format_id
from neuronatlas.n2g.order import Batch, work_batches

NEURONS = [(0, 3), (0, 10), (0, 11), (0, 12), (0, 13), (1, 5), (1, 7), (1, 20), (1, 21)]
IDS = [format_id(*n) for n in NEURONS]


def _flat(batches: list[Batch]) -> list[str]:
    return [nid for b in batches for nid in b.ids]


def test_batches_keep_their_id_order_make_up_and_run_in_a_seeded_random_order():
    ids = [format_id(layer, n) for layer in (0, 1, 2) for n in range(0, 200, 3)]
    by_id = work_batches(ids, 16, seed=0, order="id")
    mixed = work_batches(list(reversed(ids)), 16, seed=0)
    assert _flat(by_id) == ids
    assert all(b.ids == sorted(b.ids) and len(b.ids) <= 16 for b in by_id)
    assert sorted(mixed) == sorted(by_id)  # the same batches, neuron for neuron
    assert mixed != by_id
    assert [b.layer for b in mixed] != sorted(b.layer for b in mixed)  # layers interleave
    assert work_batches(ids, 16, seed=0) == mixed  # reproducible
    assert work_batches(ids, 16, seed=1) != mixed  # the seed is N2GSettings.seed
    # any early part is spread over the whole range of ids, not its beginning
    first = [int(nid[-4:]) for nid in _flat(mixed[: len(mixed) // 4])]
    assert min(first) < 50 and max(first) > 150
    with pytest.raises(BadInput, match="--batch-neurons 0"):
        work_batches(ids, 0, seed=0)


@pytest.fixture(scope="module")
def order_atlas(tmp_path_factory, tiny_gpt2_dir):
    db = tmp_path_factory.mktemp("n2g_order") / "atlas.db"
    return build_atlas(db, tiny_gpt2_dir, NEURONS, n_sentences=120)


def _stored(db) -> dict[str, list[tuple]]:
    """Every row N2G writes, less what names the run or the time (run id, timestamps)."""
    conn = sqlite3.connect(db)
    try:
        return {
            "graphs": conn.execute(
                "SELECT neuron_id, a_max, trie, settings, mask_token, model, stats"
                " FROM n2g_graphs ORDER BY neuron_id"
            ).fetchall(),
            "metrics": conn.execute("SELECT * FROM n2g_metrics ORDER BY neuron_id").fetchall(),
            "explanations": conn.execute(
                "SELECT neuron_id, position, text, ev_correlation_score, rsquared_score,"
                " absolute_dev_explained_score FROM explanations WHERE source = 'n2g'"
                " ORDER BY neuron_id, position"
            ).fetchall(),
        }
    finally:
        conn.close()


def _noting(seen: list[str]):
    """A progress callback that notes the order in which neurons are done."""
    return lambda nid, _done: seen.append(nid)


def test_random_order_stores_the_same_rows_as_id_order(order_atlas, tmp_path):
    from neuronatlas.n2g.run import run_n2g

    runs = {}
    for order in ("id", "random"):
        db = tmp_path / f"{order}.db"
        shutil.copy(order_atlas, db)
        seen: list[str] = []
        report = run_n2g(db, all_=True, batch_neurons=2, order=order, progress=_noting(seen))
        assert report.failed == [] and sorted(report.done) == IDS
        runs[order] = (seen, _stored(db))
    (id_seen, id_rows), (random_seen, random_rows) = runs["id"], runs["random"]
    assert id_seen == IDS
    assert random_seen == _flat(work_batches(IDS, 2, seed=0)) != IDS
    assert len(id_rows["graphs"]) == len(IDS) == len(id_rows["explanations"])
    assert random_rows == id_rows  # byte for byte, floats included
