"""Drawing a graph: JSON (nodes/edges) for the browser, Graphviz DOT, and SVG via `dot`.

The picture reads left to right like text and points right to left toward the activating
token: activating tokens sit at the right (rankdir=RL), each edge joins a context token to the
token on its right. Activating nodes are filled by their activation (white → red), context
nodes by their importance (white → blue), wildcards are grey "*", and nodes where a pattern
ends (a trie END) get a thick outline. Large tries are cut to the `max_nodes` most used nodes.
"""

from __future__ import annotations

import shutil

from neuronatlas.errors import ModelUnavailable
from neuronatlas.n2g.explain import character_key
from neuronatlas.n2g.trie import WILDCARD, Trie


def _weights(trie: Trie) -> list[int]:
    w = list(trie.end_n)
    for node in range(len(trie.key) - 1, 0, -1):
        w[trie.parent[node]] += w[node]
    return w


def _best(trie: Trie) -> list[float]:
    b = [trie.end_value(i) for i in range(len(trie.key))]
    for node in range(len(trie.key) - 1, 0, -1):
        b[trie.parent[node]] = max(b[trie.parent[node]], b[node])
    return b


def _piece_label(trie: Trie, node: int, weight: list[int]) -> str:
    """Label of a "" node, a later piece of a split character (`models.tokens`): the
    character it belongs to, marked as a piece, so the node is neither blank nor mistaken for
    the character's own token."""
    char = character_key(trie, node, weight)
    return f"({char.strip() or char} piece)" if char else "(piece)"


def graph_json(trie: Trie, a_max: float, max_nodes: int = 150) -> dict:
    """{"nodes": [...], "edges": [...], "truncated": bool} for the browser.

    node: id, label, kind (activating | context | wildcard), depth, activation (normalised
    best END beneath, activating nodes), importance (mean), end (bool), end_activation
    (normalised, or null), count (lines through it), substitutes_tried/failed.
    edge: source (context node, the left token), target (the token to its right).
    """
    weight, best = _weights(trie), _best(trie)
    order = sorted(range(1, len(trie.key)), key=lambda n: (trie.depth[n], -weight[n], n))
    keep: set[int] = set()
    for n in sorted(order, key=lambda n: (-weight[n], trie.depth[n], n)):
        if len(keep) >= max_nodes:
            break
        if trie.parent[n] == 0 or trie.parent[n] in keep:
            keep.add(n)
    nodes, edges = [], []
    for n in order:
        if n not in keep:
            continue
        key = trie.key[n]
        kind = (
            "activating" if trie.depth[n] == 1 else ("wildcard" if key == WILDCARD else "context")
        )
        nodes.append(
            {
                "id": n,
                "label": "*" if key == WILDCARD else (key or _piece_label(trie, n, weight)),
                "kind": kind,
                "depth": trie.depth[n],
                "activation": best[n] if kind == "activating" else None,
                "activation_value": best[n] * a_max if kind == "activating" else None,
                "importance": trie.importance(n),
                "end": bool(trie.end_n[n]),
                "end_activation": trie.end_value(n) if trie.end_n[n] else None,
                "count": weight[n],
                "substitutes_tried": trie.subs_tried[n],
                "substitutes_failed": trie.subs_failed[n],
            }
        )
        if trie.parent[n] != 0:
            edges.append({"source": n, "target": trie.parent[n]})
    return {"nodes": nodes, "edges": edges, "truncated": len(keep) < len(trie)}


def _hex(r: float, g: float, b: float) -> str:
    return "#" + "".join(f"{max(0, min(255, round(255 * x))):02x}" for x in (r, g, b))


def _fill(kind: str, activation: float | None, importance: float) -> str:
    if kind == "wildcard":
        return "#dddddd"
    if kind == "activating":
        v = max(0.0, min(1.0, activation or 0.0))
        return _hex(1.0, 1.0 - 0.75 * v, 1.0 - 0.75 * v)  # white → red
    v = max(0.0, min(1.0, importance))
    return _hex(1.0 - 0.7 * v, 1.0 - 0.45 * v, 1.0)  # white → blue


def _quote(text: str) -> str:
    shown = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\\\n")
    return f'"{shown if shown.strip() else repr(text)}"'


def to_dot(graph: dict, title: str = "") -> str:
    """Graphviz DOT of `graph_json` output."""
    lines = [
        "digraph n2g {",
        (
            '  rankdir=RL; bgcolor="white"; node [shape=box, style="rounded,filled",'
            ' fontname="Helvetica", fontsize=12, penwidth=1]; edge [color="#888888", dir=back];'
        ),
    ]
    if title:
        lines.append(f"  label={_quote(title)}; labelloc=t;")
    for node in graph["nodes"]:
        fill = _fill(node["kind"], node["activation"], node["importance"])
        outline = ', penwidth=3, color="#222222"' if node["end"] else ', color="#999999"'
        tip = f"{node['kind']}; importance {node['importance']:.2f}"
        if node["end_activation"] is not None:
            tip += f"; ends at {node['end_activation']:.2f} of max"
        lines.append(
            f'  n{node["id"]} [label={_quote(node["label"])}, fillcolor="{fill}"'
            f"{outline}, tooltip={_quote(tip)}];"
        )
    for edge in graph["edges"]:
        # edge from the token to the right to its left context; dir=back draws the arrow
        # pointing right, toward the activating token.
        lines.append(f"  n{edge['target']} -> n{edge['source']};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(dot: str) -> str:
    """Render DOT with the Graphviz `dot` binary (Debian package graphviz)."""
    if shutil.which("dot") is None:
        raise ModelUnavailable("drawing needs the Graphviz `dot` binary: apt-get install graphviz")
    import graphviz

    return graphviz.Source(dot).pipe(format="svg").decode("utf-8")
