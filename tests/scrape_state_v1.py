"""The scrape state as it was before issue 15 (numpy arrays on the host, torch views per batch),
kept only so tests can compare the device state with it and write checkpoints in its format.
Not used by the library."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from neuronatlas.atomic import write_atomic
from neuronatlas.scrape.config import StatsConfig

# -- hashing ----------------------------------------------------------------------------------


EMPTY_KEY = np.iinfo(np.int64).max  # sorts after every real key
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
STREAM_RANDOM = 1
STREAM_QUANTILE = 2


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on uint64 arrays (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    x = x ^ (x >> np.uint64(30))
    x = x * _C1
    x = x ^ (x >> np.uint64(27))
    x = x * _C2
    return x ^ (x >> np.uint64(31))


@lru_cache(maxsize=256)
def neuron_salts(seed: int, stream: int, layer: int, d_mlp: int) -> np.ndarray:
    """uint64 [d_mlp]: one salt per neuron of a layer for one sampling stream (cached; do not
    modify the returned array)."""
    head = mix64(np.array([seed * 1_000_003 + stream * 10_007 + layer], dtype=np.uint64))
    return mix64(head ^ (np.arange(d_mlp, dtype=np.uint64) * _GOLDEN))


def window_keys(salts: np.ndarray, window_ids: np.ndarray) -> np.ndarray:
    """int64 [neurons, windows] keys: 32 hash bits above the window id's 31 bits, so keys are
    distinct per window and order by (hash, window id). Window ids must be ≤ 2^31 − 2."""
    wids = np.asarray(window_ids, dtype=np.int64)
    w = mix64(wids.astype(np.uint64) + _GOLDEN)
    keys = mix64(salts[:, None] ^ w[None, :])
    return ((keys >> np.uint64(32)).astype(np.int64) << np.int64(31)) | wids[None, :]


# -- histogram --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def edges() -> np.ndarray:
    pos = 10.0 ** np.linspace(-4.0, 4.0, 129)
    return np.concatenate([-pos[::-1], [0.0], pos]).astype(np.float32)


def n_bins() -> int:
    return len(edges()) + 1


def bin_index(x: torch.Tensor) -> torch.Tensor:
    """The bin of each value: the number of edges ≤ x (what `bucketize(right=True)` gives),
    computed arithmetically from the log spacing instead of by binary search (a value within
    float rounding of an edge may land in either neighbouring bin)."""

    lg = torch.log10(x.abs().double())
    pos = torch.clamp(torch.floor(16.0 * (lg + 4.0)) + 1.0, 0, 129)
    neg = torch.clamp(torch.floor(16.0 * (4.0 - lg)) + 1.0, 0, 129)
    idx = torch.where(x > 0, 130 + pos, torch.where(x < 0, neg, torch.full_like(pos, 130)))
    return idx.long()


def add_to_histogram(hist: torch.Tensor, maxima: torch.Tensor) -> None:
    """hist int64 [neurons, bins] += counts of `maxima` float32 [neurons, windows]."""

    idx = bin_index(maxima)
    nb = hist.shape[1]
    flat = idx + torch.arange(hist.shape[0], dtype=idx.dtype)[:, None] * nb
    hist.view(-1).index_add_(0, flat.flatten(), torch.ones(flat.numel(), dtype=hist.dtype))


def boundaries(
    hist: torch.Tensor, lowest: torch.Tensor, highest: torch.Tensor, quantiles: tuple[float, ...]
) -> torch.Tensor:
    """float32 [neurons, len(quantiles)] estimated quantiles of the window maxima.

    lowest/highest: each neuron's smallest/largest window maximum (clamps the open bins).
    Neurons without windows get NaN.
    """

    e = torch.from_numpy(edges()).double()
    lo_edge = torch.cat([torch.tensor([-np.inf], dtype=torch.float64), e])
    hi_edge = torch.cat([e, torch.tensor([np.inf], dtype=torch.float64)])
    cum = torch.cumsum(hist, dim=1).double()
    total = cum[:, -1:]
    q = torch.tensor(quantiles, dtype=torch.float64)[None, :]
    target = q * total
    j = torch.searchsorted(cum, target.contiguous(), right=True).clamp(max=hist.shape[1] - 1)
    zero = torch.zeros_like(target)
    before = torch.where(j > 0, torch.gather(cum, 1, (j - 1).clamp(min=0)), zero)
    count = torch.gather(hist, 1, j).double()
    frac = torch.where(count > 0, (target - before) / count.clamp(min=1), torch.zeros_like(target))
    low = torch.maximum(lo_edge[j], lowest.double()[:, None])
    high = torch.minimum(hi_edge[j], highest.double()[:, None])
    high = torch.maximum(high, low)
    value = low + frac * (high - low)
    value = torch.where(total > 0, value, torch.full_like(value, np.nan))
    return value.float()


# -- moments ----------------------------------------------------------------------------------


@dataclass
class Moments:
    """n (tokens, same for every neuron) and float64 [neurons] mean, M2, M3, M4."""

    n: float
    mean: np.ndarray
    m2: np.ndarray
    m3: np.ndarray
    m4: np.ndarray

    @classmethod
    def empty(cls, d: int) -> Moments:
        z = np.zeros(d, dtype=np.float64)
        return cls(0.0, z.copy(), z.copy(), z.copy(), z.copy())

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "n": np.array(self.n),
            "mean": self.mean,
            "m2": self.m2,
            "m3": self.m3,
            "m4": self.m4,
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> Moments:
        return cls(float(a["n"]), a["mean"], a["m2"], a["m3"], a["m4"])


_CHUNK = 512  # neurons per pass: [batch, context, 512] float32 stays in L2 cache


def window_stats(acts: torch.Tensor) -> tuple[torch.Tensor, Moments]:
    """(window maxima float32 [batch, neurons], moments) of a [batch, context, neurons] tensor.

    Works through the neurons in chunks so that the several passes the central sums need
    read from cache rather than memory; per-window results do not depend on the chunking.
    """

    b, c, n = acts.shape
    mx = torch.empty((b, n), dtype=torch.float32)
    wm = torch.empty((b, n), dtype=torch.float32)
    w2, w3, w4 = (torch.empty((b, n), dtype=torch.float32) for _ in range(3))
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        a = acts[:, :, lo:hi]
        torch.amax(a, dim=1, out=mx[:, lo:hi])
        mean = a.mean(dim=1, keepdim=True)
        wm[:, lo:hi] = mean.squeeze(1)
        d = a - mean
        d2 = d * d
        torch.sum(d2, dim=1, out=w2[:, lo:hi])
        torch.sum(d2 * d2, dim=1, out=w4[:, lo:hi])
        torch.sum(d2.mul_(d), dim=1, out=w3[:, lo:hi])
    return mx, _combine(c, wm.double(), w2.double(), w3.double(), w4.double())


def _combine(c: int, wm, w2, w3, w4) -> Moments:
    """Moments of a batch from its windows' means and central sums (the identities above)."""
    b = wm.shape[0]
    mean = wm.mean(dim=0)
    delta = wm - mean
    delta2 = delta * delta
    m2 = w2.sum(0) + c * delta2.sum(0)
    m3 = w3.sum(0) + 3 * (delta * w2).sum(0) + c * (delta2 * delta).sum(0)
    m4 = (
        w4.sum(0)
        + 4 * (delta * w3).sum(0)
        + 6 * (delta2 * w2).sum(0)
        + c * (delta2 * delta2).sum(0)
    )
    return Moments(float(b * c), mean.numpy(), m2.numpy(), m3.numpy(), m4.numpy())


def batch_moments(acts: torch.Tensor) -> Moments:
    """Moments of a [batch, context, neurons] float32 tensor, window by window (see above)."""
    return window_stats(acts)[1]


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Pébay's pairwise update: the moments of the union of two disjoint samples."""
    if a.n == 0:
        return Moments(b.n, b.mean.copy(), b.m2.copy(), b.m3.copy(), b.m4.copy())
    if b.n == 0:
        return Moments(a.n, a.mean.copy(), a.m2.copy(), a.m3.copy(), a.m4.copy())
    na, nb = a.n, b.n
    n = na + nb
    delta = b.mean - a.mean
    d_n = delta / n
    mean = a.mean + nb * d_n
    m2 = a.m2 + b.m2 + delta * d_n * na * nb
    m3 = a.m3 + b.m3 + delta * d_n * d_n * na * nb * (na - nb) + 3 * d_n * (na * b.m2 - nb * a.m2)
    m4 = (
        a.m4
        + b.m4
        + delta * d_n**3 * na * nb * (na * na - na * nb + nb * nb)
        + 6 * d_n * d_n * (na * na * b.m2 + nb * nb * a.m2)
        + 4 * d_n * (na * b.m3 - nb * a.m3)
    )
    return Moments(n, mean, m2, m3, m4)


def statistics(m: Moments) -> dict[str, np.ndarray]:
    """mean, variance, skewness, excess kurtosis (NaN where undefined: n = 0 or M2 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        n = m.n if m.n else np.nan
        variance = m.m2 / n
        skew = np.sqrt(n) * m.m3 / np.power(m.m2, 1.5)
        kurt = n * m.m4 / (m.m2 * m.m2) - 3.0
    return {
        "mean": m.mean if m.n else np.full_like(m.mean, np.nan),
        "variance": variance,
        "skewness": skew,
        "kurtosis": kurt,
    }


# -- select -----------------------------------------------------------------------------------


MAX_WINDOW_ID = 2**31 - 2  # window ids must fit the low bits of the keys


def top_keys(values: torch.Tensor, wids: torch.Tensor) -> torch.Tensor:
    """int64 keys ordering by (value descending, window id ascending); wid −1 (empty) first
    among equal values. `values` float32 (NaN not allowed), `wids` broadcastable int64."""

    bits = (-values).contiguous().view(torch.int32).long()
    sortable = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # IEEE order as integers
    return sortable * 4294967296 + (wids + 1)


def select_entries(
    slot_key: torch.Tensor, new_key: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, slots, columns): candidate `new[row, column]` replaces `slot[row, slot]`.

    slot_key [R, S], new_key [R, M], int64, keys distinct per row except for empty/masked
    placeholders (equal keys keep the slot: slots come first in a stable sort). Only rows where
    some candidate beats the row's worst slot are sorted.
    """

    n_slots = slot_key.shape[1]
    worst = slot_key.max(dim=1, keepdim=True).values
    rows = torch.nonzero((new_key < worst).any(dim=1)).flatten()
    if rows.numel() == 0:
        empty = rows.new_empty(0)
        return empty, empty, empty
    key = torch.cat([slot_key[rows], new_key[rows]], dim=1)
    order = torch.argsort(key, dim=1, stable=True)
    kept = torch.zeros_like(key, dtype=torch.bool)
    kept.scatter_(1, order[:, :n_slots], True)
    out_r, out_s = torch.nonzero(~kept[:, :n_slots], as_tuple=True)
    in_r, in_c = torch.nonzero(kept[:, n_slots:], as_tuple=True)
    # per row, as many enter as leave; nonzero is row-major, so the pairs line up
    if not torch.equal(out_r, in_r):
        raise RuntimeError("a window id occurs twice in one row: are the shards disjoint?")
    return rows[in_r], out_s, in_c


# -- state ------------------------------------------------------------------------------------


FORMAT_VERSION = 1
SLOT_ARRAYS = (
    "top_val",
    "top_wid",
    "top_vec",
    "rnd_key",
    "rnd_wid",
    "rnd_val",
    "rnd_vec",
    "q_key",
    "q_wid",
    "q_val",
    "q_vec",
    "q_bounds",
    "hist",
    "lowest",
    "highest",
)


@dataclass
class LayerState:
    """One layer's per-neuron arrays (see the module docstring)."""

    layer: int
    top_val: np.ndarray  # float32 [N, k]       window maximum, -inf = empty
    top_wid: np.ndarray  # int64   [N, k]       window id, -1 = empty
    top_vec: np.ndarray  # [N, k, C]
    rnd_key: np.ndarray  # int64   [N, r]       sample key, EMPTY_KEY = empty
    rnd_wid: np.ndarray  # int64   [N, r]
    rnd_val: np.ndarray  # float32 [N, r]       window maximum
    rnd_vec: np.ndarray  # [N, r, C]
    q_key: np.ndarray  # int64   [N, Q, s]
    q_wid: np.ndarray  # int64   [N, Q, s]
    q_val: np.ndarray  # float32 [N, Q, s]
    q_vec: np.ndarray  # [N, Q, s, C]
    q_bounds: np.ndarray  # float32 [N, Q-1]     boundaries new windows are bucketed by
    hist: np.ndarray  # int64   [N, bins]    counts of window maxima
    lowest: np.ndarray  # float32 [N]          smallest window maximum (+inf before any)
    highest: np.ndarray  # float32 [N]          largest window maximum (-inf before any)
    moments: Moments

    @property
    def d_mlp(self) -> int:
        return self.top_val.shape[0]

    @classmethod
    def empty(cls, layer: int, d: int, cfg: StatsConfig) -> LayerState:
        k, r, q, s, c = cfg.top_k, cfg.random_k, cfg.n_buckets, cfg.quantile_k, cfg.context
        vdt = np.dtype(cfg.vector_dtype)
        return cls(
            layer=layer,
            top_val=np.full((d, k), -np.inf, np.float32),
            top_wid=np.full((d, k), -1, np.int64),
            top_vec=np.full((d, k, c), 0, vdt),
            rnd_key=np.full((d, r), EMPTY_KEY, np.int64),
            rnd_wid=np.full((d, r), -1, np.int64),
            rnd_val=np.full((d, r), np.nan, np.float32),
            rnd_vec=np.full((d, r, c), 0, vdt),
            q_key=np.full((d, q, s), EMPTY_KEY, np.int64),
            q_wid=np.full((d, q, s), -1, np.int64),
            q_val=np.full((d, q, s), np.nan, np.float32),
            q_vec=np.full((d, q, s, c), 0, vdt),
            q_bounds=np.full((d, q - 1), np.nan, np.float32),
            hist=np.zeros((d, n_bins()), np.int64),
            lowest=np.full(d, np.inf, np.float32),
            highest=np.full(d, -np.inf, np.float32),
            moments=Moments.empty(d),
        )

    def copy(self) -> LayerState:
        arrays = {name: getattr(self, name).copy() for name in SLOT_ARRAYS}
        m = self.moments
        return LayerState(
            self.layer,
            **arrays,
            moments=Moments(m.n, m.mean.copy(), m.m2.copy(), m.m3.copy(), m.m4.copy()),
        )

    def referenced(self) -> np.ndarray:
        ids = np.concatenate([self.top_wid.ravel(), self.rnd_wid.ravel(), self.q_wid.ravel()])
        return ids[ids >= 0]


class WindowTable:
    """Token ids of windows, by window id; pruned to the windows some slot references."""

    def __init__(
        self, context: int, ids: np.ndarray | None = None, tokens: np.ndarray | None = None
    ):
        self.context = context
        self.ids = np.empty(0, np.int64) if ids is None else ids
        self.tokens = np.empty((0, context), np.int32) if tokens is None else tokens
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.pending_rows = 0

    def __len__(self) -> int:
        self._consolidate()
        return len(self.ids)

    def add(self, ids: np.ndarray, tokens: np.ndarray) -> None:
        if tokens.shape[1] != self.context:
            raise ValueError(f"windows of {tokens.shape[1]} tokens in a {self.context}-token state")
        self._pending.append((np.asarray(ids, np.int64), np.asarray(tokens, np.int32)))
        self.pending_rows += len(ids)

    def _consolidate(self) -> None:
        if not self._pending:
            return
        ids = np.concatenate([self.ids] + [p[0] for p in self._pending])
        tokens = np.concatenate([self.tokens] + [p[1] for p in self._pending])
        self._pending = []
        self.pending_rows = 0
        uniq, first = np.unique(ids, return_index=True)
        self.ids, self.tokens = uniq, tokens[first]

    def prune(self, keep: np.ndarray) -> None:
        """Drop every window whose id is not in `keep`."""
        self._consolidate()
        mask = np.isin(self.ids, keep)
        self.ids, self.tokens = self.ids[mask], self.tokens[mask]

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """int32 [len(ids), C]; KeyError if a window is missing."""
        self._consolidate()
        ids = np.asarray(ids, np.int64)
        pos = np.searchsorted(self.ids, ids)
        pos = np.minimum(pos, max(len(self.ids) - 1, 0))
        if len(ids) and (len(self.ids) == 0 or not np.array_equal(self.ids[pos], ids)):
            raise KeyError("window tokens missing from the state")
        return self.tokens[pos]

    def union(self, other: WindowTable) -> WindowTable:
        self._consolidate()
        other._consolidate()
        out = WindowTable(self.context, self.ids, self.tokens)
        out.add(other.ids, other.tokens)
        out._consolidate()
        return out


@dataclass
class ScrapeState:
    """Everything a scrape keeps, for the layers it reads. `meta` is saved along (JSON)."""

    config: StatsConfig
    layers: dict[int, LayerState]
    windows: WindowTable
    windows_seen: int = 0
    meta: dict = field(default_factory=dict)

    def referenced(self) -> np.ndarray:
        if not self.layers:
            return np.empty(0, np.int64)
        return np.unique(np.concatenate([s.referenced() for s in self.layers.values()]))

    def prune_windows(self) -> None:
        self.windows.prune(self.referenced())


def new_state(config: StatsConfig, layers: Sequence[int], d_mlp: int) -> ScrapeState:
    """An empty state (the monoid's identity) for `layers` of `d_mlp` neurons."""
    return ScrapeState(
        config,
        {int(L): LayerState.empty(int(L), d_mlp, config) for L in layers},
        WindowTable(config.context),
    )


# -- update --------------------------------------------------------------------------------------


def _salts(cfg: StatsConfig, stream: int, layer: int, d: int) -> np.ndarray:
    return neuron_salts(cfg.seed, stream, layer, d)


def update_layer(
    state: ScrapeState, layer: int, window_ids: np.ndarray, acts: torch.Tensor
) -> None:
    """Fold one batch of one layer into the state: acts float32 [batch, context, neurons]."""

    cfg = state.config
    ls = state.layers[layer]
    b, c, d = acts.shape
    if c != cfg.context or d != ls.d_mlp or b != len(window_ids):
        raise ValueError(
            f"activations {tuple(acts.shape)} do not fit the state "
            f"({len(window_ids)} windows × {cfg.context} × {ls.d_mlp})"
        )
    t = {name: torch.from_numpy(getattr(ls, name)) for name in SLOT_ARRAYS}
    wids = np.asarray(window_ids, np.int64)
    if len(wids) and (wids.min() < 0 or wids.max() > MAX_WINDOW_ID):
        raise ValueError(f"window ids must be in [0, {MAX_WINDOW_ID}]")
    wid_t = torch.from_numpy(wids)
    vdt = t["top_vec"].dtype
    vectors = _Vectors(acts)
    maxima, moments = window_stats(acts)
    mx = torch.nan_to_num(maxima, nan=-np.inf).T  # [N, B]
    windows_before = round(ls.moments.n) // c

    rows, slots, cols = select_entries(
        top_keys(t["top_val"], t["top_wid"]), top_keys(mx, wid_t[None, :])
    )
    if rows.numel():
        t["top_val"][rows, slots] = mx[rows, cols]
        t["top_wid"][rows, slots] = wid_t[cols]
        t["top_vec"][rows, slots] = vectors(cols, rows).to(vdt)

    if cfg.random_k:
        salts = _salts(cfg, STREAM_RANDOM, layer, d)
        keys = torch.from_numpy(window_keys(salts, wids))
        rows, slots, cols = select_entries(t["rnd_key"], keys)
        if rows.numel():
            t["rnd_key"][rows, slots] = keys[rows, cols]
            t["rnd_wid"][rows, slots] = wid_t[cols]
            t["rnd_val"][rows, slots] = mx[rows, cols]
            t["rnd_vec"][rows, slots] = vectors(cols, rows).to(vdt)

    add_to_histogram(t["hist"], mx)
    torch.minimum(t["lowest"], mx.min(dim=1).values, out=t["lowest"])
    torch.maximum(t["highest"], mx.max(dim=1).values, out=t["highest"])

    if cfg.quantile_k:
        if _refresh_epoch(windows_before) != _refresh_epoch(windows_before + b):
            t["q_bounds"].copy_(boundaries(t["hist"], t["lowest"], t["highest"], cfg.quantiles))
        _update_quantiles(ls, t, cfg, layer, wids, wid_t, mx, vectors)

    ls.moments = merge_moments(ls.moments, moments)


class _Vectors:
    """Activation vectors acts[window, :, neuron] for many (window, neuron) pairs.

    A strided gather touches one cache line per value; when a batch admits many entries (the
    first batches of a scrape) one transposed copy [window, neuron, context] is cheaper."""

    def __init__(self, acts):
        self.acts = acts
        self.by_neuron = None

    def __call__(self, windows, neurons):
        b, _, n = self.acts.shape
        if self.by_neuron is None and windows.numel() * 2 > b * n:
            self.by_neuron = self.acts.permute(0, 2, 1).contiguous()
        if self.by_neuron is not None:
            return self.by_neuron[windows, neurons]
        return self.acts[windows, :, neurons]


def _refresh_epoch(windows: int) -> int:
    """Quantile boundaries used for admitting windows are re-read from the histogram when a
    layer's window count enters a new epoch: at 1, 2, 4, ... 1024 windows, then every 1024.
    A pure function of the count, so a resumed scrape refreshes exactly when the original did."""
    return windows.bit_length() if windows < 1024 else 10 + windows // 1024


def _update_quantiles(
    ls: LayerState,
    t: dict,
    cfg: StatsConfig,
    layer: int,
    wids: np.ndarray,
    wid_t,
    mx,
    vectors: _Vectors,
) -> None:
    """Admit windows to the reservoir of their bucket (by the current `q_bounds`)."""

    d, q, s = ls.q_key.shape
    bucket = torch.searchsorted(t["q_bounds"], mx.contiguous(), right=True)  # [N, B]
    keys = torch.from_numpy(window_keys(_salts(cfg, STREAM_QUANTILE, layer, d), wids))
    qk, qw = t["q_key"].view(d * q, s), t["q_wid"].view(d * q, s)
    # each window competes only in its own bucket: compare it with that bucket's worst entry
    row_of = bucket + torch.arange(d)[:, None] * q  # [N, B] reservoir row of each candidate
    beats = keys < qk.max(dim=1).values[row_of]
    if not bool(beats.any()):
        return
    rows = torch.unique(row_of[beats])
    neuron = rows // q
    cand = torch.where(bucket[neuron] == (rows % q)[:, None], keys[neuron], EMPTY_KEY)
    sub_r, slots, cols = select_entries(qk[rows], cand)
    if sub_r.numel():
        r = rows[sub_r]
        n = r // q
        qk[r, slots] = cand[sub_r, cols]
        qw[r, slots] = wid_t[cols]
        t["q_val"].view(d * q, s)[r, slots] = mx[n, cols]
        t["q_vec"].view(d * q, s, -1)[r, slots] = vectors(cols, n).to(t["q_vec"].dtype)


def add_windows(
    state: ScrapeState, window_ids: np.ndarray, tokens: np.ndarray, prune_factor: float = 2.0
) -> None:
    """Record a batch's window tokens (after all its layers are folded in); prune when the
    table holds more than `prune_factor` × the referenced windows."""
    state.windows.add(window_ids, tokens)
    state.windows_seen += len(window_ids)
    limit = max(4096, int(prune_factor * len(state.windows.ids)))
    if state.windows.pending_rows > limit:
        state.prune_windows()


def update(
    state: ScrapeState, window_ids: np.ndarray, tokens: np.ndarray, acts: Mapping[int, torch.Tensor]
) -> None:
    """Fold one batch (all its layers' activations) into the state, in place."""
    for layer, a in acts.items():
        update_layer(state, layer, window_ids, a)
    add_windows(state, window_ids, tokens)


# -- merge ---------------------------------------------------------------------------------------


def _merge_slots(
    dst: dict,
    src: dict,
    prim: str,
    wid: str,
    rest: Sequence[str],
    is_top: bool,
    rows_shape: tuple[int, int],
) -> None:
    """Move `src` entries that beat `dst` entries into `dst` (all torch views, rows flattened)."""
    r, s = rows_shape
    if s == 0:
        return
    dp, dw = dst[prim].reshape(r, s), dst[wid].reshape(r, s)
    sp, sw = src[prim].reshape(r, s), src[wid].reshape(r, s)
    if is_top:
        rows, slots, cols = select_entries(top_keys(dp, dw), top_keys(sp, sw))
    else:
        rows, slots, cols = select_entries(dp, sp)
    if rows.numel() == 0:
        return
    for name in (prim, wid, *rest):
        dv = dst[name].reshape((r, s, *tuple(dst[name].shape[dst[name].dim() - _tail(name) :])))
        sv = src[name].reshape((r, s, *tuple(src[name].shape[src[name].dim() - _tail(name) :])))
        dv[rows, slots] = sv[rows, cols]


def _tail(name: str) -> int:
    return 1 if name.endswith("vec") else 0


def merge_layer(a: LayerState, b: LayerState, cfg: StatsConfig) -> LayerState:
    """The state of the union of two disjoint shards' windows, for one layer."""

    out = a.copy()
    dst = {n: torch.from_numpy(getattr(out, n)) for n in SLOT_ARRAYS}
    src = {n: torch.from_numpy(np.ascontiguousarray(getattr(b, n))) for n in SLOT_ARRAYS}
    d = a.d_mlp
    _merge_slots(dst, src, "top_val", "top_wid", ("top_vec",), True, (d, cfg.top_k))
    _merge_slots(dst, src, "rnd_key", "rnd_wid", ("rnd_val", "rnd_vec"), False, (d, cfg.random_k))
    _merge_slots(
        dst, src, "q_key", "q_wid", ("q_val", "q_vec"), False, (d * cfg.n_buckets, cfg.quantile_k)
    )
    out.hist += b.hist
    np.minimum(out.lowest, b.lowest, out=out.lowest)
    np.maximum(out.highest, b.highest, out=out.highest)
    out.moments = merge_moments(a.moments, b.moments)
    if cfg.quantile_k:
        out.q_bounds[:] = boundaries(
            torch.from_numpy(out.hist),
            torch.from_numpy(out.lowest),
            torch.from_numpy(out.highest),
            cfg.quantiles,
        ).numpy()
    return out


def merge(a: ScrapeState, b: ScrapeState) -> ScrapeState:
    """merge(scrape(A), scrape(B)) = scrape(A ∪ B) for disjoint window sets A and B."""
    if a.config != b.config:
        raise ValueError("cannot merge states with different configs")
    if set(a.layers) != set(b.layers):
        raise ValueError(f"cannot merge states of layers {sorted(a.layers)} and {sorted(b.layers)}")
    layers = {L: merge_layer(a.layers[L], b.layers[L], a.config) for L in a.layers}
    out = ScrapeState(
        a.config,
        layers,
        a.windows.union(b.windows),
        a.windows_seen + b.windows_seen,
        {**b.meta, **a.meta},
    )
    out.prune_windows()
    return out


# -- save / load ---------------------------------------------------------------------------------


def save(state: ScrapeState, path: str | Path) -> None:
    """Write the state as one .npz, atomically (temporary file in the same folder + rename)."""
    path = Path(path)
    state.prune_windows()
    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(FORMAT_VERSION),
        "config_json": np.array(json.dumps(state.config.to_dict())),
        "meta_json": np.array(json.dumps(state.meta)),
        "layers": np.array(sorted(state.layers), np.int64),
        "windows_seen": np.array(state.windows_seen, np.int64),
        "win_ids": state.windows.ids,
        "win_tokens": state.windows.tokens,
    }
    for L, ls in state.layers.items():
        for name in SLOT_ARRAYS:
            arrays[f"l{L}.{name}"] = getattr(ls, name)
        for name, value in ls.moments.arrays().items():
            arrays[f"l{L}.moments.{name}"] = value
    write_atomic(path, lambda f: np.savez(f, **arrays))


def load(path: str | Path) -> ScrapeState:
    """Read a state written by `save` (arrays are fresh, writable copies)."""
    with np.load(Path(path), allow_pickle=False) as z:
        version = int(z["format_version"])
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: scrape state format {version}, expected {FORMAT_VERSION}")
        config = StatsConfig.from_dict(json.loads(str(z["config_json"])))
        layers = {}
        for L in (int(x) for x in z["layers"]):
            arrays = {name: np.array(z[f"l{L}.{name}"]) for name in SLOT_ARRAYS}
            m = Moments.from_arrays(
                {k: np.array(z[f"l{L}.moments.{k}"]) for k in ("n", "mean", "m2", "m3", "m4")}
            )
            layers[L] = LayerState(L, **arrays, moments=m)
        windows = WindowTable(config.context, np.array(z["win_ids"]), np.array(z["win_tokens"]))
        return ScrapeState(
            config, layers, windows, int(z["windows_seen"]), json.loads(str(z["meta_json"]))
        )
