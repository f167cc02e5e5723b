"""END values calibrated on the train records: where a pattern matches, does the neuron fire?

Every END a trie gets from pruning and augmentation is above the trie threshold, so any match
predicts firing, and nothing tells the trie where a pattern matches without firing. Running
the trie over the neuron's train records (top, quantile and random: the same records the
baselines learn from) gives, for every END that is the best match somewhere, how often the
neuron really fired there and how strongly. Two uses (N2GSettings.calibrate):

- "mean": the END's value becomes the mean normalised activation (activation / a_max) at the
  positions where it was the best match: a graded value, below the firing threshold for
  patterns that mostly do not fire;
- "precision": the value is kept, except for an END whose firing precision on train is below
  `min_precision`, whose value is multiplied by that precision (it ranks lower and, for
  min_precision ≤ 0.5, no longer fires).

ENDs that never are the best match on a train record keep their built value.
"""

from __future__ import annotations

from collections.abc import Sequence

from neuronatlas.n2g.predict import best_match, token_keys
from neuronatlas.n2g.trie import Trie


def match_counts(
    trie: Trie,
    records: Sequence[tuple[Sequence[str], Sequence[float | None]]],
    a_max: float,
    fire_threshold: float,
) -> dict[int, tuple[int, int, float]]:
    """END node → (matches, firing matches, sum of normalised activation) over records."""
    trie.calibrated = {}
    out: dict[int, tuple[int, int, float]] = {}
    roots = trie.children[0]
    for tokens, acts in records:
        keys = token_keys(trie, tokens)
        for i, a in enumerate(acts):
            if a is None or keys[i] not in roots:
                continue
            depth, _, node = best_match(trie, keys, i)
            if not depth:
                continue
            n, fired, total = out.get(node, (0, 0, 0.0))
            out[node] = (n + 1, fired + (a >= fire_threshold * a_max), total + a / a_max)
    return out


def calibrate(
    trie: Trie,
    records: Sequence[tuple[Sequence[str], Sequence[float | None]]],
    a_max: float,
    mode: str,
    fire_threshold: float = 0.5,
    min_precision: float = 0.5,
) -> Trie:
    """Set `trie.calibrated` from the records (see the module docstring); returns the trie."""
    if mode not in ("none", "mean", "precision"):
        raise ValueError(f"calibrate mode={mode!r}: none, mean or precision")
    if mode == "none" or a_max <= 0:
        trie.calibrated = {}
        return trie
    counts = match_counts(trie, records, a_max, fire_threshold)
    calibrated = {}
    for node, (n, fired, total) in counts.items():
        if mode == "mean":
            calibrated[node] = total / n
        elif fired / n < min_precision:
            calibrated[node] = trie.end_value(node) * fired / n
    trie.calibrated = calibrated
    return trie
