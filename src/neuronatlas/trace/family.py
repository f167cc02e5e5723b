"""Where the pieces a linearised forward needs live in each Hugging Face model family.

The trace freezes three things (norm denominators, attention patterns, MLP nonlinearities)
and reads two (the MLP input, the final norm output). `Family` finds those modules and the
MLP weights in the model as loaded, for GPT-2 (ungated MLP, LayerNorm) and the gated
RMSNorm families (Llama, Mistral, Qwen2/3, Gemma 1-3 text models).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from neuronatlas.errors import ModelUnavailable

if TYPE_CHECKING:
    import torch

    from neuronatlas.models.loaded import LoadedModel

GATED_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text")
NormKind = Literal["layer", "rms", "rms_offset"]


@dataclass(frozen=True)
class Family:
    """The model's trace-relevant modules. `qk` are (module, width): modules whose output
    holds the queries and keys in its first `width` features (0: the whole output)."""

    base: Any  # the decoder without its LM head: its forward ends at the final norm
    blocks: list[Any]
    mlps: list[Any]
    norms: list[tuple[Any, NormKind]]
    final_norm: Any
    qk: list[tuple[Any, int]]
    gated: bool
    activation: str
    unembedding: torch.Tensor  # [vocab, d_model]
    softcap: float | None
    attentions: list[Any]  # per layer: the attention module (its output[1]: the pattern)
    parts: list[BlockParts]  # per layer: how the block is wired (for the transposed maps)

    def mlp_weights(self, layer: int) -> MlpWeights:
        """The layer's MLP as matrices in one orientation: inputs [d_mlp, d], output [d, d_mlp]."""
        mlp = self.mlps[layer]
        if self.gated:
            return MlpWeights(
                w_in=mlp.up_proj.weight,
                b_in=mlp.up_proj.bias,
                w_gate=mlp.gate_proj.weight,
                w_out=mlp.down_proj.weight,
                b_out=mlp.down_proj.bias,
                act=mlp.act_fn,
            )
        # GPT-2's Conv1D stores weights [in, out]
        return MlpWeights(
            w_in=mlp.c_fc.weight.T,
            b_in=mlp.c_fc.bias,
            w_gate=None,
            w_out=mlp.c_proj.weight.T,
            b_out=mlp.c_proj.bias,
            act=mlp.act,
        )


@dataclass(frozen=True)
class BlockParts:
    """One block's residual wiring, as the transposed linear maps need it:
    x_mid = x + post_attn(attn(attn_norm(x))); x_out = x_mid + post_mlp(mlp(mlp_norm(x_mid))).
    The post norms are Gemma-2/3's (None elsewhere). w_v [n_kv * head_dim, d] and
    w_o [d, n_heads * head_dim] in the (out, in) orientation of torch.nn.Linear."""

    attn_norm: tuple[Any, NormKind]
    attn_post: tuple[Any, NormKind] | None
    mlp_norm: tuple[Any, NormKind]
    mlp_post: tuple[Any, NormKind] | None
    w_v: torch.Tensor
    w_o: torch.Tensor
    n_heads: int
    n_kv: int
    head_dim: int


@dataclass(frozen=True)
class MlpWeights:
    """w_in: the linear input (GPT-2 c_fc, gated up_proj); w_gate: the gate (None ungated)."""

    w_in: torch.Tensor
    b_in: torch.Tensor | None
    w_gate: torch.Tensor | None
    w_out: torch.Tensor
    b_out: torch.Tensor | None
    act: Any


def norm_kind(module: Any) -> NormKind | None:
    import torch

    if isinstance(module, torch.nn.LayerNorm):
        return "layer"
    name = type(module).__name__
    if name.endswith("RMSNorm"):
        return "rms_offset" if name.startswith("Gemma") else "rms"
    return None


def _gpt2_parts(block: Any, config: Any) -> BlockParts:
    d = config.n_embd
    return BlockParts(
        attn_norm=(block.ln_1, "layer"),
        attn_post=None,
        mlp_norm=(block.ln_2, "layer"),
        mlp_post=None,
        # Conv1D weights are [in, out]; c_attn's output is [queries | keys | values]
        w_v=block.attn.c_attn.weight[:, 2 * d :].T,
        w_o=block.attn.c_proj.weight.T,
        n_heads=config.n_head,
        n_kv=config.n_head,
        head_dim=d // config.n_head,
    )


def _gated_parts(block: Any, config: Any) -> BlockParts:
    def norm(module: Any) -> tuple[Any, NormKind]:
        kind = norm_kind(module)
        assert kind is not None, type(module).__name__
        return module, kind

    attn = block.self_attn
    sandwich = hasattr(block, "pre_feedforward_layernorm")  # Gemma-2/3: norms after too
    return BlockParts(
        attn_norm=norm(block.input_layernorm),
        attn_post=norm(block.post_attention_layernorm) if sandwich else None,
        mlp_norm=norm(
            block.pre_feedforward_layernorm if sandwich else block.post_attention_layernorm
        ),
        mlp_post=norm(block.post_feedforward_layernorm) if sandwich else None,
        w_v=attn.v_proj.weight,
        w_o=attn.o_proj.weight,
        n_heads=config.num_attention_heads,
        n_kv=config.num_key_value_heads,
        head_dim=attn.head_dim,
    )


def family_of(model: LoadedModel) -> Family:
    """The Family of a loaded model; ModelUnavailable for an architecture trace cannot freeze."""
    hf = model.model
    model_type = hf.config.model_type
    config = hf.config
    if model_type == "gpt2":
        base = hf.transformer
        blocks = list(base.h)
        qk = [(b.attn.c_attn, 2 * config.n_embd) for b in blocks]
        final = base.ln_f
        mlps = [b.mlp for b in blocks]
        activation = config.activation_function
        gated = False
        attentions = [b.attn for b in blocks]
        parts = [_gpt2_parts(b, config) for b in blocks]
    elif model_type in GATED_TYPES:
        base = hf.model
        blocks = list(base.layers)
        # Gemma-3 / Qwen3 normalise queries and keys (q_norm, k_norm): their outputs are as
        # fixed as the projections', so they are replayed too and never recomputed
        names = ("q_proj", "k_proj", "q_norm", "k_norm")
        qk = [
            (getattr(b.self_attn, n), 0) for b in blocks for n in names if hasattr(b.self_attn, n)
        ]
        final = base.norm
        mlps = [b.mlp for b in blocks]
        activation = getattr(config, "hidden_activation", None) or config.hidden_act
        gated = True
        attentions = [b.self_attn for b in blocks]
        parts = [_gated_parts(b, config) for b in blocks]
    else:
        raise ModelUnavailable(
            f"trace does not support {model_type!r} models yet; it supports gpt2 and "
            + ", ".join(GATED_TYPES)
        )
    replayed = {id(m) for m, _ in qk}
    norms: list[tuple[Any, NormKind]] = []
    for module in [*(m for b in blocks for m in b.modules()), final]:
        kind = norm_kind(module)
        if kind is not None and id(module) not in replayed:
            norms.append((module, kind))
    return Family(
        base=base,
        blocks=blocks,
        mlps=mlps,
        norms=norms,
        final_norm=final,
        qk=qk,
        gated=gated,
        activation=str(activation),
        unembedding=hf.get_output_embeddings().weight,
        softcap=getattr(config, "final_logit_softcapping", None),
        attentions=attentions,
        parts=parts,
    )
