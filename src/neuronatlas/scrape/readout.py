"""From a scrape state to ordered per-neuron results: sorted top-k, the random sample, the
quantile samples under the final boundaries, and the moments.

Quantile samples: every window a neuron holds in its quantile reservoirs is put in the bucket
its maximum falls in under the *final* boundaries (from the full histogram); per bucket the
`quantile_k` windows with the smallest sample keys are reported. Windows were admitted to a
bucket's reservoir with the boundaries known when they arrived, so early windows may be missing
from a bucket whose final range differs; on corpora much larger than a few batches the
boundaries settle early and the effect is small. Top, random and moments are exact.

Read-out works on host (numpy) copies: each layer's tensors are copied from the state's device
once (`LayerState.host`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from neuronatlas.scrape import histogram
from neuronatlas.scrape.config import StatsConfig
from neuronatlas.scrape.moments import statistics
from neuronatlas.scrape.state import LayerState, ScrapeState


def _order(prim: np.ndarray, wid: np.ndarray) -> np.ndarray:
    """Row-wise argsort by (prim, wid) ascending."""
    by_wid = np.argsort(wid, axis=1, kind="stable")
    by_prim = np.argsort(np.take_along_axis(prim, by_wid, 1), axis=1, kind="stable")
    return np.take_along_axis(by_wid, by_prim, 1)


def canonical(ls: LayerState | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Slot arrays in their canonical order (numpy): top by (value desc, id asc), random by
    (key, id). Takes a layer state or its `host()` arrays.

    Two states of the same windows have equal canonical arrays whatever the shards or the order
    they were folded and merged in (the equality the property and Ray tests check).
    """
    h = _Host(ls.host() if isinstance(ls, LayerState) else ls)
    top = _order(-h.top_val, h.top_wid)
    rnd = _order(h.rnd_key, h.rnd_wid)
    take = np.take_along_axis
    return {
        "top_val": take(h.top_val, top, 1),
        "top_wid": take(h.top_wid, top, 1),
        "top_vec": take(h.top_vec, top[:, :, None], 1),
        "rnd_key": take(h.rnd_key, rnd, 1),
        "rnd_wid": take(h.rnd_wid, rnd, 1),
        "rnd_vec": take(h.rnd_vec, rnd[:, :, None], 1),
        "hist": h.hist,
        "lowest": h.lowest,
        "highest": h.highest,
    }


class _Host:
    """Attribute access to a layer's host arrays (`LayerState.host`)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["arrays"][name]
        except KeyError:
            raise AttributeError(name) from None


def quantile_boundaries(ls: LayerState, cfg: StatsConfig) -> np.ndarray:
    """float32 [N, len(quantiles)] final boundaries of the window maxima (computed on the
    state's device, returned on the host)."""
    return histogram.boundaries(ls.hist, ls.lowest, ls.highest, cfg.quantiles).cpu().numpy()


def quantile_picks(
    ls: _Host, cfg: StatsConfig, neuron: int, bounds: np.ndarray
) -> list[list[tuple[int, int]]]:
    """Per final bucket, the (bucket slot, index) of the reported windows, smallest keys first."""
    q, s = cfg.n_buckets, cfg.quantile_k
    wid = ls.q_wid[neuron].ravel()
    valid = np.flatnonzero(wid >= 0)
    out: list[list[tuple[int, int]]] = [[] for _ in range(q)]
    if not len(valid):
        return out
    vals = ls.q_val[neuron].ravel()[valid]
    bucket = np.searchsorted(bounds, vals, side="right")
    order = np.lexsort((wid[valid], ls.q_key[neuron].ravel()[valid], bucket))
    for i in order:
        b = int(bucket[i])
        if len(out[b]) < s:
            flat = int(valid[i])
            out[b].append((flat // s, flat % s))
    return out


class TokenCache:
    """Window id → display strings, decoded once per window."""

    def __init__(self, state: ScrapeState, token_strings: Callable[[list[int]], list[str]]):
        self.state = state
        self.token_strings = token_strings
        self.cache: dict[int, list[str]] = {}

    def __call__(self, wid: int) -> list[str]:
        got = self.cache.get(wid)
        if got is None:
            ids = self.state.windows.lookup(np.array([wid]))[0]
            got = self.cache[wid] = self.token_strings(ids.tolist())
        return got


class LayerReadout(NamedTuple):
    """What every read-out of one layer starts from: its state on the host, the canonical
    (ordered) top and random arrays, each neuron's quantile boundaries and moments."""

    layer_state: Any
    host: _Host
    canonical: dict[str, np.ndarray]
    bounds: np.ndarray
    stats: dict[str, np.ndarray]


def layer_readout(state: ScrapeState, layer: int) -> LayerReadout:
    """`LayerReadout` of one layer (shared by the per-neuron and the block read-outs)."""
    layer_state = state.layers[layer]
    host = _Host(layer_state.host())
    return LayerReadout(
        layer_state,
        host,
        canonical(host.arrays),
        quantile_boundaries(layer_state, state.config),
        statistics(layer_state.moments),
    )


def neuron_results(
    state: ScrapeState,
    layer: int,
    token_strings: Callable[[list[int]], list[str]],
    neurons: range | None = None,
) -> Iterator[dict]:
    """Per neuron: {'neuron', 'records': {category: [(tokens, activations)]}, stats...}.

    Activations are the state's float32 values (the store keeps them exactly).
    """
    cfg = state.config
    layer_state, ls, can, bounds, stats = layer_readout(state, layer)
    strings = TokenCache(state, token_strings)
    for n in neurons or range(layer_state.d_mlp):
        records: dict[str, list[tuple[list[str], list[float]]]] = {}
        top_w, top_v = can["top_wid"][n], can["top_vec"][n]
        records["top"] = [
            (strings(int(w)), top_v[i].tolist()) for i, w in enumerate(top_w) if w >= 0
        ]
        rnd_w, rnd_v = can["rnd_wid"][n], can["rnd_vec"][n]
        records["random"] = [
            (strings(int(w)), rnd_v[i].tolist()) for i, w in enumerate(rnd_w) if w >= 0
        ]
        if cfg.quantile_k:
            for b, picks in enumerate(quantile_picks(ls, cfg, n, bounds[n])):
                records[f"quantile_{b}"] = [
                    (strings(int(ls.q_wid[n, qb, j])), ls.q_vec[n, qb, j].tolist())
                    for qb, j in picks
                ]
        yield {
            "neuron": n,
            "records": records,
            "mean": float(stats["mean"][n]),
            "variance": float(stats["variance"][n]),
            "skewness": float(stats["skewness"][n]),
            "kurtosis": float(stats["kurtosis"][n]),
            "quantile_boundaries": [float(x) for x in bounds[n]],
        }
