"""Sparse bounded-set updates: which candidates enter a fixed set of slots, and where.

Top-k lists and reservoirs are all "keep the S smallest keys per row", with int64 keys that are
unique per window: the top-k uses an order-preserving integer image of (−max activation,
window id) (`top_keys`), the reservoirs a hash with the window id in its low bits (see
`hashing`). The slots of a row are an *unordered* set: an entering candidate overwrites the
slot of an entry it pushes out (the i-th freed slot, by slot index, takes the i-th entering
candidate, by column), so only the entering entries need writing. Read-out sorts once.

`admit` decides with fixed-shape tensor operations only (a k-th value selection, cumulative
sums, a scatter and a gather), so on an accelerator it never waits for the device. How the
decision is applied depends on the device (`sparse_writes`): on the CPU the few entering entries are
found with `nonzero` and written one by one; on an accelerator, where `nonzero` would make the
host wait, every slot array is rewritten with `torch.where` (state-sized work at memory
bandwidth, which costs less than the wait).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

MAX_WINDOW_ID = 2**31 - 2  # window ids must fit the low bits of the keys


def sparse_writes(device) -> bool:
    """Whether slot updates on `device` use host-side index lists (CPU) or dense rewrites."""
    import torch

    return torch.device(device).type == "cpu"


def empty_top_key() -> int:
    """The top key of an empty slot (value −inf, window id −1)."""
    import torch

    return int(top_keys(torch.tensor([-float("inf")]), torch.tensor([-1])))


def top_keys(values: torch.Tensor, wids: torch.Tensor) -> torch.Tensor:
    """int64 keys ordering by (value descending, window id ascending); wid −1 (empty) first
    among equal values. `values` float32 (NaN not allowed), `wids` broadcastable int64."""
    import torch

    bits = (-values).contiguous().view(torch.int32).long()
    sortable = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # IEEE order as integers
    return sortable * 4294967296 + (wids + 1)


def admit(slot_key: torch.Tensor, new_key: torch.Tensor, empty: int) -> torch.Tensor:
    """int64 [R, S]: for each slot, the column of the candidate that replaces it (−1: kept).

    slot_key [R, S], new_key [R, M], int64, keys distinct per row except for the `empty`
    placeholder (of empty slots, and of masked candidates, which then never enter). The i-th
    entering candidate (by column) takes the i-th freed slot (by slot index); see `_kept`.
    """
    import torch

    r, s = slot_key.shape
    m = new_key.shape[1]
    dev = slot_key.device
    kept = _kept(slot_key, new_key, empty)
    freed = ~kept[:, :s]
    enters = kept[:, s:]
    rank_in = torch.cumsum(enters, dim=1) - 1
    col_of_rank = torch.full((r, m + 1), -1, dtype=torch.int64, device=dev)
    cols = torch.arange(m, device=dev).expand(r, m)
    col_of_rank.scatter_(1, torch.where(enters, rank_in, m), cols)
    rank_out = torch.cumsum(freed, dim=1) - 1
    taken = torch.gather(col_of_rank, 1, torch.where(freed, rank_out, m).clamp(max=m))
    return torch.where(freed, taken, -1)


def _kept(slot_key: torch.Tensor, new_key: torch.Tensor, empty: int) -> torch.Tensor:
    """bool [R, S + M]: which of the slots and candidates make the row's S smallest keys.

    Ties between empty slots are broken by slot index (what a stable sort with the slots first
    gives): empty slots are given the distinct keys `empty − S + j`, which lie between every
    real key and the placeholder, so a k-th-value threshold (a selection, cheaper than a sort)
    decides the set exactly."""
    import torch

    s = slot_key.shape[1]
    ranks = torch.arange(s, device=slot_key.device) + (empty - s)
    slot_key = torch.where(slot_key == empty, ranks, slot_key)
    key = torch.cat([slot_key, new_key], dim=1)
    threshold = torch.kthvalue(key, s, dim=1, keepdim=True).values
    return key <= threshold


def select_entries(
    slot_key: torch.Tensor, new_key: torch.Tensor, empty: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, slots, columns): candidate `new[row, column]` replaces `slot[row, slot]`, the
    same decisions as `admit` (listed in no particular order; the slots differ per entry).

    The CPU form of `admit`: only rows where some candidate beats the row's worst slot are
    decided, and the result is a list of entries (data-dependent sizes, fine on the host).
    Most such rows have exactly one candidate below the worst slot: it enters and the worst
    slot (with empty slots ranked as in `_kept`) leaves, with no selection at all. The other
    rows are decided by `_kept`; a row frees as many slots as it admits candidates and
    `nonzero` lists both in row-major order, so the i-th freed slot and the i-th entering
    candidate of the list belong to the same row and are that row's i-th of each, which is
    `admit`'s pairing without its ranks, scatter and gather.
    """
    import torch

    worst = slot_key.max(dim=1, keepdim=True).values
    below = new_key < worst
    n_below = below.sum(dim=1)
    one = torch.nonzero(n_below == 1).flatten()
    many = torch.nonzero(n_below > 1).flatten()
    s = slot_key.shape[1]
    ranks = torch.arange(s, device=slot_key.device) + (empty - s)
    k1 = slot_key.index_select(0, one)
    slots1 = torch.where(k1 == empty, ranks, k1).argmax(dim=1)
    cols1 = below.index_select(0, one).to(torch.uint8).argmax(dim=1)
    if many.numel() == 0:
        return one, slots1, cols1
    kept = _kept(slot_key.index_select(0, many), new_key.index_select(0, many), empty)
    freed = torch.nonzero(~kept[:, :s])
    enters = torch.nonzero(kept[:, s:])
    rows = torch.cat([one, many.index_select(0, freed[:, 0])])
    return rows, torch.cat([slots1, freed[:, 1]]), torch.cat([cols1, enters[:, 1]])


def take_dense(dst: torch.Tensor, taken: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """`dst` [R, S, ...] with slot (r, s) replaced by `candidates[r, taken[r, s]]` where
    taken ≥ 0: candidates [R, M, ...]. Fixed shapes only (see the module docstring)."""
    import torch

    idx = taken.clamp(min=0)
    tail = dst.shape[2:]
    mask = taken >= 0
    if tail:
        idx = idx.reshape(*idx.shape, *([1] * len(tail))).expand(*idx.shape, *tail)
        mask = mask.reshape(*mask.shape, *([1] * len(tail)))
    return torch.where(mask, torch.gather(candidates, 1, idx), dst)
