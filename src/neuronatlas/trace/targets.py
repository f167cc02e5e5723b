"""Which logits a trace explains: the user's token, or the likeliest next tokens.

Logits are attributed demeaned (the token's logit minus the mean over the vocabulary, read
with W_U[v] - mean(W_U) at the final norm's output) and before any soft-capping, so the read
is linear. Without a chosen token, the top predictions are taken until their probabilities
sum to `desired_prob` (at most `max_logits`), each weighted by its probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from neuronatlas.errors import BadInput

if TYPE_CHECKING:
    import torch

    from neuronatlas.models.loaded import LoadedModel
    from neuronatlas.trace.linearised import Linearised

DEFAULT_DESIRED_PROB = 0.95
DEFAULT_MAX_LOGITS = 10


@dataclass(frozen=True)
class LogitTargets:
    """token ids, their probabilities at the last position, weights (sum 1), read vectors
    [n, d], and which one is the target (the user's token, else the likeliest)."""

    token_ids: list[int]
    probs: list[float]
    weights: list[float]
    reads: torch.Tensor
    primary: int


def token_id(model: LoadedModel, token: str) -> int:
    """The single token id of `token`; BadInput when it is not exactly one token."""
    if not token:
        raise BadInput("--target is empty: give the next token to explain, e.g. ' Paris'")
    ids = model.tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        shown = model.token_strings(ids)
        raise BadInput(
            f"target {token!r} is {len(ids)} tokens {shown}, not one: give a single token "
            "(mind the leading space, e.g. ' Paris')"
        )
    return int(ids[0])


def choose(
    lin: Linearised,
    target: int | None,
    desired_prob: float = DEFAULT_DESIRED_PROB,
    max_logits: int = DEFAULT_MAX_LOGITS,
) -> LogitTargets:
    """The logit targets for the recorded prompt (see the module docstring)."""
    import torch

    fam = lin.family
    w_u = fam.unembedding
    final = lin.clean.final[0, -1]
    with torch.no_grad():
        logits = final @ w_u.T
        if fam.softcap:
            logits = torch.tanh(logits / fam.softcap) * fam.softcap
        probs = logits.double().softmax(-1)
        mean_row = w_u.mean(0)
    if target is not None:
        if not 0 <= target < w_u.shape[0]:
            raise BadInput(f"target token id {target} is outside the vocabulary")
        ids = [target]
        weights = [1.0]
    else:
        top_p, top_i = probs.topk(max_logits)
        cum = top_p.cumsum(0)
        n = int((cum < desired_prob).sum()) + 1
        n = min(n, max_logits)
        ids = [int(i) for i in top_i[:n]]
        kept = top_p[:n]
        weights = (kept / kept.sum()).tolist()
    reads = torch.stack([w_u[i] - mean_row for i in ids]).detach()
    return LogitTargets(
        token_ids=ids,
        probs=[float(probs[i]) for i in ids],
        weights=[float(x) for x in weights],
        reads=reads,
        primary=0,
    )
