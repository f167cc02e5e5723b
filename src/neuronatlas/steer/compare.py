"""Comparing two next-token distributions per position: KL divergence and top-token changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from neuronatlas.steer.records import TokenChange

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

    p_before, p_after = before.exp(), after.exp()
    k = min(k, before.shape[-1])
    ids_before = p_before.topk(k, dim=-1).indices
    ids_after = p_after.topk(k, dim=-1).indices
    out: list[list[TokenChange]] = []
    for pos in range(before.shape[0]):
        ids = torch.unique(torch.cat([ids_before[pos], ids_after[pos]]))
        pb, pa = p_before[pos, ids], p_after[pos, ids]
        order = torch.maximum(pb, pa).argsort(descending=True)
        ids, pb, pa = ids[order].tolist(), pb[order].tolist(), pa[order].tolist()
        strings = token_strings(ids)
        out.append(
            [
                TokenChange(
                    token=s,
                    token_id=i,
                    before=_short(b),
                    after=_short(a),
                    change=_short(a - b),
                )
                for s, i, b, a in zip(strings, ids, pb, pa, strict=True)
            ]
        )
    return out
