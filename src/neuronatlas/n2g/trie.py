"""The N2G trie: token patterns that end at an activating token, merged into one tree.

A *line* is read backwards from the activating token: `[(token, importance), ...]` where the
first item is the activating token, each later item the token one step further left (or the
one-token WILDCARD), and the line's END carries the normalised activation (activation × scale /
a_max) of the activating token. Lines are merged: the root's children are activating tokens,
deeper nodes are context further to the left.

Differences from the reference (docs/N2G.md): END activations are aggregated (max, sum and
count are all kept, so either max or mean can be read) instead of keeping the first inserted
line; each node keeps its importance (sum and count) and the augmentation evidence (substitutes
tried / failed); the trie serialises to JSON and back exactly.

Keys are normalised by mode: "space" (our default) drops surrounding whitespace (" cat" ≡
"cat"); "space_title" (the reference) also lower-cases a title-case word (" The" → "the", but
"THE" and "iPhone" stay); "none" keeps tokens exact. A token that is only whitespace ("\\n",
" ") is always kept as it is, since it carries meaning. We do not merge title case by default
because it makes a " the" detector fire on every sentence-initial "The" (tests/test_n2g_pipeline).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

WILDCARD = "\x00*"
"""Key of the one-token wildcard; no vocabulary token displays as NUL followed by '*'."""

FORMAT_VERSION = 1


NORMALIZE_MODES = ("none", "space", "space_title")


@lru_cache(maxsize=1 << 18)
def normalize_token(token: str, mode: str = "space") -> str:
    """The trie key of a token under a normalisation mode (see module docstring)."""
    if mode == "none":
        return token
    s = token.strip()
    if not s:
        return token
    if mode == "space_title":
        if s[0].isupper() and len(s) > 1 and s[1:] == s[1:].lower() and s[1:] != s[1:].upper():
            return s[0].lower() + s[1:]
        if len(s) == 1 and s.isupper():
            return s.lower()
    return s


class Trie:
    """Flat arrays indexed by node id; node 0 is the root. Built by `insert`, read by predict."""

    def __init__(self, normalize: str = "space", aggregate: str = "mean"):
        if normalize not in NORMALIZE_MODES:
            raise ValueError(f"normalize={normalize!r}: choose from {NORMALIZE_MODES}")
        self.normalize = normalize
        self.aggregate = aggregate
        self.children: list[dict[str, int]] = [{}]
        self.key: list[str] = [""]
        self.parent: list[int] = [-1]
        self.depth: list[int] = [0]
        self.imp_sum: list[float] = [0.0]
        self.imp_n: list[int] = [0]
        self.end_max: list[float] = [0.0]
        self.end_sum: list[float] = [0.0]
        self.end_n: list[int] = [0]
        self.subs_tried: list[int] = [0]
        self.subs_failed: list[int] = [0]
        self.calibrated: dict[int, float] = {}
        """END values re-measured on train text (n2g.calibrate); they replace the aggregate."""

    # -- building ---------------------------------------------------------------------------

    def key_of(self, token: str) -> str:
        if token == WILDCARD:
            return token
        return normalize_token(token, self.normalize)

    def _child(self, node: int, key: str) -> int:
        found = self.children[node].get(key)
        if found is not None:
            return found
        new = len(self.key)
        self.children[node][key] = new
        self.children.append({})
        self.key.append(key)
        self.parent.append(node)
        self.depth.append(self.depth[node] + 1)
        for arr in (self.imp_sum, self.end_max, self.end_sum):
            arr.append(0.0)
        for counts in (self.imp_n, self.end_n, self.subs_tried, self.subs_failed):
            counts.append(0)
        return new

    def insert(
        self,
        line: Sequence[tuple[str, float]],
        activation: float,
        evidence: Sequence[tuple[int, int]] | None = None,
    ) -> int:
        """Add one line (activating token first, then context leftwards); return its END node.

        evidence: per line item, (substitutes tried, substitutes that failed) for that token.
        """
        if not line:
            raise ValueError("a trie line needs at least the activating token")
        node = 0
        for i, (token, importance) in enumerate(line):
            node = self._child(node, self.key_of(token))
            if token != WILDCARD:
                self.imp_sum[node] += float(importance)
                self.imp_n[node] += 1
            if evidence is not None:
                tried, failed = evidence[i]
                self.subs_tried[node] += tried
                self.subs_failed[node] += failed
        a = float(activation)
        self.end_max[node] = max(self.end_max[node], a) if self.end_n[node] else a
        self.end_sum[node] += a
        self.end_n[node] += 1
        return node

    # -- reading ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.key) - 1

    def end_value(self, node: int) -> float:
        """The aggregated END activation of a node (0 when no line ends there)."""
        n = self.end_n[node]
        if not n:
            return 0.0
        if node in self.calibrated:
            return self.calibrated[node]
        return self.end_max[node] if self.aggregate == "max" else self.end_sum[node] / n

    def importance(self, node: int) -> float:
        n = self.imp_n[node]
        return self.imp_sum[node] / n if n else 0.0

    def lines(self) -> Iterable[tuple[list[str], float, int]]:
        """(keys activating-token-first, END value, count) for every node where a line ends."""
        for node in range(1, len(self.key)):
            if self.end_n[node]:
                yield self.path(node), self.end_value(node), self.end_n[node]

    def path(self, node: int) -> list[str]:
        keys = []
        while node > 0:
            keys.append(self.key[node])
            node = self.parent[node]
        return keys[::-1]

    # -- serialisation ----------------------------------------------------------------------

    def to_json(self) -> dict:
        """Plain JSON: one row per node [parent, key, imp_sum, imp_n, end_max, end_sum, end_n,
        subs_tried, subs_failed], parents before children."""
        nodes = [
            [
                self.parent[i],
                self.key[i],
                self.imp_sum[i],
                self.imp_n[i],
                self.end_max[i],
                self.end_sum[i],
                self.end_n[i],
                self.subs_tried[i],
                self.subs_failed[i],
            ]
            for i in range(1, len(self.key))
        ]
        out = {
            "version": FORMAT_VERSION,
            "normalize": self.normalize,
            "aggregate": self.aggregate,
            "wildcard": WILDCARD,
            "nodes": nodes,
        }
        if self.calibrated:  # node ids are 1 + the row index in "nodes"
            out["calibrated"] = {str(k): v for k, v in sorted(self.calibrated.items())}
        return out

    @classmethod
    def from_json(cls, data: dict) -> Trie:
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"unknown N2G trie format version {data.get('version')!r}")
        trie = cls(normalize=str(data["normalize"]), aggregate=str(data["aggregate"]))
        for parent, key, imp_sum, imp_n, end_max, end_sum, end_n, tried, failed in data["nodes"]:
            node = trie._child(int(parent), key)
            trie.imp_sum[node] = float(imp_sum)
            trie.imp_n[node] = int(imp_n)
            trie.end_max[node] = float(end_max)
            trie.end_sum[node] = float(end_sum)
            trie.end_n[node] = int(end_n)
            trie.subs_tried[node] = int(tried)
            trie.subs_failed[node] = int(failed)
        trie.calibrated = {int(k): float(v) for k, v in data.get("calibrated", {}).items()}
        return trie
