"""The scrape state: a monoid of numpy arrays (`new_state`, `update`, `merge`, `save`, `load`).

Per layer (`LayerState`, neurons N, context C):

- top:      the `top_k` windows with the largest maximum activation (ties: smaller window id),
            with their full activation vectors [N, top_k, C], kept the moment they enter;
- random:   the `random_k` windows with the smallest hash key of (seed, layer, neuron, window);
- quantile: per bucket of the window maximum, the `quantile_k` smallest-key windows. A window's
            bucket is decided when it arrives, with the boundaries known then; the read-out
            re-buckets all held windows with the final boundaries (an approximation that
            becomes exact as the boundaries settle; see docs in `readout`);
- hist:     fixed-bin histogram of window maxima, from which quantile boundaries are read;
- moments:  exact mergeable moments of all token activations (float64).

Slots within a row are unordered (see `select`); `canonical` gives the sorted view. Window
tokens referenced by any slot are kept in a `WindowTable`, so read-out needs no re-tokenizing.
Memory is O(layers × N × (top_k + random_k + buckets × quantile_k) × C), independent of the
corpus length. Shards must hold disjoint windows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from neuronatlas.atomic import write_atomic
from neuronatlas.scrape import hashing, histogram
from neuronatlas.scrape.config import StatsConfig
from neuronatlas.scrape.moments import Moments, merge_moments, window_stats
from neuronatlas.scrape.select import MAX_WINDOW_ID, select_entries, top_keys

if TYPE_CHECKING:
    import torch

FORMAT_VERSION = 1
_SLOT_ARRAYS = (
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
            rnd_key=np.full((d, r), hashing.EMPTY_KEY, np.int64),
            rnd_wid=np.full((d, r), -1, np.int64),
            rnd_val=np.full((d, r), np.nan, np.float32),
            rnd_vec=np.full((d, r, c), 0, vdt),
            q_key=np.full((d, q, s), hashing.EMPTY_KEY, np.int64),
            q_wid=np.full((d, q, s), -1, np.int64),
            q_val=np.full((d, q, s), np.nan, np.float32),
            q_vec=np.full((d, q, s, c), 0, vdt),
            q_bounds=np.full((d, q - 1), np.nan, np.float32),
            hist=np.zeros((d, histogram.n_bins()), np.int64),
            lowest=np.full(d, np.inf, np.float32),
            highest=np.full(d, -np.inf, np.float32),
            moments=Moments.empty(d),
        )

    def copy(self) -> LayerState:
        arrays = {name: getattr(self, name).copy() for name in _SLOT_ARRAYS}
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
    return hashing.neuron_salts(cfg.seed, stream, layer, d)


def update_layer(
    state: ScrapeState, layer: int, window_ids: np.ndarray, acts: torch.Tensor
) -> None:
    """Fold one batch of one layer into the state: acts float32 [batch, context, neurons]."""
    import torch

    cfg = state.config
    ls = state.layers[layer]
    b, c, d = acts.shape
    if c != cfg.context or d != ls.d_mlp or b != len(window_ids):
        raise ValueError(
            f"activations {tuple(acts.shape)} do not fit the state "
            f"({len(window_ids)} windows × {cfg.context} × {ls.d_mlp})"
        )
    t = {name: torch.from_numpy(getattr(ls, name)) for name in _SLOT_ARRAYS}
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
        salts = _salts(cfg, hashing.STREAM_RANDOM, layer, d)
        keys = torch.from_numpy(hashing.window_keys(salts, wids))
        rows, slots, cols = select_entries(t["rnd_key"], keys)
        if rows.numel():
            t["rnd_key"][rows, slots] = keys[rows, cols]
            t["rnd_wid"][rows, slots] = wid_t[cols]
            t["rnd_val"][rows, slots] = mx[rows, cols]
            t["rnd_vec"][rows, slots] = vectors(cols, rows).to(vdt)

    histogram.add_to_histogram(t["hist"], mx)
    torch.minimum(t["lowest"], mx.min(dim=1).values, out=t["lowest"])
    torch.maximum(t["highest"], mx.max(dim=1).values, out=t["highest"])

    if cfg.quantile_k:
        if _refresh_epoch(windows_before) != _refresh_epoch(windows_before + b):
            t["q_bounds"].copy_(
                histogram.boundaries(t["hist"], t["lowest"], t["highest"], cfg.quantiles)
            )
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
    import torch

    d, q, s = ls.q_key.shape
    bucket = torch.searchsorted(t["q_bounds"], mx.contiguous(), right=True)  # [N, B]
    keys = torch.from_numpy(
        hashing.window_keys(_salts(cfg, hashing.STREAM_QUANTILE, layer, d), wids)
    )
    qk, qw = t["q_key"].view(d * q, s), t["q_wid"].view(d * q, s)
    # each window competes only in its own bucket: compare it with that bucket's worst entry
    row_of = bucket + torch.arange(d)[:, None] * q  # [N, B] reservoir row of each candidate
    beats = keys < qk.max(dim=1).values[row_of]
    if not bool(beats.any()):
        return
    rows = torch.unique(row_of[beats])
    neuron = rows // q
    cand = torch.where(bucket[neuron] == (rows % q)[:, None], keys[neuron], hashing.EMPTY_KEY)
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
    import torch

    out = a.copy()
    dst = {n: torch.from_numpy(getattr(out, n)) for n in _SLOT_ARRAYS}
    src = {n: torch.from_numpy(np.ascontiguousarray(getattr(b, n))) for n in _SLOT_ARRAYS}
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
        out.q_bounds[:] = histogram.boundaries(
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
        for name in _SLOT_ARRAYS:
            arrays[f"l{L}.{name}"] = getattr(ls, name)
        for name, value in ls.moments.arrays().items():
            arrays[f"l{L}.moments.{name}"] = value
    # numpy's stub takes the first ** key for its allow_pickle flag; arrays holds only arrays
    write_atomic(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]


def load(path: str | Path) -> ScrapeState:
    """Read a state written by `save` (arrays are fresh, writable copies)."""
    with np.load(Path(path), allow_pickle=False) as z:
        version = int(z["format_version"])
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: scrape state format {version}, expected {FORMAT_VERSION}")
        config = StatsConfig.from_dict(json.loads(str(z["config_json"])))
        layers = {}
        for L in (int(x) for x in z["layers"]):
            arrays = {name: np.array(z[f"l{L}.{name}"]) for name in _SLOT_ARRAYS}
            m = Moments.from_arrays(
                {k: np.array(z[f"l{L}.moments.{k}"]) for k in ("n", "mean", "m2", "m3", "m4")}
            )
            layers[L] = LayerState(L, **arrays, moments=m)
        windows = WindowTable(config.context, np.array(z["win_ids"]), np.array(z["win_tokens"]))
        return ScrapeState(
            config, layers, windows, int(z["windows_seen"]), json.loads(str(z["meta_json"]))
        )
