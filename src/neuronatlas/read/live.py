"""Live activations: run the atlas's model on new text, for the API, the CLI and notebooks.

The model is optional. It is loaded on first use (never at server start, so the explorer
starts fast and works without it), once, under a lock; a failed load is remembered and
reported as ModelUnavailable with the reason instead of retried on every request.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuronatlas.errors import BadInput, ModelUnavailable
from neuronatlas.ids import format_id, parse_id
from neuronatlas.read.views import LiveNeuron, LiveNeuronRef, LiveStatus, LiveStrongest

if TYPE_CHECKING:
    from collections.abc import Callable

    from neuronatlas.steer import SteerResult
    from neuronatlas.trace import TraceGraph

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 2_000
MAX_TOKENS = 512


def default_spec(meta: dict[str, str]) -> str | None:
    """The model an atlas was built from: the spec the scrape loaded (`model_path`: "default",
    a hub id or a folder) when usable here, else the model's name (`model_id`)."""
    path = meta.get("model_path")
    if path and not (path.startswith(("/", ".", "~")) and not Path(path).expanduser().exists()):
        return path
    return meta.get("model_id")


class LiveModel:
    """The model behind live features, loaded lazily from a spec (hub id or local folder).

    Any route or library call that runs the model (live activations, logit effects, a
    steering run) gets it from `get()` and holds `run_lock` around its forward passes."""

    def __init__(
        self, spec: str | None, meta: dict[str, str] | None = None, device: str = "auto"
    ) -> None:
        self.spec = spec
        self.device = device
        self.meta = meta or {}
        self._prepend_bos: bool | None = None
        self._model: Any = None
        self._error: str | None = (
            None if spec else "this atlas names no model (its meta has no model_path or model_id)"
        )
        self._load_lock = threading.Lock()
        self.run_lock = threading.Lock()  # one forward pass at a time: CPU-bound anyway

    def status(self) -> LiveStatus:
        return LiveStatus(spec=self.spec, loaded=self._model is not None, error=self._error)

    def get(self) -> Any:
        """The LoadedModel; ModelUnavailable (with why) when it cannot be loaded here."""
        if self._model is not None:
            return self._model
        with self._load_lock:
            if self._model is None and self._error is None and self.spec is not None:
                try:
                    from neuronatlas.models import load_model
                except ImportError as exc:
                    self._error = f"the model stage is not installed ({exc})"
                else:
                    try:
                        self._model = load_model(self.spec or "default", device=self.device)
                    except (ModelUnavailable, BadInput) as exc:
                        log.warning("%s", exc)
                        self._error = str(exc).rstrip(".")
                    except (OSError, ValueError, RuntimeError, ImportError, KeyError) as exc:
                        # e.g. an unsupported architecture or a corrupt checkpoint: reported
                        # to the user on every live request, never swallowed
                        log.warning("cannot load model %s: %s", self.spec, exc)
                        self._error = f"cannot load model {self.spec!r}: {exc}".rstrip(".")
        if self._model is None:
            raise ModelUnavailable(
                f"live activations are unavailable: {self._error}. Pass --model SPEC (a hub id "
                "or a local model folder) to serve, activate, steer or similar, or "
                "Atlas(path, model=SPEC) in Python."
            )
        return self._model

    def _bos_rule(self, model: Any) -> bool:
        """Whether to put BOS first, as the atlas's records were taken: the rule the N2G stage
        reads from the atlas meta (scrape's bos_policy), else the tokenizer's own habit."""
        if self._prepend_bos is None:
            try:
                from neuronatlas.n2g.run import prepend_bos
            except ImportError:
                ids = model.tokenizer("a")["input_ids"]
                self._prepend_bos = bool(ids) and ids[0] == model.bos_token_id
            else:
                self._prepend_bos = prepend_bos(self.meta, model.tokenizer)
        return self._prepend_bos and model.bos_token_id is not None

    def _tokenize(self, model: Any, text: str) -> tuple[list[int], int, bool]:
        """Token ids as the atlas's records saw them, how many leading BOS to hide (the
        activations on BOS say nothing about the text), and whether MAX_TOKENS cut the text."""
        if not text.strip():
            raise BadInput("text is empty: type some text to run through the model")
        if len(text) > MAX_TEXT_CHARS:
            raise BadInput(f"text is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
        ids = list(model.tokenizer(text, add_special_tokens=False)["input_ids"])
        truncated = len(ids) > MAX_TOKENS
        ids = ids[:MAX_TOKENS]
        if not ids:
            raise BadInput("the text has no tokens")
        if self._bos_rule(model):
            return [model.bos_token_id, *ids], 1, truncated
        return ids, 0, truncated

    def neuron(self, text: str, neuron_id: str) -> LiveNeuron:
        """One neuron's activation on every token of `text`."""
        layer, neuron = parse_id(neuron_id)
        model = self.get()
        if layer >= model.n_layers or neuron >= model.d_mlp:
            raise BadInput(
                f"{format_id(layer, neuron)} is outside the model "
                f"({model.n_layers} layers × {model.d_mlp} neurons)"
            )
        ids, hidden, truncated = self._tokenize(model, text)
        with self.run_lock:
            acts = model.neuron_activations(ids, layers=[layer])[layer][0, :, neuron]
        return LiveNeuron(
            text=text,
            neuron=format_id(layer, neuron),
            tokens=list(model.record_strings(ids[hidden:])),
            activations=[_finite(a) for a in acts[hidden:].tolist()],
            truncated=truncated,
            n2g_prediction=None,
        )

    def strongest(self, text: str, k: int) -> LiveStrongest:
        """For every token of `text`, the k neurons (over all layers) that fire most on it."""
        import torch

        model = self.get()
        ids, hidden, truncated = self._tokenize(model, text)
        with self.run_lock:
            by_layer = model.neuron_activations(ids)
        values, where = [], []
        for layer, acts in sorted(by_layer.items()):
            v, i = acts[0, hidden:].topk(min(k, acts.shape[-1]), dim=-1)
            values.append(v)
            where.append(i + layer * model.d_mlp)
        joined = torch.cat(values, dim=-1)
        v, pick = joined.topk(min(k, joined.shape[-1]), dim=-1)
        flat = torch.cat(where, dim=-1).gather(-1, pick)
        per_token = [
            [
                LiveNeuronRef(id=format_id(*divmod(n, model.d_mlp)), activation=round(a, 5))
                for a, n in zip(vals, idx, strict=True)
            ]
            for vals, idx in zip(v.tolist(), flat.tolist(), strict=True)
        ]
        return LiveStrongest(
            text=text,
            tokens=list(model.record_strings(ids[hidden:])),
            top=per_token,
            truncated=truncated,
        )

    def steer(
        self,
        text: str,
        neurons: str | Sequence[str],
        mode: str,
        value: float | None = None,
        *,
        k: int,
        new_tokens: int,
        target: str | None = None,
    ) -> SteerResult:
        """`neuronatlas.steer.steer` on this model (one neuron or a group), BOS placed as the
        atlas's records were taken, under the run lock (the edits are hooks on the shared
        model while it runs)."""
        from neuronatlas.steer import steer

        model = self.get()
        with self.run_lock:
            bos = self._bos_rule(model)
            return steer(
                model,
                text,
                neurons,
                mode,
                value,
                prepend_bos=bos,
                k=k,
                new_tokens=new_tokens,
                target=target,
            )

    def trace(
        self,
        text: str,
        *,
        target: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        **options: Any,
    ) -> TraceGraph:
        """`neuronatlas.trace.trace` on this model (BOS placed as the atlas's records were
        taken) under the run lock: the trace hooks the shared model while it runs."""
        from neuronatlas.trace import trace

        model = self.get()
        with self.run_lock:
            bos = self._bos_rule(model)
            return trace(model, text, target=target, prepend_bos=bos, progress=progress, **options)


def _finite(value: float) -> float | None:
    """An activation for JSON: rounded, None for NaN or infinity (JSON has neither)."""
    return round(value, 5) if math.isfinite(value) else None
