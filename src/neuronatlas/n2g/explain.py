"""A short English explanation read off a graph: the activating tokens and the context that
matters. Stored as an explanation with source 'n2g' and the graph's ev_correlation_score, so
every neuron gets an explanation and a score without any LLM.
"""

from __future__ import annotations

from neuronatlas.n2g.trie import WILDCARD, Trie


def _show(key: str) -> str:
    if key == WILDCARD:
        return "…"
    if key.strip():
        return key
    return repr(key)[1:-1].replace(" ", "␠")  # whitespace tokens: visible


def character_key(trie: Trie, node: int, weight: list[int]) -> str:
    """The key a node shows: a later piece of a split character is "" in records
    (`models.tokens`), so it shows the character, the first non-empty key before it along the
    heaviest path of its context."""
    while trie.key[node] == "" and trie.children[node]:
        node = max(trie.children[node].values(), key=lambda c: weight[c])
    return trie.key[node]


def _subtree_best(trie: Trie) -> list[float]:
    best = [trie.end_value(i) for i in range(len(trie.key))]
    for node in range(len(trie.key) - 1, 0, -1):  # children come after parents
        p = trie.parent[node]
        best[p] = max(best[p], best[node])
    return best


def describe(
    trie: Trie, max_tokens: int = 6, max_contexts: int = 3, max_context_len: int = 5
) -> str:
    """E.g. 'Fires on "cat", "dog" (strongest "cat"); context: "the … cat", "a dog".'"""
    if len(trie) == 0:
        return "No firing pattern found in the training excerpts."
    best = _subtree_best(trie)
    weight = [0] * len(trie.key)
    for node in range(len(trie.key) - 1, 0, -1):
        weight[node] += trie.end_n[node]
        weight[trie.parent[node]] += weight[node]
    roots = sorted(trie.children[0].items(), key=lambda kv: (-weight[kv[1]], -best[kv[1]], kv[0]))
    names: list[str] = []
    for _, node in roots:
        name = _show(character_key(trie, node, weight))
        if name not in names:
            names.append(name)
    shown = [f'"{k}"' for k in names[:max_tokens]]
    more = len(names) - len(shown)
    text = "Fires on " + ", ".join(shown) + (f" and {more} more" if more > 0 else "")
    strongest = max(roots, key=lambda kv: best[kv[1]])[1]
    if len(names) > 1:
        text += f' (strongest "{_show(character_key(trie, strongest, weight))}")'
    contexts = sorted(
        (node for node in range(1, len(trie.key)) if trie.end_n[node] and trie.depth[node] > 1),
        key=lambda n: (-trie.end_n[n] * trie.end_value(n), -trie.depth[n]),
    )
    phrases = []
    for node in contexts:
        keys = trie.path(node)[::-1]  # leftmost context first, activating token last
        cut = len(keys) > max_context_len
        keys = keys[-max_context_len:]
        while keys and keys[0] == WILDCARD:
            keys = keys[1:]
        # a split character's later pieces ("") are shown by its first piece
        phrase = ("… " if cut else "") + " ".join(_show(k) for k in keys if k != "")
        if phrase not in phrases:
            phrases.append(phrase)
        if len(phrases) >= max_contexts:
            break
    if phrases:
        text += "; context: " + ", ".join(f'"{p}"' for p in phrases)
    else:
        text += "; context does not matter"
    return text + "."
