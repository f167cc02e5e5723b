"""The engine-independent parts of scaling out: shards + manifest, job ids, the tree merger,
and the core staying importable without Ray. No Ray is started here."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from neuronatlas.scale.shards import (
    MIN_SHARDS,
    TOKENS_PER_SHARD,
    job_id,
    missing_shards,
    model_identity,
    prepare_shards,
    read_shard,
    shard_windows,
    state_path,
)
from neuronatlas.scrape import StatsConfig

CONTEXT = 4


def _windows(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 50_000, (n, CONTEXT)).astype(np.int32)
    return data, ((i, data[i]) for i in range(n))


def test_shards_cover_the_windows_in_order_with_global_ids(tmp_path):
    data, stream = _windows(50)
    m = prepare_shards(stream, CONTEXT, {"corpus": "x"}, tmp_path, n_shards=8)
    assert m.windows == 50 and len(m.shards) == 8
    assert [s.first_window for s in m.shards] == list(range(0, 50, 7))
    assert sum(s.n_windows for s in m.shards) == 50
    joined = np.concatenate([m.tokens(s) for s in m.shards])
    assert np.array_equal(joined, data)
    assert not list(m.folder.glob("*.tmp"))


def test_manifest_is_reused_and_detects_changed_shards(tmp_path):
    _, stream = _windows(20)
    m = prepare_shards(stream, CONTEXT, {"corpus": "x"}, tmp_path, n_shards=4)

    def never():
        yield from ()  # a generator that fails when it is first read
        raise AssertionError("the corpus was tokenised again")

    again = prepare_shards(never(), CONTEXT, {"corpus": "x"}, tmp_path, n_shards=4)
    assert again.key == m.key and again.shards == m.shards
    shard = m.shards[1]
    np.save(m.folder / shard.file, np.zeros((shard.n_windows, CONTEXT), np.int32))
    with pytest.raises(ValueError, match="sha256"):
        read_shard(m.folder, shard, CONTEXT)
    other = prepare_shards(_windows(20, seed=1)[1], CONTEXT, {"corpus": "y"}, tmp_path, 4)
    assert other.folder != m.folder and other.key != m.key


def test_window_ids_must_be_the_stream_positions(tmp_path):
    with pytest.raises(ValueError, match="window ids"):
        prepare_shards(iter([(1, np.zeros(CONTEXT, np.int32))]), CONTEXT, {}, tmp_path)


def test_default_shard_size():
    per_shard = TOKENS_PER_SHARD // 64
    assert shard_windows(100, 64, None) == 13  # small corpus: still MIN_SHARDS shards
    assert shard_windows(per_shard * 100, 64, None) == per_shard  # big: 2^20 tokens each
    assert shard_windows(per_shard * MIN_SHARDS, 64, None) == per_shard
    assert shard_windows(10, 64, 3) == 4
    with pytest.raises(ValueError):
        shard_windows(10, 64, 0)


def test_job_id_pins_every_input_and_missing_shards(tmp_path):
    _, stream = _windows(16)
    m = prepare_shards(stream, CONTEXT, {"corpus": "x"}, tmp_path, n_shards=4)
    cfg = StatsConfig(context=CONTEXT)
    model = {"name": "m", "revision": "abc"}
    base = job_id(model, m, cfg, [0, 1], "float32", "0.1.0")
    assert base == job_id(dict(model), m, cfg, [0, 1], "float32", "0.1.0")
    changed = [
        job_id({"name": "m", "revision": "abd"}, m, cfg, [0, 1], "float32", "0.1.0"),
        job_id(model, m, StatsConfig(context=CONTEXT, top_k=5), [0, 1], "float32", "0.1.0"),
        job_id(model, m, cfg, [0], "float32", "0.1.0"),
        job_id(model, m, cfg, [0, 1], "bfloat16", "0.1.0"),
        job_id(model, m, cfg, [0, 1], "float32", "0.2.0"),
    ]
    assert base not in changed and len(set(changed)) == len(changed)
    assert [s.index for s in missing_shards(tmp_path, base, m)] == [0, 1, 2, 3]
    for i in (0, 2):
        p = state_path(tmp_path, base, m.shards[i])
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    assert [s.index for s in missing_shards(tmp_path, base, m)] == [1, 3]


def test_model_identity_of_a_local_folder_changes_with_its_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"abc")
    a = model_identity(str(tmp_path), None, str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"abcd")
    assert model_identity(str(tmp_path), None, str(tmp_path)) != a
    assert model_identity("gpt2", "rev1", None) == {"name": "gpt2", "revision": "rev1"}


def test_tree_merge_equals_one_pass_and_holds_log_states():
    import torch

    from neuronatlas.scale.merge import TreeMerger
    from neuronatlas.scrape import canonical, new_state, update

    cfg = StatsConfig(top_k=3, random_k=2, quantile_k=0, context=CONTEXT, seed=3)
    rng = np.random.default_rng(0)
    n, d = 45, 6
    acts = torch.from_numpy(np.round(rng.standard_normal((n, CONTEXT, d))).astype(np.float32))
    tokens = rng.integers(0, 100, (n, CONTEXT)).astype(np.int32)

    def scrape(ids):
        st = new_state(cfg, [0], d)
        update(st, ids, tokens[ids], {0: acts[ids]})
        return st

    whole = scrape(np.arange(n))
    merger = TreeMerger()
    most = 0
    for part in np.array_split(np.arange(n), 11):
        merger.add(scrape(part))
        most = max(most, merger.held)
    got = merger.result()
    assert most <= 4 and merger.merges == 10 and got.windows_seen == n
    a, b = canonical(got.layers[0]), canonical(whole.layers[0])
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    with pytest.raises(ValueError):
        TreeMerger().result()


def test_core_and_cli_import_without_ray():
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import neuronatlas.cli, neuronatlas.scale, neuronatlas.scale.shards\n"
        "from neuronatlas.errors import BadInput\n"
        "try:\n"
        "    neuronatlas.scale.engine()\n"
        "except BadInput as e:\n"
        "    print('BadInput', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "BadInput --engine ray needs Ray" in out.stdout
