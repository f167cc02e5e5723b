"""Rows by the transposed linear maps of the linearised model: no autograd, no replay.

Under the freezes of `Linearised` (norm denominators, attention patterns, activation ratios)
every block is linear in the residual stream, so a row (the gradient of one read with
respect to every source) is a product of known matrices. `Transposed.sweep` applies their
transposes to a batch of cotangents [B, P', d] from the top of the model down:

- a norm with its clean scale s is x -> C(x) * s * w (+ b), its transpose g -> C(g * w * s)
  (C: centring, for LayerNorm only; it is symmetric);
- attention with its clean pattern A is x -> W_o (A (W_v x)) per head, its transpose
  g -> W_v^T (A^T (W_o^T g)), heads summed within each key/value group;
- a cut MLP passes nothing down and reads the neuron gradient W_out^T g (the row entries
  are that times the clean activations); a live MLP (total effects) also passes
  W_in^T (coef * W_out^T g) down, with the frozen coefficients of `Linearised._frozen_linear`;
  a tangent MLP passes the same with the activation's derivative instead (ungated phi'(h);
  gated phi(g) on the up path and phi'(g) u on the gate path): the first-order response of
  the frozen-attention, frozen-norm model to a small change, used to predict interventions.

Why this is cheaper than backpropagating a replay: no forward is run (a replay of B targets
runs the whole prompt B times forward and then backward), a target at position p needs only
positions <= p (attention is causal, so positions after the deepest target in a batch are
never touched), a target at layer l enters the sweep only at layer l (targets are sorted so
the active ones are a prefix of the batch), and nothing is kept for a backward graph.
The autograd replay (`trace.rows`) stays as the reference the tests compare against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from neuronatlas.trace.family import NormKind, norm_kind
from neuronatlas.trace.rows import Rows

if TYPE_CHECKING:
    import torch

    from neuronatlas.trace.linearised import Linearised
    from neuronatlas.trace.rows import Targets

# sink(layer, g_out [n, P', d], which): the cotangent at layer `layer`'s MLP output (before
# any post norm) for the targets `which` (indices into the caller's targets). A neuron's row
# entry is a_i * (W_out^T g_out)_i (`Transposed.entries`); a caller that needs only some
# neurons and the per-position sums (g_out . W_out a) never forms all d_mlp entries.
Sink = Callable[[int, "torch.Tensor", "torch.Tensor"], None]


@dataclass(frozen=True)
class _Norm:
    """A norm's transpose: gain [d] (or None), clean scale s [P, 1], centring, and the
    clean normalised input x̂ [P, d] for its true derivative."""

    gain: torch.Tensor | None
    scale: torch.Tensor
    centre: bool
    unit: torch.Tensor

    def t(
        self, g: torch.Tensor, scale: torch.Tensor, unit: torch.Tensor | None = None
    ) -> torch.Tensor:
        """g (..., d) through the transpose, with `scale` broadcast against g. Frozen
        (unit None): C(g * w) * s. With the clean x̂ at g's positions: the transpose of the
        norm's true Jacobian, s (C(g * w) - x̂ (x̂ . g * w) / d), the denominator live."""
        out = g if self.gain is None else g * self.gain
        if unit is not None:
            along = (out * unit).sum(-1, keepdim=True) / out.shape[-1]
        if self.centre:
            out = out - out.mean(-1, keepdim=True)
        if unit is not None:
            out = out - unit * along
        return out * scale

    def over(self, g: torch.Tensor, live: bool = False) -> torch.Tensor:
        """g [n, P', d] at positions 0..P'-1 (live: the denominator's derivative too)."""
        width = g.shape[1]
        return self.t(g, self.scale[:width], self.unit[:width] if live else None)

    def at(self, g: torch.Tensor, pos: torch.Tensor, live: bool = False) -> torch.Tensor:
        """g [k, d], one row at each of positions `pos`."""
        return self.t(g, self.scale[pos], self.unit[pos] if live else None)


def _norm(lin: Linearised, module: Any, kind: NormKind) -> _Norm:
    scale = lin.clean.scales[id(module)][0]  # [P, 1]
    weight: torch.Tensor | None = getattr(module, "weight", None)
    gain = weight
    if kind == "rms_offset":  # Gemma scales by 1 + weight
        assert weight is not None
        gain = 1.0 + weight
    return _Norm(
        gain=None if gain is None else gain.detach(),
        scale=scale,
        centre=kind == "layer",
        unit=lin.clean.units[id(module)],
    )


@dataclass(frozen=True)
class _Layer:
    attn_norm: _Norm
    attn_post: _Norm | None
    mlp_norm: _Norm
    mlp_post: _Norm | None
    w_v: torch.Tensor  # [n_kv * head_dim, d]
    w_o: torch.Tensor  # [d, n_heads * head_dim]
    pattern_t: torch.Tensor  # [H, P(key j), P(query p)]: A transposed
    n_heads: int
    n_kv: int
    head_dim: int
    w_out: torch.Tensor  # [d, d_mlp]
    w_in: torch.Tensor  # [d_mlp, d]
    w_gate: torch.Tensor | None
    acts: torch.Tensor  # [P, d_mlp]
    out: torch.Tensor  # [P, d] the MLP's clean output W_out a (no bias)
    coef_in: torch.Tensor  # [P, d_mlp] live mode: d a / d (W_in z)
    coef_gate: torch.Tensor | None  # [P, d_mlp] live mode: d a / d (W_gate z), or None


class Transposed:
    """The transposed maps of one `Linearised` prompt (see the module docstring)."""

    def __init__(self, lin: Linearised) -> None:
        self.lin = lin
        fam, clean = lin.family, lin.clean
        self.n_layers = lin.n_layers
        self.x0 = clean.x0[0].detach()
        final_kind = _final_kind(fam.final_norm)
        self.final = _norm(lin, fam.final_norm, final_kind)
        self.layers = [self._layer(layer) for layer in range(lin.n_layers)]
        self._tangents: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def _tangent(self, layer: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The activation's derivative at the clean point, as (coef_in, coef_gate)."""
        import torch

        if layer not in self._tangents:
            lin, w, c = self.lin, self.lin.weights[layer], self.lin.clean
            z = c.z[layer][0].detach()
            with torch.enable_grad():
                if lin.family.gated:
                    assert w.w_gate is not None
                    pre = (z @ w.w_gate.T).detach().requires_grad_(True)
                else:
                    assert w.b_in is not None
                    pre = (z @ w.w_in.T + w.b_in).detach().requires_grad_(True)
                (slope,) = torch.autograd.grad(w.act(pre).sum(), pre)
            if lin.family.gated:
                self._tangents[layer] = (c.gate[layer][0], slope * c.up[layer][0])
            else:
                self._tangents[layer] = (slope, None)
        return self._tangents[layer]

    def _layer(self, layer: int) -> _Layer:
        lin = self.lin
        parts, w, c = lin.family.parts[layer], lin.weights[layer], lin.clean
        if lin.family.gated:
            assert w.w_gate is not None
            coef_in = lin.alpha * c.gate[layer][0]
            coef_gate = (
                (1 - lin.alpha) * c.ratio[layer][0] * c.up[layer][0] if lin.alpha != 1.0 else None
            )
        else:
            coef_in, coef_gate = c.ratio[layer][0], None
        return _Layer(
            attn_norm=_norm(lin, *parts.attn_norm),
            attn_post=None if parts.attn_post is None else _norm(lin, *parts.attn_post),
            mlp_norm=_norm(lin, *parts.mlp_norm),
            mlp_post=None if parts.mlp_post is None else _norm(lin, *parts.mlp_post),
            w_v=parts.w_v.detach(),
            w_o=parts.w_o.detach(),
            pattern_t=c.patterns[layer].transpose(-1, -2).contiguous(),
            n_heads=parts.n_heads,
            n_kv=parts.n_kv,
            head_dim=parts.head_dim,
            w_out=w.w_out.detach(),
            w_in=w.w_in.detach(),
            w_gate=None if w.w_gate is None else w.w_gate.detach(),
            acts=c.acts[layer][0].detach(),
            out=(c.acts[layer][0] @ w.w_out.T).detach(),
            coef_in=coef_in.detach(),
            coef_gate=None if coef_gate is None else coef_gate.detach(),
        )

    def sweep(
        self,
        t: Targets,
        mode: Literal["cut", "live", "tangent"],
        sink: Sink,
        live_norms: bool = False,
    ) -> torch.Tensor:
        """Rows of targets `t` (see trace.rows.Targets): neuron entries go to `sink` layer by
        layer, the embedding entries [B, P'] are returned (P' = deepest position + 1).
        live_norms: every norm by its true derivative (only the attention patterns stay
        frozen), for predicting interventions rather than for edges."""
        ln = live_norms
        import torch

        dev = self.x0.device
        order = torch.sort(t.layers, descending=True, stable=True).indices
        layers = t.layers[order].to(dev)
        pos = t.positions[order].to(dev)
        reads = t.reads[order].to(dev, self.x0.dtype)
        order = order.to(dev)
        batch, width = len(order), int(pos.max()) + 1
        g = self.x0.new_zeros(batch, width, self.x0.shape[-1])
        top = self.n_layers
        logit = (layers == top).nonzero().flatten()
        if len(logit):
            at = pos[logit]
            g[logit, at] += self.final.at(reads[logit], at, ln)
        counts = torch.bincount(layers.cpu(), minlength=top + 1)
        above = counts.flip(0).cumsum(0).flip(0).tolist()  # above[l]: targets at layer >= l
        deepest = int(layers.max())
        for layer in range(min(deepest, top - 1), -1, -1):
            lay = self.layers[layer]
            n = above[layer + 1]  # targets above this MLP
            if n:
                gs = g[:n]
                if lay.mlp_post is not None:
                    gs = lay.mlp_post.over(gs, ln)
                sink(layer, gs, order[:n])
                if mode != "cut":
                    coef_in, coef_gate = (
                        (lay.coef_in, lay.coef_gate) if mode == "live" else self._tangent(layer)
                    )
                    ga = gs @ lay.w_out  # [n, P', d_mlp]: d(read)/d(neuron value)
                    gz = (ga * coef_in[:width]) @ lay.w_in
                    if coef_gate is not None:
                        assert lay.w_gate is not None
                        gz = gz + (ga * coef_gate[:width]) @ lay.w_gate
                    g[:n] += lay.mlp_norm.over(gz, ln)
            here = (layers == layer).nonzero().flatten()
            if len(here):
                at = pos[here]
                g[here, at] += lay.mlp_norm.at(reads[here], at, ln)
            n = above[layer]
            if n:
                g[:n] += self._attention_t(lay, g[:n], ln)
        emb = (g * self.x0[:width]).sum(-1)
        out = torch.empty_like(emb)
        out[order] = emb
        return out

    def entries(self, layer: int, g_out: torch.Tensor) -> torch.Tensor:
        """Every neuron's row entry a * d(read)/d(a) [n, P', d_mlp] from a sink's g_out."""
        lay = self.layers[layer]
        return (g_out @ lay.w_out) * lay.acts[: g_out.shape[1]]

    @staticmethod
    def _attention_t(lay: _Layer, g: torch.Tensor, live_norms: bool) -> torch.Tensor:
        """The residual cotangent that flows back through the block's attention."""
        n, width, _ = g.shape
        if lay.attn_post is not None:
            g = lay.attn_post.over(g, live_norms)
        heads = (g @ lay.w_o).view(n, width, lay.n_heads, lay.head_dim).transpose(1, 2)
        per_head = lay.pattern_t[:, :width, :width] @ heads  # [n, H, P'(j), head_dim]
        groups = lay.n_heads // lay.n_kv
        values = per_head.view(n, lay.n_kv, groups, width, lay.head_dim).sum(2)
        values = values.transpose(1, 2).reshape(n, width, lay.n_kv * lay.head_dim)
        return lay.attn_norm.over(values @ lay.w_v, live_norms)

    def rows(
        self, t: Targets, mode: Literal["cut", "live", "tangent"], live_norms: bool = False
    ) -> Rows:
        """Full rows (every neuron, every position) of a few targets, like trace.rows."""

        n_pos, d_mlp = self.x0.shape[0], self.layers[0].acts.shape[-1]
        batch = len(t.layers)
        neurons: list[torch.Tensor | None] = [None] * self.n_layers

        def sink(layer: int, g_out: torch.Tensor, which: torch.Tensor) -> None:
            entries = self.entries(layer, g_out)
            full = entries.new_zeros(batch, n_pos, d_mlp)
            full[which, : entries.shape[1]] = entries
            neurons[layer] = full

        emb = self.sweep(t, mode, sink, live_norms)
        embeddings = emb.new_zeros(batch, n_pos)
        embeddings[:, : emb.shape[1]] = emb
        for layer in range(int(t.layers.max())):  # below the deepest target: all present
            if neurons[layer] is None:
                neurons[layer] = self.x0.new_zeros(batch, n_pos, d_mlp)
        return Rows(neurons=neurons, embeddings=embeddings)


def _final_kind(module: Any) -> NormKind:
    kind = norm_kind(module)
    assert kind is not None, type(module).__name__
    return kind
