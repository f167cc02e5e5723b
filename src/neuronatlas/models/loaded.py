"""A loaded causal LM that yields MLP neuron activations for chosen layers, and nothing more.

Activations are read with forward pre-hooks on each layer's MLP output projection (see
`architectures`). The forward pass stops at the highest requested layer: the hook of that
layer raises a private exception once it has its tensor, so later blocks, the final norm and
the unembedding never run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from neuronatlas.models.architectures import Architecture, resolve
from neuronatlas.models.tokens import TokenStrings

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class _StopForward(Exception):
    """Raised inside the last needed hook to end the forward pass early."""


@dataclass
class LoadedModel:
    """A causal LM with its tokenizer and where its neurons are.

    name: hub id, local folder, or "gemma-3-270m" for the offline default.
    revision: hub commit hash, or a content hash for the offline default, when known.
    architecture: the family name from the architecture table ("gpt2", "gemma3", ...).
    """

    name: str
    revision: str | None
    model: Any
    tokenizer: Any
    n_layers: int
    d_mlp: int
    architecture: str
    bos_token_id: int | None
    arch: Architecture
    dtype: str = "float32"
    device: str = "cpu"
    _strings: TokenStrings | None = field(default=None, repr=False)

    def hook_name(self, layer: int) -> str:
        """TransformerLens's name for the neuron activations of `layer`."""
        return f"blocks.{layer}.mlp.hook_post"

    def projection(self, layer: int):
        """The module whose input is layer `layer`'s neuron vector."""
        blocks = resolve(self.model, self.arch.blocks)
        return resolve(blocks[layer], self.arch.projection)

    def check_layers(self, layers: Iterable[int] | None) -> list[int]:
        """Sorted unique layers, all of them for None; raises ValueError when out of range."""
        wanted = sorted(set(range(self.n_layers) if layers is None else (int(x) for x in layers)))
        if not wanted:
            raise ValueError("no layers requested")
        if wanted[0] < 0 or wanted[-1] >= self.n_layers:
            raise ValueError(f"layers {wanted} out of range 0-{self.n_layers - 1}")
        return wanted

    def neuron_activations(
        self, input_ids, layers: Iterable[int] | None = None, attention_mask=None
    ) -> dict[int, torch.Tensor]:
        """float32 [batch, seq, d_mlp] per requested layer, from one truncated forward pass."""
        out: dict[int, torch.Tensor] = {}
        self.stream_activations(
            input_ids, lambda layer, acts: out.__setitem__(layer, acts), layers, attention_mask
        )
        return out

    def stream_activations(
        self,
        input_ids,
        consume: Callable[[int, torch.Tensor], None],
        layers: Iterable[int] | None = None,
        attention_mask=None,
    ) -> None:
        """Call `consume(layer, float32 [batch, seq, d_mlp])` for each requested layer, from
        inside the forward pass, in layer order; the pass stops after the highest layer.

        Consuming inside the hook keeps one layer's activations alive at a time (what a
        scrape wants); the tensor is only valid during the call.
        """
        import torch

        wanted = self.check_layers(layers)
        last = wanted[-1]
        seen: list[int] = []

        def make_hook(layer: int):
            def hook(_module, args):
                seen.append(layer)
                consume(layer, args[0].float())
                if layer == last:
                    raise _StopForward

            return hook

        handles = [self.projection(L).register_forward_pre_hook(make_hook(L)) for L in wanted]
        ids = torch.as_tensor(input_ids, device=self.device)
        if ids.dim() == 1:
            ids = ids.unsqueeze(0)
        mask = (
            None if attention_mask is None else torch.as_tensor(attention_mask, device=self.device)
        )
        try:
            with torch.inference_mode():
                self.model(input_ids=ids, attention_mask=mask, use_cache=False)
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        if seen != wanted:
            raise RuntimeError(f"hooks fired for layers {seen}, expected {wanted}")

    def token_strings(self, ids) -> list[str]:
        """Display strings per token id, each alone, leading spaces kept (" the"): for lists
        of unrelated tokens (a vocabulary, top predictions). A text's tokens: `record_strings`."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return self.strings(ids)

    def record_strings(self, ids) -> list[str]:
        """Display strings of consecutive tokens of a text, one per token, with characters
        split over several tokens shown whole (`models.tokens.whole_characters`)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return self.strings.record(ids)

    @property
    def strings(self) -> TokenStrings:
        """The memoised id → string table of this model's tokenizer."""
        if self._strings is None:
            self._strings = TokenStrings(self.tokenizer)
        return self._strings
