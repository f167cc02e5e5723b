"""The scrape state: a monoid of torch tensors on the model's device (`new_state`, `update`,
`merge`, `save`, `load`).

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

Where the tensors live: every per-neuron array is created on the device the model runs on
(`new_state(..., device=)`), each batch's activations are folded in there, and merges run on
the device of their first argument. Nothing in the per-batch update reads a value back to the
host (on CUDA it only queues kernels; the window ids go to the device once per batch, like the
model's input ids). The host sees the state at checkpoints and shard saves (`save`), at merges
of states from different devices, at read-out (`readout`), and — to keep the token table
bounded — when the `WindowTable` is pruned, once every few thousand windows, which copies the
referenced window ids. The saved format is the same as before the tensors moved (format 1):
states saved by earlier versions load and resume unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from neuronatlas.atomic import write_atomic
from neuronatlas.errors import StateFormatError
from neuronatlas.scrape import hashing, histogram
from neuronatlas.scrape.config import StatsConfig
from neuronatlas.scrape.moments import Moments, Scratch, merge_moments, window_stats
from neuronatlas.scrape.select import (
    MAX_WINDOW_ID,
    admit,
    empty_top_key,
    select_entries,
    sparse_writes,
    take_dense,
    top_keys,
)

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
# the slot arrays of each kept set, with what a candidate brings to each
_TOP = (("top_val", "val"), ("top_wid", "wid"), ("top_vec", "vec"))
_RND = (("rnd_key", "key"), ("rnd_wid", "wid"), ("rnd_val", "val"), ("rnd_vec", "vec"))
_QNT = (("q_key", "key"), ("q_wid", "wid"), ("q_val", "val"), ("q_vec", "vec"))


@dataclass
class LayerState:
    """One layer's per-neuron tensors, all on one device (see the module docstring)."""

    layer: int
    top_val: torch.Tensor  # float32 [N, k]       window maximum, -inf = empty
    top_wid: torch.Tensor  # int64   [N, k]       window id, -1 = empty
    top_vec: torch.Tensor  # [N, k, C]
    rnd_key: torch.Tensor  # int64   [N, r]       sample key, EMPTY_KEY = empty
    rnd_wid: torch.Tensor  # int64   [N, r]
    rnd_val: torch.Tensor  # float32 [N, r]       window maximum
    rnd_vec: torch.Tensor  # [N, r, C]
    q_key: torch.Tensor  # int64   [N, Q, s]
    q_wid: torch.Tensor  # int64   [N, Q, s]
    q_val: torch.Tensor  # float32 [N, Q, s]
    q_vec: torch.Tensor  # [N, Q, s, C]
    q_bounds: torch.Tensor  # float32 [N, Q-1]     boundaries new windows are bucketed by
    hist: torch.Tensor  # int64   [N, bins]    counts of window maxima
    lowest: torch.Tensor  # float32 [N]          smallest window maximum (+inf before any)
    highest: torch.Tensor  # float32 [N]          largest window maximum (-inf before any)
    moments: Moments

    @property
    def d_mlp(self) -> int:
        return self.top_val.shape[0]

    @property
    def device(self) -> torch.device:
        return self.top_val.device

    @classmethod
    def empty(cls, layer: int, d: int, cfg: StatsConfig, device="cpu") -> LayerState:
        import torch

        k, r, q, s, c = cfg.top_k, cfg.random_k, cfg.n_buckets, cfg.quantile_k, cfg.context
        vdt = getattr(torch, cfg.vector_dtype)
        f32, i64, inf, nan = torch.float32, torch.int64, float("inf"), float("nan")

        def full(shape, value, dtype):
            return torch.full(shape, value, dtype=dtype, device=device)

        return cls(
            layer=layer,
            top_val=full((d, k), -inf, f32),
            top_wid=full((d, k), -1, i64),
            top_vec=full((d, k, c), 0, vdt),
            rnd_key=full((d, r), hashing.EMPTY_KEY, i64),
            rnd_wid=full((d, r), -1, i64),
            rnd_val=full((d, r), nan, f32),
            rnd_vec=full((d, r, c), 0, vdt),
            q_key=full((d, q, s), hashing.EMPTY_KEY, i64),
            q_wid=full((d, q, s), -1, i64),
            q_val=full((d, q, s), nan, f32),
            q_vec=full((d, q, s, c), 0, vdt),
            q_bounds=full((d, q - 1), nan, f32),
            hist=full((d, histogram.n_bins()), 0, i64),
            lowest=full((d,), inf, f32),
            highest=full((d,), -inf, f32),
            moments=Moments.empty(d, device),
        )

    def copy(self) -> LayerState:
        arrays = {name: getattr(self, name).clone() for name in _SLOT_ARRAYS}
        return LayerState(self.layer, **arrays, moments=self.moments.copy())

    def to(self, device) -> LayerState:
        """This layer's state on `device` (itself when already there)."""
        import torch

        if self.device == torch.device(device):
            return self
        arrays = {name: getattr(self, name).to(device) for name in _SLOT_ARRAYS}
        return LayerState(self.layer, **arrays, moments=self.moments.to(device))

    def host(self) -> dict[str, np.ndarray]:
        """numpy copies of the slot arrays (read-out, saving)."""
        return {name: getattr(self, name).detach().cpu().numpy() for name in _SLOT_ARRAYS}

    @classmethod
    def from_host(cls, layer: int, arrays: Mapping[str, np.ndarray], moments: Moments, device):
        import torch

        tensors = {n: torch.from_numpy(np.array(arrays[n])).to(device) for n in _SLOT_ARRAYS}
        return cls(layer, **tensors, moments=moments)

    def referenced(self) -> torch.Tensor:
        """Window ids some slot holds (on the device, with repeats)."""
        import torch

        ids = torch.cat([self.top_wid.ravel(), self.rnd_wid.ravel(), self.q_wid.ravel()])
        return ids[ids >= 0]


class WindowTable:
    """Token ids of windows, by window id (host memory: the tokens come from the host and are
    only read at read-out); pruned to the windows some slot references."""

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
    scratch: Scratch = field(default_factory=Scratch, repr=False, compare=False)

    @property
    def device(self) -> torch.device:
        import torch

        first = next(iter(self.layers.values()), None)
        return torch.device("cpu") if first is None else first.device

    def referenced(self) -> np.ndarray:
        """Sorted unique window ids held by any slot (copied to the host)."""
        import torch

        if not self.layers:
            return np.empty(0, np.int64)
        ids = torch.cat([s.referenced() for s in self.layers.values()])
        return torch.unique(ids).cpu().numpy()

    def prune_windows(self) -> None:
        self.windows.prune(self.referenced())

    def to(self, device) -> ScrapeState:
        """The same state with its tensors on `device` (shares the window table)."""
        layers = {L: ls.to(device) for L, ls in self.layers.items()}
        return ScrapeState(self.config, layers, self.windows, self.windows_seen, self.meta)


def new_state(config: StatsConfig, layers: Sequence[int], d_mlp: int, device="cpu") -> ScrapeState:
    """An empty state (the monoid's identity) for `layers` of `d_mlp` neurons on `device`."""
    return ScrapeState(
        config,
        {int(L): LayerState.empty(int(L), d_mlp, config, device) for L in layers},
        WindowTable(config.context),
    )


# -- update --------------------------------------------------------------------------------------


def window_id_tensor(window_ids, device) -> torch.Tensor:
    """int64 window ids on `device`, checked on the host first (once per batch: the layers of a
    batch share it)."""
    import torch

    if isinstance(window_ids, torch.Tensor):
        return window_ids.to(device=device, dtype=torch.int64)
    wids = np.asarray(window_ids, np.int64)
    if len(wids) and (wids.min() < 0 or wids.max() > MAX_WINDOW_ID):
        raise ValueError(f"window ids must be in [0, {MAX_WINDOW_ID}]")
    t = torch.from_numpy(wids)
    if torch.device(device).type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class _Candidates:
    """What each window of the batch brings to a slot, per neuron: its maximum ('val'), id
    ('wid'), sample key ('key', set per kept set) and activation vector ('vec').

    `sparse(kind, cols, neurons)` gives the values of listed (window, neuron) pairs (vectors
    gathered with strided reads from the [window, context, neuron] tensor: on the CPU even a
    quarter of all pairs costs less than one transposed copy); `dense(kind)` all of them as
    [neurons, windows, ...] (vectors from one transposed copy, cheap on an accelerator)."""

    def __init__(self, acts: torch.Tensor, mx: torch.Tensor, wids: torch.Tensor, vdt) -> None:
        self.acts, self.mx, self.wids, self.vdt = acts, mx, wids, vdt
        self.key: torch.Tensor | None = None
        self._by_neuron: torch.Tensor | None = None

    def by_neuron(self) -> torch.Tensor:
        if self._by_neuron is None:
            self._by_neuron = self.acts.permute(2, 0, 1).contiguous().to(self.vdt)
        return self._by_neuron

    def sparse(self, kind: str, cols: torch.Tensor, neurons: torch.Tensor) -> torch.Tensor:
        b = self.acts.shape[0]
        if kind == "wid":
            return self.wids.index_select(0, cols)
        if kind == "vec":  # strided reads: cheaper than a transposed copy (measured)
            return self.acts[cols, :, neurons].to(self.vdt)
        pos = neurons * b + cols
        source = self.mx if kind == "val" else self.key
        assert source is not None
        return source.view(-1).index_select(0, pos)

    def dense(self, kind: str) -> torch.Tensor:
        if kind == "val":
            return self.mx
        if kind == "wid":
            return self.wids[None, :].expand(self.mx.shape)
        if kind == "key":
            assert self.key is not None
            return self.key
        return self.by_neuron()


def _fold(
    ls: LayerState,
    arrays: tuple[tuple[str, str], ...],
    slot_key: torch.Tensor,
    new_key: torch.Tensor,
    cand: _Candidates,
    groups: int = 1,
) -> None:
    """Let the batch's windows into one kept set of every neuron.

    slot_key [N × groups, S] and new_key [N × groups, B] are the keys per reservoir row (a
    neuron has `groups` rows: its quantile buckets); the slot arrays are [N, groups, S, ...]
    or [N, S, ...]."""
    d = ls.d_mlp
    s = slot_key.shape[1]
    if s == 0:
        return
    if sparse_writes(ls.device):
        rows, slots, cols = select_entries(slot_key, new_key, _empty_of(arrays))
        if rows.numel() == 0:
            return
        neurons = rows // groups
        pos = rows * s + slots  # = neuron × (groups × s) + slot within the neuron's slots
        for name, kind in arrays:
            dst = getattr(ls, name)
            flat = dst.view(-1, dst.shape[-1]) if _is_vec_name(name) else dst.view(-1)
            flat.index_copy_(0, pos, cand.sparse(kind, cols, neurons).to(dst.dtype))
        return
    taken = admit(slot_key, new_key, _empty_of(arrays)).view(d, groups * s)
    for name, kind in arrays:
        old = getattr(ls, name)
        new = take_dense(_by_neuron_rows(old, name, d), taken, cand.dense(kind).to(old.dtype))
        setattr(ls, name, new.view(old.shape))


def _empty_of(arrays: tuple[tuple[str, str], ...]) -> int:
    """The key of an empty slot of a kept set."""
    return empty_top_key() if arrays is _TOP else hashing.EMPTY_KEY


def _by_neuron_rows(t: torch.Tensor, name: str, d: int) -> torch.Tensor:
    """[N, ...slots..., C?] → [N, all slots, C?] view (vectors keep their context axis)."""
    return t.view(d, -1, t.shape[-1]) if _is_vec_name(name) else t.view(d, -1)


def update_layer(state: ScrapeState, layer: int, window_ids, acts: torch.Tensor) -> None:
    """Fold one batch of one layer into the state: acts float32 [batch, context, neurons] (moved
    to the state's device if elsewhere); window ids as numpy or a tensor (`window_id_tensor`)."""
    import torch

    cfg = state.config
    ls = state.layers[layer]
    b, c, d = acts.shape
    if c != cfg.context or d != ls.d_mlp or b != len(window_ids):
        raise ValueError(
            f"activations {tuple(acts.shape)} do not fit the state "
            f"({len(window_ids)} windows × {cfg.context} × {ls.d_mlp})"
        )
    dev = ls.device
    wid_t = window_id_tensor(window_ids, dev)
    acts = acts.to(device=dev, dtype=torch.float32)
    maxima, moments = window_stats(acts, state.scratch)
    mx = torch.nan_to_num(maxima, nan=-float("inf")).T.contiguous()  # [N, B]
    cand = _Candidates(acts, mx, wid_t, ls.top_vec.dtype)
    windows_before = round(ls.moments.n) // c

    _fold(ls, _TOP, top_keys(ls.top_val, ls.top_wid), top_keys(mx, wid_t[None, :]), cand)

    if cfg.random_k:
        salts = hashing.neuron_salts(cfg.seed, hashing.STREAM_RANDOM, layer, d, str(dev))
        cand.key = hashing.window_keys(salts, wid_t)
        _fold(ls, _RND, ls.rnd_key, cand.key, cand)

    histogram.add_to_histogram(ls.hist, mx)
    torch.minimum(ls.lowest, mx.min(dim=1).values, out=ls.lowest)
    torch.maximum(ls.highest, mx.max(dim=1).values, out=ls.highest)

    if cfg.quantile_k:
        if _refresh_epoch(windows_before) != _refresh_epoch(windows_before + b):
            ls.q_bounds.copy_(histogram.boundaries(ls.hist, ls.lowest, ls.highest, cfg.quantiles))
        _update_quantiles(ls, cfg, layer, wid_t, mx, cand)

    ls.moments = merge_moments(ls.moments, moments)


def _refresh_epoch(windows: int) -> int:
    """Quantile boundaries used for admitting windows are re-read from the histogram when a
    layer's window count enters a new epoch: at 1, 2, 4, ... 1024 windows, then every 1024.
    A pure function of the count, so a resumed scrape refreshes exactly when the original did."""
    return windows.bit_length() if windows < 1024 else 10 + windows // 1024


def _update_quantiles(
    ls: LayerState, cfg: StatsConfig, layer: int, wid_t, mx, cand: _Candidates
) -> None:
    """Admit windows to the reservoir of their bucket (by the current `q_bounds`): each window
    competes only in its own bucket's row (its key elsewhere is the empty key, which never
    enters)."""
    import torch

    d, q, s = ls.q_key.shape
    dev = ls.device
    bucket = torch.searchsorted(ls.q_bounds, mx.contiguous(), right=True)  # [N, B]
    salts = hashing.neuron_salts(cfg.seed, hashing.STREAM_QUANTILE, layer, d, str(dev))
    cand.key = hashing.window_keys(salts, wid_t)
    mine = bucket[:, None, :] == torch.arange(q, device=dev)[None, :, None]  # [N, Q, B]
    new_key = torch.where(mine, cand.key[:, None, :], hashing.EMPTY_KEY).view(d * q, -1)
    _fold(ls, _QNT, ls.q_key.view(d * q, s), new_key, cand, groups=q)


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
    ids = window_id_tensor(window_ids, state.device)
    for layer, a in acts.items():
        update_layer(state, layer, ids, a)
    add_windows(state, window_ids, tokens)


# -- merge ---------------------------------------------------------------------------------------


def _merge_set(
    out: LayerState,
    src: LayerState,
    arrays: tuple[tuple[str, str], ...],
    slot_key: torch.Tensor,
    new_key: torch.Tensor,
) -> None:
    """Move `src` entries that beat `out` entries into `out` (rows: [R, S] reservoir rows)."""
    r, s = slot_key.shape
    if s == 0:
        return
    taken = admit(slot_key, new_key, _empty_of(arrays))
    for name, _kind in arrays:
        dst, cand = getattr(out, name), getattr(src, name)
        tail = dst.shape[dst.dim() - (1 if _is_vec_name(name) else 0) :]
        new = take_dense(dst.reshape(r, s, *tail), taken, cand.reshape(r, s, *tail))
        setattr(out, name, new.reshape(dst.shape))


def _is_vec_name(name: str) -> bool:
    return name.endswith("vec")


def _check_disjoint(ls: LayerState) -> None:
    """A window held twice in one neuron's top-k means the shards overlapped."""
    import torch

    w = torch.sort(ls.top_wid, dim=1).values
    if bool(((w[:, 1:] == w[:, :-1]) & (w[:, 1:] >= 0)).any()):
        raise ValueError("a window id occurs in both states: are the shards disjoint?")


def merge_layer(a: LayerState, b: LayerState, cfg: StatsConfig) -> LayerState:
    """The state of the union of two disjoint shards' windows, for one layer (on a's device)."""
    import torch

    b = b.to(a.device)
    out = a.copy()
    d, q = a.d_mlp, cfg.n_buckets
    _merge_set(out, b, _TOP, top_keys(a.top_val, a.top_wid), top_keys(b.top_val, b.top_wid))
    _merge_set(out, b, _RND, a.rnd_key, b.rnd_key)
    _merge_set(out, b, _QNT, a.q_key.view(d * q, -1), b.q_key.view(d * q, -1))
    _check_disjoint(out)
    out.hist += b.hist
    torch.minimum(out.lowest, b.lowest, out=out.lowest)
    torch.maximum(out.highest, b.highest, out=out.highest)
    out.moments = merge_moments(a.moments, b.moments)
    if cfg.quantile_k:
        out.q_bounds.copy_(histogram.boundaries(out.hist, out.lowest, out.highest, cfg.quantiles))
    return out


def merge(a: ScrapeState, b: ScrapeState) -> ScrapeState:
    """merge(scrape(A), scrape(B)) = scrape(A ∪ B) for disjoint window sets A and B; the result
    lives on a's device."""
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
    """Write the state as one .npz (host copies of the tensors), atomically (temporary file in
    the same folder + rename)."""
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
        for name, value in ls.host().items():
            arrays[f"l{L}.{name}"] = value
        for name, value in ls.moments.arrays().items():
            arrays[f"l{L}.moments.{name}"] = value
    write_atomic(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]


def load(path: str | Path, device="cpu") -> ScrapeState:
    """Read a state written by `save` onto `device` (fresh tensors)."""
    with np.load(Path(path), allow_pickle=False) as z:
        version = int(z["format_version"])
        if version != FORMAT_VERSION:
            raise StateFormatError(
                f"{path}: scrape state format {version}, but this neuronatlas reads format "
                f"{FORMAT_VERSION}. Delete the file to start that scrape afresh, or finish it "
                "with the neuronatlas version that wrote it."
            )
        config = StatsConfig.from_dict(json.loads(str(z["config_json"])))
        layers = {}
        for L in (int(x) for x in z["layers"]):
            arrays = {name: z[f"l{L}.{name}"] for name in _SLOT_ARRAYS}
            m = Moments.from_arrays(
                {k: z[f"l{L}.moments.{k}"] for k in ("n", "mean", "m2", "m3", "m4")}, device
            )
            layers[L] = LayerState.from_host(L, arrays, m, device)
        windows = WindowTable(config.context, np.array(z["win_ids"]), np.array(z["win_tokens"]))
        return ScrapeState(
            config, layers, windows, int(z["windows_seen"]), json.loads(str(z["meta_json"]))
        )
