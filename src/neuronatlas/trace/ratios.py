"""Activation ratios rho(h) = phi(h) / h in closed form, for freezing a nonlinearity.

A neuron a = phi(h) is made linear in its pre-activation h by freezing rho at its clean value:
a = rho * h holds exactly at the clean point, for every h, with no division (so no 0/0 at h = 0).
Each supported activation is h times something simple: erf-GELU is h * Phi(h), the tanh GELUs
are h * (1 + tanh(...)) / 2, SiLU is h * sigmoid(h), ReLU is h * [h > 0].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from neuronatlas.errors import ModelUnavailable

if TYPE_CHECKING:
    import torch

_TANH_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu_python_tanh")


def _erf_gelu(h: torch.Tensor) -> torch.Tensor:
    import torch

    return 0.5 * (1.0 + torch.erf(h / math.sqrt(2.0)))


def _tanh_gelu(h: torch.Tensor) -> torch.Tensor:
    import torch

    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h**3)))


def _sigmoid(h: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.sigmoid(h)


def _step(h: torch.Tensor) -> torch.Tensor:
    return (h > 0).to(h.dtype)


def ratio_function(activation: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """rho for a config's activation name; ModelUnavailable for one without a closed form."""
    name = activation.lower()
    if name in _TANH_GELU:
        return _tanh_gelu
    if name in ("gelu", "gelu_10"):
        return _erf_gelu
    if name in ("silu", "swish"):
        return _sigmoid
    if name == "relu":
        return _step
    raise ModelUnavailable(
        f"activation {activation!r} has no closed-form ratio phi(h)/h here; "
        "trace supports gelu, gelu_new / gelu_pytorch_tanh, silu and relu"
    )
