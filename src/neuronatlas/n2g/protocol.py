"""The data side of the N2G evaluation protocol: windows that know their document, a split
by document, and each neuron's train / validation / test record sets.

Why by document: neighbouring windows of one article share its topic words, so a window split
lets a memorising lookup score on test text it has in effect seen. Here every window holds
tokens of exactly one document (a document is cut into `context`-token windows; its last,
shorter window is kept when it has at least `min_tokens` tokens), and whole documents are
assigned to train, validation or test by a seeded permutation. No document contributes to two
sides.

Per neuron and split (docs/N2G.md, "Evaluation protocol"):

- train: its `train_top` most activating train windows, `train_quantiles` train windows spread
  evenly over the rest of its ranking, and `train_random` random train windows (the same for
  every neuron). N2G and every baseline learn from exactly these records.
- a_max = the maximum activation over those train records (≈ the train split's maximum); a
  token fires when its activation ≥ fire_threshold × a_max.
- validation and test, each as (A) its `eval_top` most activating windows of that side and
  (B) `eval_random` random windows of that side, the same windows for every neuron and method.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from neuronatlas.n2g.examples import NeuronExamples, Rec

TRAIN, VALIDATION, TEST = 0, 1, 2


@dataclass
class Windows:
    """Token windows, each of one document. ids/strings per window, doc = document index."""

    ids: list[list[int]] = field(default_factory=list)
    strings: list[list[str]] = field(default_factory=list)
    doc: list[int] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    """Per document: which text source it came from."""

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_docs(self) -> int:
        return len(self.kinds)


def document_windows(
    documents: Iterable[tuple[str, str]],
    tokenizer,
    token_strings,
    context: int,
    max_tokens: int,
    min_tokens: int = 8,
) -> Windows:
    """Cut (kind, text) documents into windows of ≤ `context` tokens until `max_tokens`;
    `token_strings` gives a window's display strings (`LoadedModel.record_strings`)."""
    if context < 1 or min_tokens < 1:
        raise ValueError("context and min_tokens must be ≥ 1")
    out, total = Windows(), 0
    for kind, text in documents:
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        d = len(out.kinds)
        added = False
        for at in range(0, len(ids), context):
            piece = [int(t) for t in ids[at : at + context]]
            if len(piece) < min_tokens or total >= max_tokens:
                break
            out.ids.append(piece)
            out.strings.append(token_strings(piece))
            out.doc.append(d)
            total += len(piece)
            added = True
        if added:
            out.kinds.append(kind)
        if total >= max_tokens:
            break
    return out


def split_documents(
    n_docs: int, seed: int, fractions: tuple[float, float, float] = (0.5, 0.2, 0.3)
) -> np.ndarray:
    """Side (TRAIN, VALIDATION, TEST) of every document: a seeded permutation cut by share."""
    if n_docs < 3:
        raise ValueError("a document split needs at least 3 documents")
    if any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"split fractions {fractions}: three positive shares summing to 1")
    order = np.random.default_rng(seed).permutation(n_docs)
    cut1 = max(1, round(fractions[0] * n_docs))
    cut2 = min(n_docs - 1, max(cut1 + 1, round((fractions[0] + fractions[1]) * n_docs)))
    side = np.empty(n_docs, dtype=np.int8)
    side[order[:cut1]] = TRAIN
    side[order[cut1:cut2]] = VALIDATION
    side[order[cut2:]] = TEST
    return side


def window_activations(
    loaded,
    windows: Windows,
    neurons: dict[int, Sequence[int]],
    bos: int | None,
    batch: int = 32,
    progress=None,
) -> dict[tuple[int, int], np.ndarray]:
    """(layer, neuron) → float32 [n_windows, context] activations (NaN past a window's end)
    from one pass per batch through every needed layer at once (BOS first when given)."""
    import torch

    width = max(len(w) for w in windows.ids)
    keys = [(layer, n) for layer in sorted(neurons) for n in neurons[layer]]
    out = {k: np.full((len(windows), width), np.nan, dtype=np.float32) for k in keys}
    order = sorted(range(len(windows)), key=lambda i: len(windows.ids[i]))
    pad = loaded.tokenizer.pad_token_id or 0
    lead = 1 if bos is not None else 0
    for at in range(0, len(order), batch):
        rows = order[at : at + batch]
        longest = max(len(windows.ids[i]) for i in rows) + lead
        ids = torch.full((len(rows), longest), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for r, i in enumerate(rows):
            seq = ([bos] if bos is not None else []) + windows.ids[i]
            ids[r, : len(seq)] = torch.as_tensor(seq)
            mask[r, : len(seq)] = 1

        def take(layer: int, acts, rows=rows) -> None:
            cols = list(neurons[layer])
            picked = acts[:, lead:, cols].cpu().numpy()
            for r, i in enumerate(rows):
                n = len(windows.ids[i])
                for c, neuron in enumerate(cols):
                    out[(layer, neuron)][i, :n] = picked[r, :n, c]

        loaded.stream_activations(ids, take, layers=sorted(neurons), attention_mask=mask)
        if progress is not None:
            progress(min(at + batch, len(order)), len(order))
    return out


@dataclass(frozen=True)
class RecordPlan:
    """How many records of each kind each neuron gets (see the module docstring)."""

    train_top: int = 20
    train_quantiles: int = 0
    train_random: int = 20
    eval_top: int = 20
    eval_random: int = 100
    fire_threshold: float = 0.5


@dataclass
class NeuronSets:
    """One neuron's records under one split; a_max from train records only."""

    neuron_id: str
    layer: int
    neuron: int
    a_max: float
    train: list[Rec]
    sets: dict[str, list[Rec]]
    """"validation_A", "validation_B", "test_A", "test_B"."""

    def firing_tokens(self, name: str, fire_threshold: float = 0.5) -> int:
        limit = fire_threshold * self.a_max
        return sum(a is not None and a >= limit for r in self.sets[name] for a in r.acts)

    def examples(self, activation_threshold: float) -> NeuronExamples:
        """What N2G's builder takes: train records whose peak passes the trie threshold."""
        limit = activation_threshold * self.a_max
        build = [r for r in self.train if r.peak[0] > limit]
        ex = NeuronExamples(self.neuron_id, self.layer, self.neuron, self.a_max)
        ex.build, ex.train, ex.test = build, list(self.train), list(self.sets["test_A"])
        return ex


def _records(acts: np.ndarray, windows: Windows, rows: Iterable[int], category: str) -> list[Rec]:
    out = []
    for rank, i in enumerate(rows):
        n = len(windows.ids[i])
        values = [None if np.isnan(v) else float(v) for v in acts[i, :n]]
        out.append(Rec(category, rank, windows.strings[i], values))
    return out


def shared_random(side: np.ndarray, windows: Windows, count: int, seed: int) -> list[list[int]]:
    """`count` random windows of each side (the same for every neuron), per side index."""
    doc_side = side[np.asarray(windows.doc)]
    rng = np.random.default_rng(seed + 7919)
    picks = []
    for s in (TRAIN, VALIDATION, TEST):
        pool = np.flatnonzero(doc_side == s)
        picks.append(sorted(rng.choice(pool, size=min(count, pool.size), replace=False).tolist()))
    return picks


def neuron_sets(
    neuron_id: str,
    layer: int,
    neuron: int,
    acts: np.ndarray,
    windows: Windows,
    side: np.ndarray,
    random_rows: Sequence[Sequence[int]],
    plan: RecordPlan,
) -> NeuronSets:
    """The neuron's train / validation / test records under document sides `side`."""
    doc_side = side[np.asarray(windows.doc)]
    peak = np.nanmax(acts, axis=1)

    def top(s: int, k: int) -> list[int]:
        rows = np.flatnonzero(doc_side == s)
        return rows[np.argsort(-peak[rows], kind="stable")[:k]].tolist()

    train_rows = np.flatnonzero(doc_side == TRAIN)
    ranked = train_rows[np.argsort(-peak[train_rows], kind="stable")]
    top_rows = ranked[: plan.train_top].tolist()
    rest = ranked[plan.train_top :]
    quantile_rows = (
        rest[np.linspace(0, rest.size - 1, plan.train_quantiles).round().astype(int)].tolist()
        if plan.train_quantiles and rest.size
        else []
    )
    taken = set(top_rows) | set(quantile_rows)
    rand_rows = [i for i in random_rows[TRAIN][: plan.train_random] if i not in taken]
    train = (
        _records(acts, windows, top_rows, "top")
        + _records(acts, windows, sorted(set(quantile_rows)), "quantile")
        + _records(acts, windows, rand_rows, "random")
    )
    a_max = max((r.peak[0] for r in train), default=0.0)
    sets = {
        "validation_A": _records(acts, windows, top(VALIDATION, plan.eval_top), "top"),
        "validation_B": _records(
            acts, windows, random_rows[VALIDATION][: plan.eval_random], "random"
        ),
        "test_A": _records(acts, windows, top(TEST, plan.eval_top), "top"),
        "test_B": _records(acts, windows, random_rows[TEST][: plan.eval_random], "random"),
    }
    return NeuronSets(neuron_id, layer, neuron, float(a_max), train, sets)
