"""Sparse bounded-set updates: which candidates enter a fixed set of slots, and where.

Top-k lists and reservoirs are all "keep the S smallest keys per row", with int64 keys that are
unique per window: the top-k uses an order-preserving integer image of (−max activation,
window id) (`top_keys`), the reservoirs a hash with the window id in its low bits (see
`hashing`). The slots of a row are an *unordered* set: an entering candidate overwrites the
slot of an entry it pushes out, so per batch only the entering entries (few, once the sets
fill) are written, not whole [neurons, S, context] arrays. Read-out sorts once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

MAX_WINDOW_ID = 2**31 - 2  # window ids must fit the low bits of the keys


def top_keys(values: torch.Tensor, wids: torch.Tensor) -> torch.Tensor:
    """int64 keys ordering by (value descending, window id ascending); wid −1 (empty) first
    among equal values. `values` float32 (NaN not allowed), `wids` broadcastable int64."""
    import torch

    bits = (-values).contiguous().view(torch.int32).long()
    sortable = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # IEEE order as integers
    return sortable * 4294967296 + (wids + 1)


def select_entries(
    slot_key: torch.Tensor, new_key: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, slots, columns): candidate `new[row, column]` replaces `slot[row, slot]`.

    slot_key [R, S], new_key [R, M], int64, keys distinct per row except for empty/masked
    placeholders (equal keys keep the slot: slots come first in a stable sort). Only rows where
    some candidate beats the row's worst slot are sorted.
    """
    import torch

    n_slots = slot_key.shape[1]
    worst = slot_key.max(dim=1, keepdim=True).values
    rows = torch.nonzero((new_key < worst).any(dim=1)).flatten()
    if rows.numel() == 0:
        empty = rows.new_empty(0)
        return empty, empty, empty
    key = torch.cat([slot_key[rows], new_key[rows]], dim=1)
    order = torch.argsort(key, dim=1, stable=True)
    kept = torch.zeros_like(key, dtype=torch.bool)
    kept.scatter_(1, order[:, :n_slots], True)
    out_r, out_s = torch.nonzero(~kept[:, :n_slots], as_tuple=True)
    in_r, in_c = torch.nonzero(kept[:, n_slots:], as_tuple=True)
    # per row, as many enter as leave; nonzero is row-major, so the pairs line up
    if not torch.equal(out_r, in_r):
        raise RuntimeError("a window id occurs twice in one row: are the shards disjoint?")
    return rows[in_r], out_s, in_c
