"""Exact, mergeable moments (count, mean, M2, M3, M4) of every neuron's activations.

Central moment sums merge with the pairwise formulas of Chan et al. and Pébay (2008) in
float64. Per batch, each window's own mean and central sums are computed first (float32 on the
[batch, context, neurons] tensor, one window at a time in the sense that nothing mixes
windows), then the windows are combined in float64 with the exact shift identities

    M2 = Σ M2_w + c Σ δ_w²
    M3 = Σ M3_w + 3 Σ δ_w M2_w + c Σ δ_w³
    M4 = Σ M4_w + 4 Σ δ_w M3_w + 6 Σ δ_w² M2_w + c Σ δ_w⁴      (δ_w = mean_w − mean)

so a window contributes the same numbers whatever batch or shard it lands in, and merged
shards equal one pass up to float64 rounding. Reported statistics are population moments:
variance M2/n, skewness √n M3 / M2^1.5, excess kurtosis n M4 / M2² − 3.

The sums are torch tensors on the state's device and are combined and merged there, in
float64 — except on devices without float64 (Apple MPS), where they are float32 and the
moments of long scrapes lose precision (relative error growing like √n × 6e-8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from neuronatlas.scrape.histogram import wide_float

if TYPE_CHECKING:
    import torch


@dataclass
class Moments:
    """n (tokens, same for every neuron: a Python number, so no device read is needed to
    know it) and [neurons] mean, M2, M3, M4 on the state's device (float64 where it has it)."""

    n: float
    mean: torch.Tensor
    m2: torch.Tensor
    m3: torch.Tensor
    m4: torch.Tensor

    @classmethod
    def empty(cls, d: int, device="cpu") -> Moments:
        import torch

        z = torch.zeros(d, dtype=wide_float(device), device=device)
        return cls(0.0, z, z.clone(), z.clone(), z.clone())

    def copy(self) -> Moments:
        return Moments(self.n, self.mean.clone(), self.m2.clone(), self.m3.clone(), self.m4.clone())

    def to(self, device) -> Moments:
        wide = wide_float(device)
        return Moments(self.n, *(getattr(self, k).to(device=device, dtype=wide) for k in _SUMS))

    def arrays(self) -> dict[str, np.ndarray]:
        """Host copies (float64), for saving."""
        out = {"n": np.array(self.n)}
        for k in _SUMS:
            out[k] = getattr(self, k).detach().cpu().double().numpy()
        return out

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray], device="cpu") -> Moments:
        import torch

        wide = wide_float(device)
        sums = (torch.from_numpy(np.asarray(a[k], np.float64)).to(device, wide) for k in _SUMS)
        return cls(float(a["n"]), *sums)


_SUMS = ("mean", "m2", "m3", "m4")
_CHUNK = 512  # CPU: neurons per pass, so [batch, context, 512] float32 stays in L2 cache


class Scratch:
    """Work tensors reused from batch to batch, by shape and device (not part of the state:
    never saved, copied or merged).

    Why: the central sums need three [batch, context, chunk] temporaries per chunk. Allocated
    afresh each time, every one is a new mapping of a few MB that the kernel fills with zero
    pages on first touch: about 43,000 page faults per GPT-2-small batch, which cost more than
    the arithmetic (measured: 240 ms against 104 ms for the twelve layers' moments of one
    batch). Reused, they stay mapped and warm."""

    def __init__(self) -> None:
        self._tensors: dict[tuple, torch.Tensor] = {}

    def __getstate__(self) -> dict:
        return {}  # a state sent to another process (Ray) takes no work tensors along

    def __setstate__(self, _state: dict) -> None:
        self._tensors = {}

    def get(self, shape: tuple[int, ...], device) -> torch.Tensor:
        """An uninitialised float32 tensor of `shape` on `device`, the same one every call."""
        import torch

        key = (shape, str(device))
        t = self._tensors.get(key)
        if t is None:
            t = self._tensors[key] = torch.empty(shape, dtype=torch.float32, device=device)
        return t


def window_stats(
    acts: torch.Tensor, scratch: Scratch | None = None
) -> tuple[torch.Tensor, Moments]:
    """(window maxima float32 [batch, neurons], moments) of a [batch, context, neurons] tensor.

    On the CPU, works through the neurons in chunks so that the several passes the central
    sums need read from cache rather than memory (on an accelerator, in one piece); per-window
    results do not depend on the chunking. `scratch` holds the temporaries between calls (a
    scrape passes its own; without one they are allocated for this call).
    """
    import torch

    b, c, n = acts.shape
    dev = acts.device
    chunk = _CHUNK if dev.type == "cpu" else n
    work = (scratch or Scratch()).get((3, b, c, min(chunk, n)), dev)
    mx = torch.empty((b, n), dtype=torch.float32, device=dev)
    sums = torch.empty((4, b, n), dtype=torch.float32, device=dev)
    wm, w2, w3, w4 = sums
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        a = acts[:, :, lo:hi]
        d, d2, t = (w[..., : hi - lo] for w in work)
        torch.amax(a, dim=1, out=mx[:, lo:hi])
        mean = a.mean(dim=1, keepdim=True)
        wm[:, lo:hi] = mean.squeeze(1)
        torch.sub(a, mean, out=d)
        torch.mul(d, d, out=d2)
        torch.sum(d2, dim=1, out=w2[:, lo:hi])
        torch.sum(torch.mul(d2, d2, out=t), dim=1, out=w4[:, lo:hi])
        torch.sum(d2.mul_(d), dim=1, out=w3[:, lo:hi])
    wide = sums.to(wide_float(dev))
    return mx, _combine(c, *wide)


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
    return Moments(float(b * c), mean, m2, m3, m4)


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Pébay's pairwise update: the moments of the union of two disjoint samples (elementwise
    on the device; the counts are Python numbers, so nothing is read back)."""
    if a.n == 0:
        return b.copy()
    if b.n == 0:
        return a.copy()
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
    """mean, variance, skewness, excess kurtosis as float64 host arrays (NaN where undefined:
    n = 0 or M2 = 0). Read-out only: copies the sums to the host."""
    a = m.arrays()
    with np.errstate(divide="ignore", invalid="ignore"):
        n = m.n if m.n else np.nan
        variance = a["m2"] / n
        skew = np.sqrt(n) * a["m3"] / np.power(a["m2"], 1.5)
        kurt = n * a["m4"] / (a["m2"] * a["m2"]) - 3.0
    return {
        "mean": a["mean"] if m.n else np.full_like(a["mean"], np.nan),
        "variance": variance,
        "skewness": skew,
        "kurtosis": kurt,
    }
