"""Merging shard states in a tree as they arrive, in bounded memory.

`TreeMerger` is a binary counter over states: a new state enters at height 0, and two states of
equal height merge into one of the next height. At most ⌈log2(shards)⌉ + 1 states are held at a
time, every state takes part in O(log n) merges, and merges happen while other shards are still
being computed (they overlap the remote work instead of following it). `scrape.merge` merges
layer by layer, and because the state is a monoid whose merge does not depend on the order, the
result equals a left fold over the shards in window order (the local runner's result).
"""

from __future__ import annotations

import time

from neuronatlas.scrape import ScrapeState, merge


class TreeMerger:
    """Feed states with `add`, read the merged state with `result`; times every merge."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, ScrapeState]] = []
        self.merges = 0
        self.merge_seconds = 0.0
        self.added = 0

    def _merge(self, a: ScrapeState, b: ScrapeState) -> ScrapeState:
        started = time.perf_counter()
        out = merge(a, b)
        self.merge_seconds += time.perf_counter() - started
        self.merges += 1
        return out

    def add(self, state: ScrapeState) -> None:
        """Take one shard's state (the merger may merge it into others right away)."""
        self.added += 1
        height = 0
        while self._stack and self._stack[-1][0] == height:
            _, other = self._stack.pop()
            state = self._merge(other, state)
            height += 1
        self._stack.append((height, state))

    @property
    def held(self) -> int:
        """States currently in memory."""
        return len(self._stack)

    def result(self) -> ScrapeState:
        """The merge of every state added; ValueError if none was."""
        if not self._stack:
            raise ValueError("no state to merge")
        _, state = self._stack.pop()
        while self._stack:
            _, other = self._stack.pop()
            state = self._merge(other, state)
        self._stack.append((0, state))
        return state
