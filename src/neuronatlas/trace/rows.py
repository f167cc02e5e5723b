"""Rows of the attribution matrix by batched backward passes through the linearised model.

A row is one target (a neuron at (layer, position), or a logit) and holds the direct effect of
every source on it: neuron (l, p, i) gives a_i * d(target)/d(a_i) with MLPs cut, the embedding
at p gives x0_p . d(target)/d(x0_p). One backward pass serves B targets at once: each replica
b of the prompt reads only its own target, so the gradient in replica b is target b's row.
Targets at layer l need the pass only up to layer l, so callers batch targets of similar
layers together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from neuronatlas.trace.linearised import Linearised, Replay

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Targets:
    """B targets: layer (n_layers for a logit, read at the final norm), position, read vector
    [B, d] and the constant added after the dot product [B]."""

    layers: torch.Tensor
    positions: torch.Tensor
    reads: torch.Tensor
    constants: torch.Tensor


@dataclass(frozen=True)
class Rows:
    """Per target b: `neurons[l][b]` [P, d_mlp] (None above the deepest target) and
    `embeddings[b]` [P]."""

    neurons: list[torch.Tensor | None]
    embeddings: torch.Tensor


def _objective(lin: Linearised, run: Replay, t: Targets) -> torch.Tensor:
    """Sum over b of target b's read in replica b: its gradient in replica b is row b."""
    total = t.reads.new_zeros(())
    for layer in sorted(set(t.layers.tolist())):
        idx = (t.layers == layer).nonzero().flatten()
        site = run.final if layer == lin.n_layers else run.z[layer]
        assert site is not None
        picked = site[idx, t.positions[idx]]
        total = total + (picked * t.reads[idx]).sum()
    return total


def _backward(lin: Linearised, t: Targets, mode: str) -> Rows:
    import torch

    clean = lin.clean
    batch = t.reads.shape[0]
    deepest = int(t.layers.max())
    stop = None if deepest >= lin.n_layers else deepest
    x0 = clean.x0.expand(batch, -1, -1).clone().requires_grad_(True)
    with torch.enable_grad():
        run = lin.replay(x0, mode, acts=clean.acts, stop_layer=stop)  # type: ignore[arg-type]
        layers = sorted(run.delta)
        grads = torch.autograd.grad(
            _objective(lin, run, t), [x0, *(run.delta[i] for i in layers)], allow_unused=True
        )
    neurons: list[torch.Tensor | None] = [None] * lin.n_layers
    for layer, g in zip(layers, grads[1:], strict=True):
        neurons[layer] = torch.zeros_like(run.delta[layer]) if g is None else g * clean.acts[layer]
    g0 = grads[0] if grads[0] is not None else torch.zeros_like(x0)
    return Rows(neurons=neurons, embeddings=(g0 * clean.x0).sum(-1))


def direct_rows(lin: Linearised, t: Targets) -> Rows:
    """Direct effects (MLPs cut): the attribution graph's edges into each target."""
    return _backward(lin, t, "cut")


def total_effects(lin: Linearised, t: Targets) -> Rows:
    """Total effects in the linearised model (gradients through frozen-linear MLPs): zeroing
    source s changes the target by exactly -row[s] there."""
    return _backward(lin, t, "live")


def constants(lin: Linearised, t: Targets) -> torch.Tensor:
    """Each target's value with every source at 0 (embedding 0, neuron values 0): the bias
    terms (GPT-2's LayerNorm betas, attention and MLP biases, rho * b_in); [B]."""
    import torch

    clean = lin.clean
    with torch.no_grad():
        zero_acts = [torch.zeros_like(a) for a in clean.acts]
        run = lin.replay(torch.zeros_like(clean.x0), "cut", acts=zero_acts, with_delta=False)
        out = torch.empty_like(t.constants)
        for b in range(t.reads.shape[0]):
            layer, pos = int(t.layers[b]), int(t.positions[b])
            site = run.final if layer == lin.n_layers else run.z[layer]
            assert site is not None
            out[b] = site[0, pos] @ t.reads[b] + t.constants[b]
    return out


def values(lin: Linearised, t: Targets) -> torch.Tensor:
    """Each target's value in the clean run through its read vector: r . z + c; [B]."""
    import torch

    clean = lin.clean
    out = torch.empty_like(t.constants)
    for b in range(t.reads.shape[0]):
        layer, pos = int(t.layers[b]), int(t.positions[b])
        site = clean.final if layer == lin.n_layers else clean.z[layer]
        out[b] = site[0, pos] @ t.reads[b] + t.constants[b]
    return out
