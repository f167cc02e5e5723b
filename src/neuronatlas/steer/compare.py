"""Comparing two next-token distributions per position: KL divergence and top-token changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from neuronatlas.steer.records import TargetChange, TokenChange

if TYPE_CHECKING:
    import torch

DIGITS = 6  # significant: a tiny KL or probability keeps its size instead of reading 0


def _short(x: float) -> float:
    return float(f"{x:.{DIGITS}g}")


def kl_per_position(before: torch.Tensor, after: torch.Tensor) -> list[float]:
    """KL(P_before ‖ P_after) in nats for each row of two [seq, vocab] log-probability
    tensors. Rounding noise can make an identical pair come out a hair below 0: clipped."""
    kl = (before.exp() * (before - after)).sum(dim=-1)
    return [_short(max(0.0, float(x))) for x in kl.tolist()]


def top_changes(
    before: torch.Tensor,
    after: torch.Tensor,
    k: int,
    token_strings: Callable[[list[int]], list[str]],
) -> list[list[TokenChange]]:
    """Per position, the union of the k most likely next tokens before and after, most likely
    (before or after) first, each with both probabilities and the change."""
    import torch

    k = min(k, before.shape[-1])
    candidates = torch.cat(
        [before.topk(k, dim=-1).indices, after.topk(k, dim=-1).indices], dim=-1
    )  # [seq, 2k], one gather and one tolist for the whole text
    p_before = before.gather(-1, candidates).exp().tolist()
    p_after = after.gather(-1, candidates).exp().tolist()
    out: list[list[TokenChange]] = []
    for ids, pb, pa in zip(candidates.tolist(), p_before, p_after, strict=True):
        rows = sorted(
            {i: (b, a) for i, b, a in zip(ids, pb, pa, strict=True)}.items(),
            key=lambda row: (-max(row[1]), row[0]),
        )
        strings = token_strings([i for i, _ in rows])
        out.append(
            [
                TokenChange(
                    token=s, token_id=i, before=_short(b), after=_short(a), change=_short(a - b)
                )
                for s, (i, (b, a)) in zip(strings, rows, strict=True)
            ]
        )
    return out


def target_change(
    before: torch.Tensor, after: torch.Tensor, token_id: int, token: str
) -> TargetChange:
    """The probability and rank of `token_id` in two [vocab] log-probability rows (the
    prediction after the last token), before and after the edit. Rank 1 is the most likely;
    ties share the better rank."""
    b, a = float(before[token_id].exp()), float(after[token_id].exp())
    return TargetChange(
        token=token,
        token_id=token_id,
        before=_short(b),
        after=_short(a),
        change=_short(a - b),
        rank_before=1 + int((before > before[token_id]).sum()),
        rank_after=1 + int((after > after[token_id]).sum()),
    )
