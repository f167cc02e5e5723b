"""Weight-based neuron relations: connections between neurons and each neuron's logit effect.

OpenAI's "related neurons" (Bills et al. 2023): the connection from upstream neuron u (layer a)
to downstream neuron d (layer b > a) is  w_out[u] · (g_b ⊙ w_in[d]),  where w_out[u] is the
vector u writes to the residual stream, g_b the scale of the LayerNorm in front of layer b's MLP
and w_in[d] the vector d reads. The logit effect of a neuron is  w_out · W_U: the direct change
of every token's logit per unit of activation (no final norm, as in the definition).

Per family (`model_type`):
- GPT-2: w_in = column of `mlp.c_fc` (Conv1D), w_out = row of `mlp.c_proj`, g = `ln_2.weight`.
- Gated MLPs (Llama, Mistral, Qwen, Gemma, OLMo): w_in = row of `mlp.gate_proj` (the gate, not
  `up_proj`: an approximation, the activation is act(gate·x)·(up·x)), w_out = column of
  `mlp.down_proj`, g = the RMSNorm before the MLP (Gemma's scale is 1 + weight).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neuronatlas.errors import ModelUnavailable

_GATED = {
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "olmo",
    "olmo2",
    "gemma",
    "gemma2",
    "gemma3",
    "gemma3_text",
}


@dataclass
class NeuronWeights:
    """Per layer: w_in (d_mlp × d_model, LN scale folded in), w_out (d_mlp × d_model)."""

    w_in: list[Any]
    w_out: list[Any]
    unembed: Any  # vocab × d_model


def _blocks(model) -> list:
    for path in ("transformer.h", "model.layers", "model.language_model.layers"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return list(obj)
    raise ModelUnavailable(f"cannot find the transformer blocks of {type(model).__name__}")


def _ln_scale(block, model_type: str):
    if model_type == "gpt2":
        return block.ln_2.weight
    norm = getattr(block, "pre_feedforward_layernorm", None) or block.post_attention_layernorm
    scale = norm.weight
    return 1.0 + scale if model_type.startswith("gemma") else scale


def neuron_weights(model) -> NeuronWeights:
    """The in/out vectors of every neuron of a GPT-2 or gated-MLP causal LM, float32."""
    import torch

    config = getattr(model.config, "text_config", None) or model.config
    model_type = model.config.model_type
    with torch.no_grad():
        w_in, w_out = [], []
        for block in _blocks(model):
            g = _ln_scale(block, model_type).float()
            if model_type == "gpt2":
                win = block.mlp.c_fc.weight.float().T  # Conv1D: d_model × d_mlp
                wout = block.mlp.c_proj.weight.float()  # d_mlp × d_model
            elif model_type in _GATED or config.model_type in _GATED:
                win = block.mlp.gate_proj.weight.float()  # d_mlp × d_model
                wout = block.mlp.down_proj.weight.float().T  # d_mlp × d_model
            else:
                raise ModelUnavailable(
                    f"weight relations support GPT-2 and gated-MLP models, not {model_type!r}"
                )
            w_in.append((win * g).contiguous())
            w_out.append(wout.contiguous())
        unembed = model.get_output_embeddings().weight.float()
    return NeuronWeights(w_in, w_out, unembed)


def connections(weights: NeuronWeights, layer: int, neuron: int, k: int = 10) -> dict:
    """Strongest downstream and upstream connections of one neuron, by |weight|, with sign.

    Returns {"downstream": [(layer, neuron, weight)], "upstream": [...]}.
    """
    import torch

    n_layers = len(weights.w_in)
    with torch.no_grad():
        out_vec = weights.w_out[layer][neuron]
        in_vec = weights.w_in[layer][neuron]
        down = [(b, weights.w_in[b] @ out_vec) for b in range(layer + 1, n_layers)]
        up = [(a, weights.w_out[a] @ in_vec) for a in range(layer)]
    return {"downstream": _top(down, k), "upstream": _top(up, k)}


def _top(per_layer: list[tuple[int, Any]], k: int) -> list[tuple[int, int, float]]:
    import torch

    if not per_layer:
        return []
    layers = torch.cat([torch.full_like(v, b, dtype=torch.long) for b, v in per_layer])
    index = torch.cat([torch.arange(v.shape[0]) for _, v in per_layer])
    values = torch.cat([v for _, v in per_layer])
    top = torch.topk(values.abs(), min(k, values.shape[0])).indices
    return [(int(layers[i]), int(index[i]), float(values[i])) for i in top]


def logit_effect(
    weights: NeuronWeights, layer: int, neuron: int, k: int = 10
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(promoted, suppressed): the k token ids whose logits w_out · W_U raises / lowers most."""
    import torch

    with torch.no_grad():
        effect = weights.unembed @ weights.w_out[layer][neuron]
        k = min(k, effect.shape[0])
        hi = torch.topk(effect, k)
        lo = torch.topk(-effect, k)
    return (
        [(int(i), float(v)) for v, i in zip(hi.values, hi.indices, strict=False)],
        [(int(i), float(-v)) for v, i in zip(lo.values, lo.indices, strict=False)],
    )
