"""Causal language models as neuron readers.

`load_model(spec)` returns a `LoadedModel`: the model, its tokenizer, the shape of its MLP
neurons, and `neuron_activations(input_ids, layers)` which runs only as far as the highest
requested layer. Hook points per architecture are one table (`architectures.ARCHITECTURES`).
`spec="default"` is the offline Gemma-3-270M (see `default`).
"""

from neuronatlas.models.architectures import ARCHITECTURES, Architecture, architecture_for
from neuronatlas.models.load import DTYPES, load_header, load_model, resolve_device, wrap_model
from neuronatlas.models.loaded import LoadedModel

__all__ = [
    "ARCHITECTURES",
    "DTYPES",
    "Architecture",
    "LoadedModel",
    "architecture_for",
    "load_header",
    "load_model",
    "resolve_device",
    "wrap_model",
]
