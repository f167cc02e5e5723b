"""N2G builds batches of randomly chosen neurons of a layer, in a seeded random order, and
stores the graphs the id order stores, every stored number within 1e-6 relative (regrouped
batched forward passes may move float32's last bits); the tiny detector GPT-2 and a small atlas
of its real activations."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3

import pytest

from n2g_atlas import build_atlas
from neuronatlas.errors import BadInput
from neuronatlas.ids import format_id
from neuronatlas.n2g.order import Batch, work_batches

NEURONS = [(0, 3), (0, 10), (0, 11), (0, 12), (0, 13), (1, 5), (1, 7), (1, 20), (1, 21)]
IDS = [format_id(*n) for n in NEURONS]


COST_OF_THE_BATCH = {"model_tokens_share"}
"""A graph's stats that average its batch's cost over the batch (not a result of the neuron)."""


def _flat(batches: list[Batch]) -> list[str]:
    return [nid for b in batches for nid in b.ids]


def test_batches_are_random_neurons_of_one_layer_in_a_seeded_random_order():
    ids = [format_id(layer, n) for layer in (0, 1, 2) for n in range(0, 200, 3)]
    by_id = work_batches(ids, 16, seed=0, order="id")
    mixed = work_batches(list(reversed(ids)), 16, seed=0)
    assert _flat(by_id) == ids
    assert all(b.ids == sorted(b.ids) and len(b.ids) <= 16 for b in by_id + mixed)
    assert sorted(_flat(mixed)) == ids  # every neuron once
    assert all({int(nid[1:3]) for nid in b.ids} == {b.layer} for b in mixed)  # one layer each
    assert sorted(len(b.ids) for b in mixed) == sorted(len(b.ids) for b in by_id)
    # the make-up is random: a batch's neurons are spread over its layer, not neighbours
    spans = [int(b.ids[-1][-4:]) - int(b.ids[0][-4:]) for b in mixed if len(b.ids) == 16]
    assert min(spans) > 100
    assert not {tuple(b.ids) for b in mixed} & {tuple(b.ids) for b in by_id}
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
    assert {tuple(b.ids) for b in work_batches(IDS, 2, seed=0)} != {
        tuple(b.ids) for b in work_batches(IDS, 2, seed=0, order="id")
    }  # other neurons share the forward passes
    _assert_same(random_rows, id_rows)


def _assert_same(got, want, where: str = "") -> None:
    """Equal, but for floats (stored or inside JSON) within 1e-6 relative: the graphs' nodes,
    edges, keys and counts exactly, every score and activation to float32's last bits."""
    if isinstance(want, str) and isinstance(got, str) and want[:1] in ("[", "{"):
        got, want = json.loads(got), json.loads(want)
    if isinstance(want, float) or isinstance(got, float):
        assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12), (where, got, want)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for k in want.keys() - COST_OF_THE_BATCH:
            _assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_same(g, w, f"{where}[{i}]")
    else:
        assert got == want, (where, got, want)
