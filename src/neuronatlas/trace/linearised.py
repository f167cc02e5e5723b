"""The linearised model: one clean forward records the frozen quantities, replays reuse them.

Under three freezes the map from source values (the embedding written into block 0 and every
MLP neuron's value) to every read (an MLP's input, the final norm's output) is affine, so
backpropagation returns its exact linear part and a forward with every source at 0 returns
its constant. The freezes, all taken from the clean run of the prompt:

- norm denominators: each LayerNorm / RMSNorm (Gemma's q_norm and k_norm included) divides by
  its recorded clean scale, so centring and the gain remain and the norm is affine;
- attention patterns: the query and key projections' outputs are replayed from the clean run,
  so every softmax is a constant and attention is linear in its values;
- MLPs: a replay never runs the nonlinearity. In `cut` mode an MLP outputs
  W_out (a + delta) + b_out with `a` given (the clean values, or 0) and `delta` a zero leaf
  whose gradient is d(read)/d(neuron): edges are direct effects, as in an attribution graph.
  In `live` mode the neuron is frozen-linear in its input (ungated: rho(h) (W_in z + b_in);
  gated: alpha phi(g) (W_up z) + (1 - alpha) rho(g) u (W_gate z)), so gradients run through
  MLPs too and a * d(read)/d(a) is the neuron's total effect in the linearised model.

The norms, MLPs and query/key projections have their forwards replaced on the module
instances while a pass runs, with our own formulas in every mode (the clean record too), so a
replay at the clean sources reproduces the recorded values to float error, and a replay never
computes what it would throw away (MLP internals, queries and keys).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from neuronatlas.trace.family import Family, MlpWeights, family_of
from neuronatlas.trace.ratios import ratio_function

if TYPE_CHECKING:
    import torch

    from neuronatlas.models.loaded import LoadedModel

Mode = Literal["record", "cut", "live"]


class _Stop(Exception):
    """Raised once the highest needed read is captured: later layers would be wasted work."""


@dataclass
class Clean:
    """What the clean run recorded (batch dimension 1 kept for broadcasting)."""

    x0: torch.Tensor  # [1, P, d] the embedding entering block 0
    z: list[torch.Tensor]  # per layer [1, P, d] the MLP input
    acts: list[torch.Tensor]  # per layer [1, P, d_mlp] neuron values
    ratio: list[torch.Tensor]  # per layer [1, P, d_mlp] ungated rho(h); gated rho(g)
    gate: list[torch.Tensor]  # gated only: per layer phi(g); ungated: empty
    up: list[torch.Tensor]  # gated only: per layer u = W_up z; ungated: empty
    final: torch.Tensor  # [1, P, d] the final norm's output
    scales: dict[int, torch.Tensor] = field(default_factory=dict)  # id(norm) → scale
    qk: dict[int, torch.Tensor] = field(default_factory=dict)  # id(module) → output
    patterns: list[torch.Tensor] = field(default_factory=list)  # per layer [H, P, P]
    units: dict[int, torch.Tensor] = field(default_factory=dict)  # id(norm) → [P, d] x̂


@dataclass
class Replay:
    """Sources and reads of one replay forward of batch B."""

    x0: torch.Tensor  # [B, P, d]
    acts: list[torch.Tensor] | None  # cut mode: per layer [B or 1, P, d_mlp] values
    delta: dict[int, torch.Tensor]  # layer → [B, P, d_mlp] zero leaf (requires grad)
    z: dict[int, torch.Tensor] = field(default_factory=dict)  # layer → MLP input read
    final: torch.Tensor | None = None  # [B, P, d] final norm output read


class Linearised:
    """A model with its clean run on one prompt recorded; replays run the frozen model.

    Hold the caller's model lock while using it: hooks are attached during each forward.
    """

    def __init__(self, model: LoadedModel, ids: list[int], alpha: float = 1.0) -> None:
        import torch

        self.model = model
        self.family: Family = family_of(model)
        self.ids = torch.tensor([ids], device=model.device)
        self.alpha = float(alpha)
        self.rho = ratio_function(self.family.activation)
        self.weights: list[MlpWeights] = [
            self.family.mlp_weights(layer) for layer in range(model.n_layers)
        ]
        self.n_layers = model.n_layers
        self.clean = self._record()

    # --- the clean run ---------------------------------------------------------------------

    def _record(self) -> Clean:
        import torch

        store: dict[str, Any] = {"z": [], "acts": [], "ratio": [], "gate": [], "up": []}
        scales: dict[int, torch.Tensor] = {}
        qk: dict[int, torch.Tensor] = {}

        def mlp_forward(layer: int):
            def forward(z):
                w = self.weights[layer]
                store["z"].append(z)
                if self.family.gated:
                    assert w.w_gate is not None
                    g = z @ w.w_gate.T
                    u = z @ w.w_in.T + (0 if w.b_in is None else w.b_in)
                    phi = w.act(g)
                    a = phi * u
                    store["gate"].append(phi)
                    store["up"].append(u)
                    store["ratio"].append(self.rho(g))
                else:
                    h = z @ w.w_in.T + w.b_in
                    a = w.act(h)
                    store["ratio"].append(self.rho(h))
                store["acts"].append(a)
                return _write(a, w)

            return forward

        def x0_hook(_m, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            store["x0"] = x
            return None

        def final_hook(_m, _args, out):
            store["final"] = out

        units: dict[int, torch.Tensor] = {}

        def norm_forward(module, kind):
            def forward(x):
                scales[id(module)] = _scale(module, kind, x)
                centred = x - x.mean(-1, keepdim=True) if kind == "layer" else x
                units[id(module)] = (centred * scales[id(module)])[0]
                return _normed(module, kind, x, scales[id(module)])

            return forward

        def qk_forward(module, _width):
            def forward(x):
                out = type(module).forward(module, x)
                qk[id(module)] = out
                return out

            return forward

        patterns: list[torch.Tensor] = []

        def pattern_hook(_m, _args, out):
            patterns.append(out[1][0].detach())

        handles = [m.register_forward_hook(pattern_hook) for m in self.family.attentions]
        try:
            with (
                torch.no_grad(),
                _eager_attention(self.model.model),
                self._patched(mlp_forward, norm_forward, qk_forward, x0_hook, final_hook),
            ):
                self.family.base(input_ids=self.ids, use_cache=False)
        finally:
            for h in handles:
                h.remove()
        return Clean(
            x0=store["x0"],
            z=store["z"],
            acts=store["acts"],
            ratio=store["ratio"],
            gate=store["gate"],
            up=store["up"],
            final=store["final"],
            scales=scales,
            qk=qk,
            patterns=patterns,
            units=units,
        )

    # --- replays ---------------------------------------------------------------------------

    def replay(
        self,
        x0: torch.Tensor,
        mode: Literal["cut", "live"],
        acts: list[torch.Tensor] | None = None,
        stop_layer: int | None = None,
        with_delta: bool = True,
    ) -> Replay:
        """Run the frozen model on sources `x0` [B, P, d] (and, in cut mode, neuron values
        `acts`); reads are captured on the returned Replay. `stop_layer`: end the pass once
        that layer's MLP input is read (None: run to the final norm)."""
        import torch

        batch = x0.shape[0]
        top = self.n_layers if stop_layer is None else stop_layer
        run = Replay(x0=x0, acts=acts, delta={})
        if with_delta:
            for layer in range(top):
                shape = (batch, *self.clean.acts[layer].shape[1:])
                run.delta[layer] = torch.zeros(
                    shape, dtype=x0.dtype, device=x0.device, requires_grad=True
                )
        clean = self.clean

        def mlp_forward(layer: int):
            def forward(z):
                run.z[layer] = z
                if stop_layer is not None and layer >= stop_layer:
                    raise _Stop
                w = self.weights[layer]
                if mode == "cut":
                    assert acts is not None
                    a = acts[layer]
                else:
                    a = self._frozen_linear(layer, z)
                if layer in run.delta:
                    a = a + run.delta[layer]
                return _write(a, w)

            return forward

        def x0_hook(_m, args, kwargs):
            if args:
                return (x0, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": x0}

        def final_hook(_m, _args, out):
            run.final = out

        def norm_forward(module, kind):
            scale = clean.scales[id(module)]

            def forward(x):
                return _normed(module, kind, x, scale)

            return forward

        def qk_forward(module, width):
            recorded = clean.qk[id(module)]

            def forward(x):
                if width == 0:  # the whole output is queries or keys
                    return recorded.expand(batch, *recorded.shape[1:])
                fixed = recorded[..., :width].expand(batch, *recorded.shape[1:-1], width)
                # GPT-2's fused projection (Conv1D, weight [in, out]): compute the values only
                values = x @ module.weight[:, width:] + module.bias[width:]
                return torch.cat([fixed, values], dim=-1)

            return forward

        ids = self.ids.expand(batch, -1)
        try:
            with self._patched(mlp_forward, norm_forward, qk_forward, x0_hook, final_hook):
                self.family.base(input_ids=ids, use_cache=False)
        except _Stop:
            pass
        return run

    def _frozen_linear(self, layer: int, z: torch.Tensor) -> torch.Tensor:
        """Neuron values as a linear function of the MLP input, equal to the clean values
        at the clean input (live mode)."""
        w = self.weights[layer]
        c = self.clean
        if not self.family.gated:
            assert w.b_in is not None
            return c.ratio[layer] * (z @ w.w_in.T + w.b_in)
        assert w.w_gate is not None
        up = z @ w.w_in.T + (0 if w.b_in is None else w.b_in)
        out = self.alpha * c.gate[layer] * up
        if self.alpha != 1.0:
            out = out + (1 - self.alpha) * c.ratio[layer] * c.up[layer] * (z @ w.w_gate.T)
        return out

    def read_vectors(self, layer: int, positions: torch.Tensor, neurons: torch.Tensor):
        """Frozen read vectors [n, d] at the MLP input and constants [n] added after the dot
        product (ungated rho * b_in): a = r . z + c at the clean point, exactly."""
        import torch

        w = self.weights[layer]
        c = self.clean
        if not self.family.gated:
            assert w.b_in is not None
            rho = c.ratio[layer][0, positions, neurons]
            return rho[:, None] * w.w_in[neurons], rho * w.b_in[neurons]
        assert w.w_gate is not None
        phi = c.gate[layer][0, positions, neurons]
        read = self.alpha * phi[:, None] * w.w_in[neurons]
        if self.alpha != 1.0:
            coef = (1 - self.alpha) * c.ratio[layer][0, positions, neurons]
            read = read + (coef * c.up[layer][0, positions, neurons])[:, None] * w.w_gate[neurons]
        const = torch.zeros_like(phi)
        if w.b_in is not None:  # only the up path's share of the up bias
            const = self.alpha * phi * w.b_in[neurons]
        return read, const

    @contextmanager
    def _patched(
        self, mlp_forward, norm_forward, qk_forward, x0_hook, final_hook
    ) -> Iterator[None]:
        """Replace the forwards of the MLPs, norms and query/key projections on the module
        instances (the replaced modules never compute what would be thrown away), and hook
        the first block's input and the final norm's output."""
        fam = self.family
        patches: list[tuple[Any, Any]] = [(m, mlp_forward(i)) for i, m in enumerate(fam.mlps)]
        patches += [(m, norm_forward(m, kind)) for m, kind in fam.norms]
        patches += [(m, qk_forward(m, width)) for m, width in fam.qk]
        saved = [(m, m.__dict__.get("forward")) for m, _ in patches]
        for m, f in patches:
            m.forward = f
        handles = [
            fam.blocks[0].register_forward_pre_hook(x0_hook, with_kwargs=True),
            fam.final_norm.register_forward_hook(final_hook),
        ]
        try:
            yield
        finally:
            for h in handles:
                h.remove()
            for m, before in saved:
                if before is None:
                    del m.forward
                else:
                    m.forward = before


@contextmanager
def _eager_attention(hf: Any) -> Iterator[None]:
    """While open, attention runs the eager implementation, the one that returns its
    pattern (the softmax output) for the transposed maps (trace.transposed) to reuse."""
    config = hf.config
    before = config._attn_implementation
    config._attn_implementation = "eager"
    try:
        yield
    finally:
        config._attn_implementation = before


def _write(a: torch.Tensor, w: MlpWeights) -> torch.Tensor:
    out = a @ w.w_out.T
    return out if w.b_out is None else out + w.b_out


def _scale(module: Any, kind: str, x: torch.Tensor) -> torch.Tensor:
    """The norm's clean 1 / denominator per position."""
    import torch

    eps = getattr(module, "eps", None)
    if eps is None:
        eps = module.variance_epsilon
    if kind == "layer":
        return torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + eps)
    return torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def _normed(module: Any, kind: str, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The norm with its denominator fixed to `scale`: affine in x."""
    if kind == "layer":
        out = (x - x.mean(-1, keepdim=True)) * scale
        if module.weight is not None:
            out = out * module.weight
        return out if module.bias is None else out + module.bias
    if kind == "rms_offset":
        return x * scale * (1.0 + module.weight)
    return x * scale * module.weight
