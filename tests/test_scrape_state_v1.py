"""The device state against the numpy state it replaced (tests/scrape_state_v1.py): same stream,
same results; checkpoints of the old code resume; other formats are refused with advice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import scrape_state_v1 as v1
from neuronatlas.errors import StateFormatError
from neuronatlas.scrape import StatsConfig, hashing, load, new_state, save, state
from neuronatlas.scrape.readout import neuron_results

CFG = StatsConfig(top_k=4, random_k=3, quantile_k=2, context=5, seed=11)
LAYERS = (1, 2)
N = 9
# every slot array the old state had: each must be equal in the new one
SLOTS = v1.SLOT_ARRAYS


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["sparse", "dense"])
def writes(request, monkeypatch):
    """Both ways of applying admissions: the CPU's sparse writes and the accelerators' dense
    rewrites (forced here on the CPU, where they must give the same arrays)."""
    if request.param == "dense":
        monkeypatch.setattr(state, "sparse_writes", lambda _device: False)
    return request.param


def _stream(n: int, seed: int):
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n).astype(np.int64) * 3 + 5  # not consecutive, not from 0
    acts = {}
    for L in LAYERS:
        x = rng.standard_normal((n, CFG.context, N)) * rng.uniform(0.1, 50, N)
        x[: n // 3] = np.round(x[: n // 3])  # ties in part of the stream
        acts[L] = torch.from_numpy(x.astype(np.float32))
    tokens = rng.integers(0, 5000, (n, CFG.context)).astype(np.int32)
    return ids, acts, tokens


def _fold(module, st, ids, acts, tokens, lo, hi, batch):
    for i in range(lo, hi, batch):
        j = min(hi, i + batch)
        module.update(st, ids[i:j], tokens[i:j], {L: a[i:j] for L, a in acts.items()})


def _assert_equal_to_v1(new, old):
    """Every slot array bit for bit (same slots, not only the same sets), moments to 1e-9."""
    assert new.windows_seen == old.windows_seen
    for L in LAYERS:
        got, want = new.layers[L].host(), old.layers[L]
        for name in SLOTS:
            np.testing.assert_array_equal(got[name], getattr(want, name), err_msg=name)
        m_new, m_old = new.layers[L].moments.arrays(), want.moments
        assert float(m_new["n"]) == m_old.n
        for key in ("mean", "m2", "m3", "m4"):
            ref = getattr(m_old, key)
            np.testing.assert_allclose(m_new[key], ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_array_equal(new.referenced(), old.referenced())


def test_hash_keys_equal_the_uint64_ones():
    for seed, stream, layer, d in [(0, 1, 0, 7), (7, 2, 3, 300), (123457, 1, 47, 6400)]:
        old = v1.neuron_salts(seed, stream, layer, d)
        new = hashing.neuron_salts(seed, stream, layer, d)
        assert np.array_equal(old.view(np.int64), new.numpy())
        wids = np.random.default_rng(seed).integers(0, 2**31 - 2, 64)
        wids[:2] = (0, 2**31 - 2)
        np.testing.assert_array_equal(
            v1.window_keys(old, wids), hashing.window_keys(new, torch.from_numpy(wids)).numpy()
        )


@pytest.mark.parametrize("batch", [1, 7, 32])
def test_device_state_equals_the_numpy_state_on_the_same_stream(writes, batch):
    ids, acts, tokens = _stream(150, batch)
    old, new = v1.new_state(CFG, LAYERS, N), new_state(CFG, LAYERS, N)
    _fold(v1, old, ids, acts, tokens, 0, len(ids), batch)
    _fold(state, new, ids, acts, tokens, 0, len(ids), batch)
    _assert_equal_to_v1(new, old)


def test_merge_equals_the_numpy_merge(writes):
    ids, acts, tokens = _stream(90, 3)
    parts = [(0, 40), (40, 90)]
    old = [v1.new_state(CFG, LAYERS, N) for _ in parts]
    new = [new_state(CFG, LAYERS, N) for _ in parts]
    for (lo, hi), o, n in zip(parts, old, new, strict=True):
        _fold(v1, o, ids, acts, tokens, lo, hi, 8)
        _fold(state, n, ids, acts, tokens, lo, hi, 8)
    _assert_equal_to_v1(state.merge(new[0], new[1]), v1.merge(old[0], old[1]))


def test_read_out_equals_the_numpy_read_out():
    """Records (top, random and the quantile samples, which the read-out re-buckets with the
    final boundaries), moments and boundaries of every neuron, as the atlas receives them."""
    ids, acts, tokens = _stream(200, 4)
    old, new = v1.new_state(CFG, LAYERS, N), new_state(CFG, LAYERS, N)
    _fold(v1, old, ids, acts, tokens, 0, len(ids), 16)
    _fold(state, new, ids, acts, tokens, 0, len(ids), 16)
    old_as_new = _converted(old)
    strings = lambda toks: [str(t) for t in toks]  # noqa: E731
    for L in LAYERS:
        for got, want in zip(
            neuron_results(new, L, strings), neuron_results(old_as_new, L, strings), strict=True
        ):
            assert got["records"] == want["records"]
            assert got["quantile_boundaries"] == want["quantile_boundaries"]
            for key in ("mean", "variance", "skewness", "kurtosis"):
                assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12)


def _converted(old) -> state.ScrapeState:
    """The numpy state's arrays in a device state (through the shared file format)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "old.npz"
        v1.save(old, path)
        return load(path)


def test_a_checkpoint_of_the_numpy_state_resumes_to_the_same_result(tmp_path, writes):
    """A scrape checkpointed by the previous code and finished by this one equals a scrape
    done by the previous code alone, and this code alone."""
    ids, acts, tokens = _stream(120, 9)
    old = v1.new_state(CFG, LAYERS, N)
    _fold(v1, old, ids, acts, tokens, 0, 56, 8)
    old.meta = {"next_window": 56}
    v1.save(old, tmp_path / "ckpt.npz")
    resumed = load(tmp_path / "ckpt.npz")
    assert resumed.meta == {"next_window": 56} and resumed.config == CFG
    _fold(state, resumed, ids, acts, tokens, 56, 120, 8)
    _fold(v1, old, ids, acts, tokens, 56, 120, 8)
    _assert_equal_to_v1(resumed, old)
    fresh = new_state(CFG, LAYERS, N)
    _fold(state, fresh, ids, acts, tokens, 0, 120, 8)
    _assert_equal_to_v1(fresh, old)
    # and what this code saves, the previous code reads (the format did not change)
    save(resumed, tmp_path / "new.npz")
    _assert_equal_to_v1(resumed, v1.load(tmp_path / "new.npz"))


def test_a_state_of_another_format_is_refused_with_what_to_do(tmp_path):
    st = new_state(CFG, LAYERS, N)
    save(st, tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as z:
        arrays = dict(z)
    arrays["format_version"] = np.array(state.FORMAT_VERSION + 1)
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(StateFormatError, match="Delete the file to start that scrape afresh"):
        load(tmp_path / "future.npz")


def test_state_and_update_stay_on_the_device_of_the_state():
    """Every tensor of a new state is created on the asked device, the sums in float64 (the
    meta device stands in for an accelerator: it checks placement, not values)."""
    st = new_state(CFG, LAYERS, N, device="meta")
    for ls in st.layers.values():
        tensors = [getattr(ls, n) for n in SLOTS] + [ls.moments.mean, ls.moments.m4]
        assert {t.device.type for t in tensors} == {"meta"}
        assert ls.moments.mean.dtype == torch.float64
