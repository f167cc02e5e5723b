"""`steer`: run a model on a text with and without a neuron (or a group) changed, and compare.

Two forward passes over the same tokens (unedited, then with the edits at every position)
give the next-token distribution after each token; their KL divergence and top tokens say
where and how the neuron matters. Each pass then continues greedily from its own cache, so
the two continuations show what the edit does to generated text. The caller holds whatever
lock guards the shared model: the edit is a hook on it while the run lasts.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import TYPE_CHECKING

from neuronatlas.errors import BadInput
from neuronatlas.steer.compare import kl_per_position, target_change, top_changes
from neuronatlas.steer.edit import applied, make_edits, recorded
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


def encode_target(model: LoadedModel, target: str) -> int:
    """The id of `target` if the tokenizer makes it exactly one token; BadInput otherwise,
    naming the pieces (a leading space is often part of the token: " Paris", not "Paris")."""
    if not target:
        raise BadInput("target is empty: give the one next token to check, e.g. ' Paris'")
    ids = [int(i) for i in model.tokenizer(target, add_special_tokens=False)["input_ids"]]
    if len(ids) != 1:
        pieces = ", ".join(repr(t) for t in model.token_strings(ids))
        raise BadInput(
            f"target {target!r} is {len(ids)} tokens ({pieces}), not one: give a single token "
            "(mind a leading space)"
        )
    return ids[0]


def _check_counts(k: int, new_tokens: int) -> None:
    if not 1 <= k <= MAX_K:
        raise BadInput(f"k={k}: top tokens per position must be 1-{MAX_K}")
    if not 0 <= new_tokens <= MAX_NEW_TOKENS:
        raise BadInput(f"new_tokens={new_tokens}: a continuation is 0-{MAX_NEW_TOKENS} tokens")


def _stop_ids(model: LoadedModel) -> set[int]:
    """The end-of-text ids that end a continuation (a config may list several)."""
    eos = model.model.generation_config.eos_token_id
    if eos is None:
        eos = model.tokenizer.eos_token_id
    if eos is None:
        return set()
    return {int(e) for e in (eos if isinstance(eos, list) else [eos])}


def _cache_name(model: LoadedModel) -> str:
    """The forward argument and output field of the key/value cache: transformers 5 renamed
    `past_key_values` to `cache` (the old name warns, then goes away)."""
    params = inspect.signature(model.model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _run(
    model: LoadedModel, ids: list[int], skip: int, new_tokens: int
) -> tuple[torch.Tensor, Continuation]:
    """float32 [len(ids) - skip, vocab] next-token log-probabilities after each token, and
    the greedy continuation of `ids` (ending early at end-of-text).

    The continuation starts from this pass's own key/value cache, so the text is run once per
    side, not once for the comparison and again by `generate`: that prefill is most of the
    cost. Greedy decoding from a cache is argmax and one token per step, so it is written
    out here rather than configured through `generate`.
    """
    import torch

    stop, cache = _stop_ids(model), _cache_name(model)
    with torch.inference_mode():
        out = model.model(input_ids=torch.tensor([ids], device=model.device), use_cache=True)
        log_probs = out.logits[0, skip:].float().log_softmax(dim=-1)
        new: list[int] = []
        while len(new) < new_tokens:
            new.append(int(out.logits[0, -1].argmax()))
            if new[-1] in stop or len(new) == new_tokens:
                break
            step = torch.tensor([[new[-1]]], device=model.device)
            out = model.model(input_ids=step, use_cache=True, **{cache: out[cache]})
    text = model.tokenizer.decode(new, skip_special_tokens=False)
    return log_probs, Continuation(text=text, tokens=model.token_strings(new))


def steer(
    model: LoadedModel,
    text: str,
    neurons: str | Iterable[str],
    mode: str,
    value: float | None = None,
    *,
    prepend_bos: bool = False,
    k: int = DEFAULT_K,
    new_tokens: int = DEFAULT_NEW_TOKENS,
    target: str | None = None,
) -> SteerResult:
    """What `mode` (ablate | clamp | scale, see `steer.edit`) applied at every position to
    `neurons` does to `model`'s predictions on `text` and to its greedy continuation.

    neurons: one id, several ids separated by commas, or a list of ids (at most
    `steer.edit.MAX_NEURONS`; a repeated neuron counts once): every one gets the same edit,
    all in the same pass. prepend_bos: put BOS first, as the atlas's records were taken (its
    activations and predictions are not reported). target: one token whose probability as
    the next token after the text is reported before and after. Raises BadNeuronId /
    BadInput on bad input.
    """
    edits = make_edits(model, neurons, mode, value)
    _check_counts(k, new_tokens)
    ids, skip = encode_text(model, text, prepend_bos)
    target_id = None if target is None else encode_target(model, target)
    places = [(e.layer, e.neuron) for e in edits]
    seen: dict = {}  # layer → the unedited activations of its group neurons on the prompt
    with recorded(model, places, seen):
        before, continuation_before = _run(model, ids, skip, new_tokens)
    with applied(model, edits):
        after, continuation_after = _run(model, ids, skip, new_tokens)
    group = _activations(places, seen, skip)
    return SteerResult(
        neuron=edits[0].id,
        mode=edits[0].mode,
        value=edits[0].value,
        model=model.name,
        tokens=model.token_strings(ids[skip:]),
        activations=group[0],
        kl=kl_per_position(before, after),
        top=top_changes(before, after, k, model.token_strings),
        continuation=Continuations(before=continuation_before, after=continuation_after),
        neurons=[e.id for e in edits],
        group_activations=group,
        target=None
        if target_id is None
        else target_change(before[-1], after[-1], target_id, model.token_strings([target_id])[0]),
    )


def _activations(
    places: list[tuple[int, int]], seen: dict[int, torch.Tensor], skip: int
) -> list[list[float]]:
    """Per neuron of the group (in its order), its rounded activation per reported token,
    from the per-layer [1, seq, n] recordings of `recorded`."""
    column: dict[int, int] = {}
    out = []
    for layer, _ in places:
        j = column.get(layer, 0)
        column[layer] = j + 1
        out.append([round(float(a), 5) + 0.0 for a in seen[layer][0, skip:, j].tolist()])
    return out
