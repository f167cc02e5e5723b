"""Where each model family keeps its MLP neurons: one table row per architecture.

A neuron's activation is the input of the MLP's output projection: for GPT-2 that is the output
of the activation function (the input of `c_proj`), for gated MLPs (Gemma, Llama, Mistral, Qwen)
it is `act(gate_proj x) * up_proj x` (the input of `down_proj`), for GPT-NeoX/Pythia the input
of `dense_4h_to_h`. This is what TransformerLens calls `blocks.{L}.mlp.hook_post`. A forward
pre-hook on the projection reads it without touching the model's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neuronatlas.errors import ModelUnavailable


@dataclass(frozen=True)
class Architecture:
    """How to find the neurons of one model family.

    blocks: dotted path from the *CausalLM* object to the list of transformer blocks.
    projection: dotted path inside a block to the module whose *input* is the neuron vector.
    d_mlp: config attributes to try, in order, for the number of neurons per layer.
    """

    name: str
    blocks: str
    projection: str
    d_mlp: tuple[str, ...] = ("intermediate_size",)


_GATED = "mlp.down_proj"  # gated MLPs: act(gate_proj x) * up_proj x feeds down_proj

# model_type (from config.json) → architecture. Add a family by adding a row.
ARCHITECTURES: dict[str, Architecture] = {
    "gpt2": Architecture("gpt2", "transformer.h", "mlp.c_proj", ("n_inner",)),
    "gpt_neo": Architecture("gpt_neo", "transformer.h", "mlp.c_proj", ("intermediate_size",)),
    "gptj": Architecture("gptj", "transformer.h", "mlp.fc_out", ("n_inner",)),
    "gpt_neox": Architecture("gpt_neox", "gpt_neox.layers", "mlp.dense_4h_to_h"),
    "opt": Architecture("opt", "model.decoder.layers", "fc2", ("ffn_dim",)),
    "llama": Architecture("llama", "model.layers", _GATED),
    "mistral": Architecture("mistral", "model.layers", _GATED),
    "qwen2": Architecture("qwen2", "model.layers", _GATED),
    "qwen3": Architecture("qwen3", "model.layers", _GATED),
    "gemma": Architecture("gemma", "model.layers", _GATED),
    "gemma2": Architecture("gemma2", "model.layers", _GATED),
    "gemma3_text": Architecture("gemma3", "model.layers", _GATED),
    "gemma3": Architecture("gemma3", "model.language_model.layers", _GATED),
    "olmo": Architecture("olmo", "model.layers", _GATED),
    "olmo2": Architecture("olmo2", "model.layers", _GATED),
    "phi3": Architecture("phi3", "model.layers", "mlp.down_proj"),
}


def architecture_for(model_type: str) -> Architecture:
    """The table row for a config's `model_type`; raises with the supported list otherwise."""
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ModelUnavailable(
            f"model type {model_type!r} has no neuron hook point yet; supported: {known}"
        ) from None


def resolve(root: Any, dotted: str) -> Any:
    """Follow a dotted attribute path (`model.layers`) from `root`."""
    obj = root
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def d_mlp_of(arch: Architecture, config: object) -> int:
    """Neurons per layer from the config (GPT-2's `n_inner=None` means 4 × n_embd)."""
    for attr in arch.d_mlp:
        value = getattr(config, attr, None)
        if value:
            return int(value)
    hidden = getattr(config, "n_embd", None) or getattr(config, "hidden_size", None)
    if hidden:
        return 4 * int(hidden)
    raise ModelUnavailable(f"cannot tell the MLP width of a {arch.name} model from its config")
