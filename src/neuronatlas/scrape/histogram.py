"""Quantile boundaries of each neuron's window maxima from a fixed, mergeable histogram.

The bins are the same for every neuron and every shard: 0, and ±10^e for e from −4 to 4 in
steps of 1/16 (259 edges, 260 bins counting the two open ends), so histograms of shards add
up exactly. A boundary is read off the cumulative counts with linear interpolation inside its
bin, clamped to the neuron's smallest and largest window maximum; the error is below one bin
width (≈ 15 % of the value for |value| in [1e-4, 1e4]).

Everything runs in torch on the state's device, in float64 where the device has it; on a
device without float64 (Apple MPS) the bin index and the interpolation use float32, so a value
within float32 rounding of a bin edge may land in the neighbouring bin and boundaries differ
from a CPU or CUDA scrape in their last bits.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


@lru_cache(maxsize=1)
def edges() -> np.ndarray:
    pos = 10.0 ** np.linspace(-4.0, 4.0, 129)
    return np.concatenate([-pos[::-1], [0.0], pos]).astype(np.float32)


def n_bins() -> int:
    return len(edges()) + 1


def wide_float(device) -> torch.dtype:
    """float64 where the device has it, else float32 (MPS)."""
    import torch

    return torch.float32 if torch.device(device).type == "mps" else torch.float64


@lru_cache(maxsize=16)
def _bin_edges(device) -> tuple[torch.Tensor, torch.Tensor]:
    """(lower, upper) edge of every bin, on `device`, ±inf for the open ends (cached so the
    per-batch refresh copies nothing to the device)."""
    import torch

    e = torch.from_numpy(edges()).to(wide_float(device))
    inf = torch.tensor([np.inf], dtype=e.dtype)
    return torch.cat([-inf, e]).to(device), torch.cat([e, inf]).to(device)


@lru_cache(maxsize=16)
def _quantile_targets(quantiles: tuple[float, ...], device) -> torch.Tensor:
    import torch

    return torch.tensor(quantiles, dtype=wide_float(device))[None, :].to(device)


def bin_index(x: torch.Tensor) -> torch.Tensor:
    """The bin of each value: the number of edges ≤ x (what `bucketize(right=True)` gives),
    computed arithmetically from the log spacing instead of by binary search (a value within
    float rounding of an edge may land in either neighbouring bin)."""
    import torch

    lg = torch.log10(x.abs().to(wide_float(x.device)))
    pos = torch.clamp(torch.floor(16.0 * (lg + 4.0)) + 1.0, 0, 129)
    neg = torch.clamp(torch.floor(16.0 * (4.0 - lg)) + 1.0, 0, 129)
    idx = torch.where(x > 0, 130 + pos, torch.where(x < 0, neg, torch.full_like(pos, 130)))
    return idx.long()


def add_to_histogram(hist: torch.Tensor, maxima: torch.Tensor) -> None:
    """hist int64 [neurons, bins] += counts of `maxima` float32 [neurons, windows]."""
    import torch

    idx = bin_index(maxima)
    nb = hist.shape[1]
    flat = idx + torch.arange(hist.shape[0], dtype=idx.dtype, device=idx.device)[:, None] * nb
    ones = torch.ones((), dtype=hist.dtype, device=hist.device).expand(flat.numel())
    hist.view(-1).index_add_(0, flat.flatten(), ones)


def boundaries(
    hist: torch.Tensor, lowest: torch.Tensor, highest: torch.Tensor, quantiles: tuple[float, ...]
) -> torch.Tensor:
    """float32 [neurons, len(quantiles)] estimated quantiles of the window maxima.

    lowest/highest: each neuron's smallest/largest window maximum (clamps the open bins).
    Neurons without windows get NaN.
    """
    import torch

    wide = wide_float(hist.device)
    lo_edge, hi_edge = _bin_edges(hist.device)
    cum = torch.cumsum(hist, dim=1).to(wide)
    total = cum[:, -1:]
    target = _quantile_targets(tuple(quantiles), hist.device) * total
    j = torch.searchsorted(cum, target.contiguous(), right=True).clamp(max=hist.shape[1] - 1)
    zero = torch.zeros_like(target)
    before = torch.where(j > 0, torch.gather(cum, 1, (j - 1).clamp(min=0)), zero)
    count = torch.gather(hist, 1, j).to(wide)
    frac = torch.where(count > 0, (target - before) / count.clamp(min=1), torch.zeros_like(target))
    low = torch.maximum(lo_edge[j], lowest.to(wide)[:, None])
    high = torch.minimum(hi_edge[j], highest.to(wide)[:, None])
    high = torch.maximum(high, low)
    value = low + frac * (high - low)
    value = torch.where(total > 0, value, torch.full_like(value, float("nan")))
    return value.float()
