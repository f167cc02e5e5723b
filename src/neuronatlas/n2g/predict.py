"""Prediction: run a trie over any token sequence, no model needed.

For position i the activating token is looked up among the root's children (a dict: positions
whose token never activates cost one lookup, which is what makes running every graph over
every stored record cheap). From there the match walks left: at each step it may follow the
exact token's child or the wildcard child, and it tries both (backtracking), so a wildcard
branch never hides an exact one or the reverse.

Best match rule: among all complete matches (nodes reached whose END is set) the deepest wins
(most context, wildcards counting as context); equal depths go to the highest END value. The
predicted activation is that END value (normalised, × a_max gives the neuron's units); 0 when
nothing matches.
"""

from __future__ import annotations

from collections.abc import Sequence

from neuronatlas.n2g.trie import WILDCARD, Trie, normalize_token


def token_keys(trie: Trie, tokens: Sequence[str]) -> list[str]:
    mode = trie.normalize
    return [normalize_token(t, mode) for t in tokens]


def best_match(trie: Trie, keys: Sequence[str], i: int) -> tuple[int, float, int]:
    """(depth, value, node) of the best complete match ending at position i; (0, 0.0, 0) if none.

    Depth-first with an explicit stack; both exact and wildcard children are explored.
    """
    start = trie.children[0].get(keys[i])
    if start is None:
        return 0, 0.0, 0
    best = (0, 0.0, 0)
    children, end_n = trie.children, trie.end_n
    stack = [(start, i - 1)]
    while stack:
        node, pos = stack.pop()
        if end_n[node]:
            cand = (trie.depth[node], trie.end_value(node), node)
            if cand[:2] > best[:2]:
                best = cand
        if pos < 0:
            continue
        kids = children[node]
        if not kids:
            continue
        exact = kids.get(keys[pos])
        if exact is not None:
            stack.append((exact, pos - 1))
        wild = kids.get(WILDCARD)
        if wild is not None:
            stack.append((wild, pos - 1))
    return best


def predict_normalized(trie: Trie, tokens: Sequence[str]) -> list[float]:
    """Normalised activation (fraction of a_max) predicted for every token."""
    keys = token_keys(trie, tokens)
    roots = trie.children[0]
    out = [0.0] * len(keys)
    for i, key in enumerate(keys):
        if key in roots:
            out[i] = best_match(trie, keys, i)[1]
    return out


def predict(trie: Trie, tokens: Sequence[str], a_max: float) -> list[float]:
    """Predicted activation in the neuron's units for every token."""
    return [v * a_max for v in predict_normalized(trie, tokens)]
