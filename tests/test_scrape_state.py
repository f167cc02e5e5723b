"""The scrape state as a monoid: update, merge, save/load, against brute force."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuronatlas.scrape import (
    StatsConfig,
    canonical,
    load,
    merge,
    new_state,
    save,
    update,
)
from neuronatlas.scrape.hashing import STREAM_RANDOM, neuron_salts, window_keys
from neuronatlas.scrape.moments import Scratch, statistics, window_stats
from neuronatlas.scrape.readout import neuron_results

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = StatsConfig(top_k=3, random_k=2, quantile_k=2, context=4, seed=7)
LAYERS = (0, 3)
N = 5


def _data(n_windows: int, seed: int, ties: bool):
    rng = np.random.default_rng(seed)
    acts = {}
    for L in LAYERS:
        x = rng.standard_normal((n_windows, CFG.context, N))
        if ties:  # few distinct values: many equal window maxima, tie-break by window id
            x = np.round(x)
        acts[L] = torch.from_numpy(x.astype(np.float32))
    tokens = rng.integers(0, 1000, (n_windows, CFG.context)).astype(np.int32)
    return acts, tokens


def _scrape(ids: np.ndarray, acts, tokens, batch: int):
    state = new_state(CFG, LAYERS, N)
    for i in range(0, len(ids), batch):
        b = ids[i : i + batch]
        update(state, b, tokens[b], {L: a[b] for L, a in acts.items()})
    return state


def _assert_same(x, y):
    assert x.windows_seen == y.windows_seen
    for L in LAYERS:
        cx, cy = canonical(x.layers[L]), canonical(y.layers[L])
        for key in cx:
            np.testing.assert_array_equal(cx[key], cy[key], err_msg=key)
        mx, my = x.layers[L].moments.arrays(), y.layers[L].moments.arrays()
        assert mx["n"] == my["n"]
        for key in ("mean", "m2", "m3", "m4"):
            a, b = mx[key], my[key]
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(a).max()))
    for s in (x, y):
        ref = s.referenced()
        assert np.array_equal(s.windows.lookup(ref), y.windows.lookup(ref))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 40),
    cut=st.floats(0.0, 1.0),
    ba=st.integers(1, 9),
    bb=st.integers(1, 9),
    bf=st.integers(1, 9),
    seed=st.integers(0, 2**16),
    ties=st.booleans(),
)
def test_merge_of_shards_equals_one_pass(n, cut, ba, bb, bf, seed, ties):
    acts, tokens = _data(n, seed, ties)
    ids = np.arange(n, dtype=np.int64)
    k = round(cut * n)
    whole = _scrape(ids, acts, tokens, bf)
    a, b = _scrape(ids[:k], acts, tokens, ba), _scrape(ids[k:], acts, tokens, bb)
    _assert_same(merge(a, b), whole)
    _assert_same(merge(b, a), whole)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(3, 30), seed=st.integers(0, 2**16), perm_seed=st.integers(0, 99))
def test_merge_is_associative_and_order_free(n, seed, perm_seed):
    acts, tokens = _data(n, seed, ties=True)
    ids = np.random.default_rng(perm_seed).permutation(n).astype(np.int64)
    parts = np.array_split(ids, 3)
    s = [_scrape(p, acts, tokens, 4) for p in parts]
    left = merge(merge(s[0], s[1]), s[2])
    right = merge(s[0], merge(s[1], s[2]))
    _assert_same(left, right)
    _assert_same(left, _scrape(np.arange(n, dtype=np.int64), acts, tokens, 5))
    _assert_same(merge(new_state(CFG, LAYERS, N), left), left)


def test_state_matches_brute_force():
    n = 37
    acts, tokens = _data(n, 1, ties=True)
    state = _scrape(np.arange(n, dtype=np.int64), acts, tokens, 6)
    for L in LAYERS:
        x = acts[L].numpy()
        wmax = x.max(axis=1)  # [window, neuron]
        can = canonical(state.layers[L])
        salts = neuron_salts(CFG.seed, STREAM_RANDOM, L, N)
        keys = window_keys(salts, torch.arange(n)).numpy()
        for j in range(N):
            top = sorted(range(n), key=lambda w: (-wmax[w, j], w))[: CFG.top_k]
            assert can["top_wid"][j].tolist() == top
            assert np.array_equal(can["top_val"][j], wmax[top, j])
            assert np.array_equal(can["top_vec"][j], x[top, :, j])
            rnd = sorted(range(n), key=lambda w: (keys[j, w], w))[: CFG.random_k]
            assert can["rnd_wid"][j].tolist() == rnd
            assert np.array_equal(can["rnd_vec"][j], x[rnd, :, j])
        flat = x.astype(np.float64).reshape(-1, N)
        stats = statistics(state.layers[L].moments)
        mu = flat.mean(0)
        var = flat.var(0)
        np.testing.assert_allclose(stats["mean"], mu, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(stats["variance"], var, rtol=1e-6)
        np.testing.assert_allclose(
            stats["skewness"], ((flat - mu) ** 3).mean(0) / var**1.5, rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            stats["kurtosis"], ((flat - mu) ** 4).mean(0) / var**2 - 3, rtol=1e-5, atol=1e-6
        )


def test_quantile_samples_land_in_their_buckets():
    n = 400
    acts, tokens = _data(n, 3, ties=False)
    state = _scrape(np.arange(n, dtype=np.int64), acts, tokens, 16)
    x = acts[0].numpy().max(axis=1)
    for r in neuron_results(state, 0, lambda ids: [str(i) for i in ids]):
        j = r["neuron"]
        bounds = r["quantile_boundaries"]
        assert len(bounds) == 4 and bounds == sorted(bounds)
        exact = np.quantile(x[:, j], [0.5, 0.9])
        assert abs(bounds[0] - exact[0]) < 0.2 and abs(bounds[1] - exact[1]) < 0.2
        edges = [-np.inf, *bounds, np.inf]
        for b in range(5):
            for _, values in r["records"][f"quantile_{b}"]:
                assert edges[b] <= max(values) < edges[b + 1] or max(values) == edges[b + 1]
        assert len(r["records"]["quantile_0"]) == CFG.quantile_k
        assert len(r["records"]["random"]) == CFG.random_k
        assert [max(v) for _, v in r["records"]["top"]] == sorted(
            (max(v) for _, v in r["records"]["top"]), reverse=True
        )


def test_save_load_roundtrip_is_atomic_and_bounded(tmp_path):
    n = 300
    acts, tokens = _data(n, 5, ties=False)
    state = _scrape(np.arange(n, dtype=np.int64), acts, tokens, 8)
    state.meta = {"next_window": n, "note": "x"}
    path = tmp_path / "state.npz"
    save(state, path)
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]
    back = load(path)
    _assert_same(back, state)
    assert back.meta == state.meta and back.config == CFG
    # the token table holds only windows some slot references (bounded by the slots)
    per_layer = N * (CFG.top_k + CFG.random_k + CFG.n_buckets * CFG.quantile_k)
    assert len(back.windows) == len(back.referenced()) <= len(LAYERS) * per_layer < n


def test_merge_rejects_other_configs():
    a = new_state(CFG, LAYERS, N)
    b = new_state(StatsConfig(top_k=4, random_k=2, quantile_k=2, context=4), LAYERS, N)
    with pytest.raises(ValueError):
        merge(a, b)


def test_reused_scratch_gives_the_same_moments_as_fresh_tensors():
    scratch = Scratch()
    gen = torch.Generator().manual_seed(3)
    for width in (300, 1100, 300):  # one chunk; chunks of 512 and a narrower last; reuse
        acts = torch.randn((3, 8, width), generator=gen)[:, 1:, :]  # a view, as the hooks give
        mx, m = window_stats(acts, scratch)
        mx0, m0 = window_stats(acts.contiguous())
        assert torch.equal(mx, mx0)
        for k in ("mean", "m2", "m3", "m4"):
            assert torch.equal(getattr(m, k), getattr(m0, k))
    assert len(scratch._tensors) == 2  # one work tensor per chunk shape, kept between calls
    assert pickle.loads(pickle.dumps(scratch))._tensors == {}


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 12),
    s=st.integers(1, 6),
    m=st.integers(1, 8),
    seed=st.integers(0, 2**16),
    empty_share=st.floats(0.0, 1.0),
)
def test_sparse_entries_are_the_dense_decisions(rows, s, m, seed, empty_share):
    """select_entries (the CPU's list: one-candidate rows short-cut, the rest paired by
    nonzero) makes exactly the replacements admit decides, empty slots and masked candidates
    included."""
    from neuronatlas.scrape.select import admit, select_entries

    empty = 2**63 - 1
    gen = np.random.default_rng(seed)
    keys = gen.permutation(10 * rows * (s + m))[: rows * (s + m)].reshape(rows, s + m)
    keys = torch.from_numpy(keys.astype(np.int64))
    keys[torch.from_numpy(gen.random((rows, s + m)) < empty_share)] = empty
    slot_key, new_key = keys[:, :s].contiguous(), keys[:, s:].contiguous()
    taken = admit(slot_key, new_key, empty)
    want = {(r, j, int(taken[r, j])) for r in range(rows) for j in range(s) if taken[r, j] >= 0}
    got = set(zip(*(t.tolist() for t in select_entries(slot_key, new_key, empty)), strict=True))
    assert got == want
