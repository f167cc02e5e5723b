"""`steer`: run a model on a text with and without one neuron changed, and compare.

Two forward passes over the same tokens (unedited, then with the edit at every position)
give the next-token distribution after each token; their KL divergence and top tokens say
where and how the neuron matters. Two greedy continuations (without and with the edit) show
what it does to generated text. The caller holds whatever lock guards the shared model: the
edit is a hook on it while the run lasts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuronatlas.errors import BadInput
from neuronatlas.ids import parse_id
from neuronatlas.steer.compare import kl_per_position, top_changes
from neuronatlas.steer.edit import applied, make_edit, recorded
from neuronatlas.steer.records import Continuation, Continuations, SteerResult

if TYPE_CHECKING:
    import torch

    from neuronatlas.models.loaded import LoadedModel

MAX_TEXT_CHARS = 1_000
# Each pass keeps [tokens × vocabulary] log-probabilities: 128 tokens of Gemma-3's 262,144-
# token vocabulary are 134 MB in float32, and a run holds two of them.
MAX_TOKENS = 128
MAX_K = 20
MAX_NEW_TOKENS = 64
DEFAULT_K = 5
DEFAULT_NEW_TOKENS = 20


def encode_text(model: LoadedModel, text: str, prepend_bos: bool) -> tuple[list[int], int]:
    """Token ids to run (BOS first when `prepend_bos`, as the atlas's records were taken) and
    how many leading ids are not the text's; BadInput for an empty or too long text."""
    if not text.strip():
        raise BadInput("text is empty: type some text to run through the model")
    if len(text) > MAX_TEXT_CHARS:
        raise BadInput(f"text is {len(text)} characters; steering takes at most {MAX_TEXT_CHARS}")
    ids = [int(i) for i in model.tokenizer(text, add_special_tokens=False)["input_ids"]]
    if not ids:
        raise BadInput("the text has no tokens")
    if len(ids) > MAX_TOKENS:
        raise BadInput(
            f"text is {len(ids)} tokens; steering takes at most {MAX_TOKENS}: shorten it"
        )
    if prepend_bos and model.bos_token_id is not None:
        return [model.bos_token_id, *ids], 1
    return ids, 0


def _check_counts(k: int, new_tokens: int) -> None:
    if not 1 <= k <= MAX_K:
        raise BadInput(f"k={k}: top tokens per position must be 1-{MAX_K}")
    if not 0 <= new_tokens <= MAX_NEW_TOKENS:
        raise BadInput(f"new_tokens={new_tokens}: a continuation is 0-{MAX_NEW_TOKENS} tokens")


def _log_probs(model: LoadedModel, ids: list[int], skip: int) -> torch.Tensor:
    """float32 [len(ids) - skip, vocab] next-token log-probabilities after each token."""
    import torch

    batch = torch.tensor([ids], device=model.device)
    with torch.inference_mode():
        logits = model.model(input_ids=batch, use_cache=False).logits[0, skip:]
        return logits.float().log_softmax(dim=-1)


def _greedy(model: LoadedModel, ids: list[int], new_tokens: int) -> Continuation:
    """The greedy continuation of `ids` (stops early at the end-of-text token)."""
    if new_tokens == 0:
        return Continuation(text="", tokens=[])
    import torch
    from transformers import GenerationConfig

    own = model.model.generation_config
    eos = own.eos_token_id if own.eos_token_id is not None else model.tokenizer.eos_token_id
    pad = model.tokenizer.pad_token_id
    config = GenerationConfig(
        max_new_tokens=new_tokens,
        do_sample=False,
        num_beams=1,
        eos_token_id=eos,
        pad_token_id=pad if pad is not None else (eos[0] if isinstance(eos, list) else eos),
    )
    batch = torch.tensor([ids], device=model.device)
    with torch.inference_mode():
        out = model.model.generate(
            input_ids=batch, attention_mask=torch.ones_like(batch), generation_config=config
        )
    new = [int(i) for i in out[0, len(ids) :].tolist()]
    text = model.tokenizer.decode(new, skip_special_tokens=False)
    return Continuation(text=text, tokens=model.token_strings(new))


def steer(
    model: LoadedModel,
    text: str,
    neuron_id: str,
    mode: str,
    value: float | None = None,
    *,
    prepend_bos: bool = False,
    k: int = DEFAULT_K,
    new_tokens: int = DEFAULT_NEW_TOKENS,
) -> SteerResult:
    """What `mode` (ablate | clamp | scale, see `steer.edit`) applied to neuron `neuron_id` at
    every position does to `model`'s predictions on `text` and to its greedy continuation.

    prepend_bos: put BOS first, as the atlas's records were taken (its activations and
    predictions are not reported). Raises BadNeuronId / BadInput on bad input.
    """
    layer, neuron = parse_id(neuron_id)
    edit = make_edit(model, layer, neuron, mode, value)
    _check_counts(k, new_tokens)
    ids, skip = encode_text(model, text, prepend_bos)
    seen: list = []
    with recorded(model, layer, neuron, seen):
        before = _log_probs(model, ids, skip)
    with applied(model, edit):
        after = _log_probs(model, ids, skip)
    continuation_before = _greedy(model, ids, new_tokens)
    with applied(model, edit):
        continuation_after = _greedy(model, ids, new_tokens)
    return SteerResult(
        neuron=edit.id,
        mode=edit.mode,
        value=edit.value,
        model=model.name,
        tokens=model.token_strings(ids[skip:]),
        activations=[round(float(a), 5) + 0.0 for a in seen[0][0, skip:].tolist()],
        kl=kl_per_position(before, after),
        top=top_changes(before, after, k, model.token_strings),
        continuation=Continuations(before=continuation_before, after=continuation_after),
    )
