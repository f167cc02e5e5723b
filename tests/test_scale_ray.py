"""The scrape and N2G on a local Ray (2 CPUs, one instance for the module): the atlas equals
the local runner's, a killed actor changes nothing, a resumed job recomputes only missing
shard states, and N2G writes every graph once."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from n2g_atlas import build_atlas, sentences
from neuronatlas.scrape import ScrapeSettings, run_scrape
from neuronatlas.store import n2g as n2g_store
from neuronatlas.store import open_reader, reader

if TYPE_CHECKING:
    from neuronatlas.scale.ray_scrape import ScrapeWorker

# Ray and the engines are imported by the tests, not at collection: `make test-fast` collects
# this module in every worker and runs none of it, and `import ray` costs each one 0.7 s.
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    import ray

    from neuronatlas.scale.ray_pool import LOCAL_RAY

    ray.init(**LOCAL_RAY, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def settings(tmp_path_factory, tiny_gpt2_dir):
    corpus = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    corpus.write_text("\n".join(sentences(4, seed) for seed in range(120)))
    return ScrapeSettings(
        model=str(tiny_gpt2_dir),
        corpus=str(corpus),
        context=16,
        top_k=5,
        random_k=4,
        quantile_k=2,
        batch_size=16,
    )


@pytest.fixture(scope="module")
def local_db(tmp_path_factory, settings):
    db = tmp_path_factory.mktemp("local") / "local.db"
    run_scrape(settings, db)
    return db


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("ray-work")


def _atlas(db):
    conn = open_reader(db)
    try:
        records = [r for r in reader.iter_record_rows(conn) if r[1] in ("top", "random")]
        info = list(reader.iter_neuron_info(conn))
        meta = reader.meta(conn)
    finally:
        conn.close()
    return records, info, meta


def assert_same_atlas(local, other):
    rec_a, info_a, meta_a = _atlas(local)
    rec_b, info_b, meta_b = _atlas(other)
    assert len(rec_a) > 0 and rec_a == rec_b  # top and random records exactly
    assert [i.id for i in info_a] == [i.id for i in info_b]
    for a, b in zip(info_a, info_b, strict=False):
        assert a.quantile_boundaries == b.quantile_boundaries
        for key in ("mean", "variance", "skewness", "kurtosis"):
            got, want = getattr(b, key), getattr(a, key)
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12), (a.id, key)
    assert {k: v for k, v in meta_a.items() if k != "created_at"} == {
        k: v for k, v in meta_b.items() if k != "created_at"
    }


def crash_once_worker(shard_index: int, marker: Path) -> type[ScrapeWorker]:
    """A ScrapeWorker whose process exits half-way through shard `shard_index`, the first
    time only (the marker file records it). Defined in a function, so Ray ships the class by
    value and the actors need not import this test module."""
    from neuronatlas.scale.ray_scrape import ScrapeWorker

    class CrashOnceWorker(ScrapeWorker):
        def after_batch(self, shard, batch: int, n_batches: int) -> None:
            if shard.index == shard_index and batch >= n_batches / 2 and not marker.exists():
                marker.write_text(f"pid {self.pid} exited half-way through shard {shard.index}\n")
                os._exit(17)

    return CrashOnceWorker


def test_ray_scrape_with_a_killed_actor_equals_local(settings, local_db, work, tmp_path):
    from neuronatlas.scale.ray_pool import RayOptions
    from neuronatlas.scale.ray_scrape import scrape_on_ray

    marker = tmp_path / "crashed"
    db = tmp_path / "ray.db"
    res = scrape_on_ray(
        settings,
        db,
        options=RayOptions(shards=8, workers=2, work_dir=work),
        worker_class=crash_once_worker(3, marker),
    )
    assert marker.exists()  # the actor running shard 3 really died half-way through it
    crashed_pid = int(marker.read_text().split()[1])
    assert res.shards == 8 and sorted(res.computed) == list(range(8)) and res.skipped == []
    by_shard = {m.shard: m for m in res.shard_metadata}
    assert by_shard[3].pid != crashed_pid  # finished by the restarted actor
    assert res.merges == 7 and res.workers == 2
    assert_same_atlas(local_db, db)
    conn = open_reader(db)
    strongest = reader.records(conn, "L00N0003", ["top"])["top"][0]
    conn.close()
    assert strongest.tokens[strongest.peak_index] == " cat"  # the known detector


def test_resume_recomputes_only_deleted_states(settings, local_db, work, tmp_path):
    from neuronatlas.scale.ray_pool import RayOptions
    from neuronatlas.scale.ray_scrape import scrape_on_ray

    states = sorted((work / "states").glob("*/*.npz"))
    assert len(states) == 8
    for p in (states[2], states[5]):
        p.unlink()
    db = tmp_path / "resumed.db"
    res = scrape_on_ray(settings, db, options=RayOptions(shards=8, workers=2, work_dir=work))
    assert sorted(res.computed) == [2, 5]
    assert res.skipped == [0, 1, 3, 4, 6, 7]
    recomputed = sum(m.windows for m in res.shard_metadata)
    assert 0 < recomputed < res.windows and res.resumed_from == res.windows - recomputed
    assert_same_atlas(local_db, db)


def test_cli_engine_ray_resumes_a_finished_job(settings, local_db, work, tmp_path):
    from typer.testing import CliRunner

    from neuronatlas.cli import app

    db = tmp_path / "cli.db"
    args = [
        "scrape",
        "--model",
        settings.model,
        "--corpus",
        settings.corpus,
        "--db",
        str(db),
        "--context",
        "16",
        "--top-k",
        "5",
        "--random-k",
        "4",
        "--quantile-k",
        "2",
        "--engine",
        "ray",
        "--shards",
        "8",
        "--work-dir",
        str(work),
        "--json",
    ]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["neurons"] == 512 and doc["resumed_from_window"] == doc["windows"]
    assert_same_atlas(local_db, db)


@pytest.fixture(scope="module")
def n2g_atlas(tmp_path_factory, tiny_gpt2_dir):
    db = tmp_path_factory.mktemp("n2g") / "atlas.db"
    return build_atlas(db, tiny_gpt2_dir, [(0, 3), (0, 10), (1, 5), (1, 7)], n_sentences=120)


def _graphs(db):
    conn = open_reader(db)
    try:
        ids = sorted(n2g_store.graph_ids(conn))
        return {i: (n2g_store.read_graph(conn, i), n2g_store.read_metrics(conn, i)) for i in ids}
    finally:
        conn.close()


def _close(a: object, b: object) -> bool:
    """Equal structure and strings; floats equal to 1e-5 relative."""
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, int | float)
            and isinstance(b, int | float)
            and a == pytest.approx(b, rel=1e-5)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_n2g_fan_out_equals_local_and_writes_each_graph_once(n2g_atlas, tmp_path):
    from neuronatlas.n2g.run import run_n2g
    from neuronatlas.scale.ray_n2g import n2g_on_ray
    from neuronatlas.scale.ray_pool import RayOptions

    local, dist = tmp_path / "local.db", tmp_path / "ray.db"
    shutil.copy(n2g_atlas, local)
    shutil.copy(n2g_atlas, dist)
    want = run_n2g(local, all_=True, batch_neurons=2)
    got = n2g_on_ray(dist, all_=True, batch_neurons=2, options=RayOptions(workers=2))
    assert want.failed == [] and got.failed == []
    assert sorted(got.done) == sorted(want.done) == ["L00N0003", "L00N0010", "L01N0005", "L01N0007"]
    g_local, g_ray = _graphs(local), _graphs(dist)
    assert list(g_local) == list(g_ray)
    for nid in g_local:
        (a, ma), (b, mb) = g_local[nid], g_ray[nid]
        # the same graph; importances may differ in float32's last bits, because the
        # actors batch each layer's passes with other neurons than the local run does
        assert _close(a.trie, b.trie) and _close(ma, mb), nid
    runs = {g.run_id for g, _ in g_ray.values()}
    assert len(runs) == 1  # all written by the one driver run
    conn = open_reader(dist)
    for nid in g_ray:  # one graph and one n2g explanation per neuron
        assert [e.source for e in reader.explanations(conn, nid)].count("n2g") == 1
    conn.close()
    again = n2g_on_ray(dist, all_=True, batch_neurons=2, options=RayOptions(workers=2))
    assert again.done == [] and sorted(again.already) == sorted(g_ray)  # the db is the checkpoint

    from typer.testing import CliRunner

    from neuronatlas.cli import app

    out = CliRunner().invoke(
        app, ["n2g", "--db", str(dist), "--all", "--engine", "ray", "--shards", "2"]
    )
    assert out.exit_code == 0, out.output
    assert "0 built, 4 already had a graph" in out.output
