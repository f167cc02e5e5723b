"""Batched, counted forward passes for N2G: many token sequences, one layer, chosen neurons.

`Runner.activations` takes any number of sequences (from any neurons of one layer), runs each
distinct sequence once (identical sequences asked for by several neurons share a row), packs
them into batches under a padded-token budget, stops the model at the layer (the LoadedModel
hook does that) and returns only the requested neurons' columns. Right padding is safe for a
causal model: a position never sees what follows it.

Every pass is counted (`Counters`), so the benchmark can report model tokens per neuron: real
tokens fed (BOS included, padding not), padded tokens, token-layers (tokens × blocks run) and
passes.

Optional memo (`memo` a dict, `memo_columns` layer → neurons): a sequence already run for a
layer is not run again, across calls and across runners sharing the dict; each run computes
every memo column of the layer, so later calls for other neurons of that layer hit too. The
evaluation bench uses it so that split seeds and build variants share the passes of windows
they have in common.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np


@dataclass
class Counters:
    tokens: int = 0
    padded_tokens: int = 0
    token_layers: int = 0
    passes: int = 0
    rows: int = 0

    def snapshot(self) -> dict[str, int]:
        return dict(self.__dict__)


class Runner:
    """Runs a LoadedModel for N2G. prepend_bos: put the model's BOS before every sequence."""

    def __init__(
        self, loaded, prepend_bos: bool, max_batch_tokens: int = 8192, full_depth: bool = False
    ):
        self.loaded = loaded
        self.bos = loaded.bos_token_id if prepend_bos else None
        self.max_batch_tokens = max_batch_tokens
        self.full_depth = full_depth
        self.count = Counters()
        self.memo: dict | None = None
        self.memo_columns: dict[int, list[int]] = {}
        tok = loaded.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.pad = int(pad if pad is not None else 0)

    def _with_bos(self, seq: Sequence[int]) -> list[int]:
        return ([self.bos] if self.bos is not None else []) + list(seq)

    def _batches(self, seqs: list[list[int]]) -> list[list[int]]:
        """Row indices grouped so each batch's padded size stays under the budget."""
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        batches: list[list[int]] = []
        cur: list[int] = []
        longest = 0
        for i in order:
            longest_if = max(longest, len(seqs[i]))
            if cur and longest_if * (len(cur) + 1) > self.max_batch_tokens:
                batches.append(cur)
                cur, longest_if = [], len(seqs[i])
            cur.append(i)
            longest = longest_if
        if cur:
            batches.append(cur)
        return batches

    def _padded(self, rows: list[list[int]], batch: list[int]):
        """(input ids, attention mask) of rows `batch`, right-padded to the longest."""
        import torch

        width = max(len(rows[i]) for i in batch)
        ids = torch.full((len(batch), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, i in enumerate(batch):
            ids[r, : len(rows[i])] = torch.as_tensor(rows[i])
            mask[r, : len(rows[i])] = 1
        return ids, mask

    def _count(self, rows: list[list[int]], batch: list[int], width: int, depth: int) -> None:
        """Add one forward pass over rows `batch` (padded to `width`, `depth` layers run)."""
        real = sum(len(rows[i]) for i in batch)
        self.count.tokens += real
        self.count.padded_tokens += width * len(batch)
        self.count.token_layers += real * depth
        self.count.passes += 1
        self.count.rows += len(batch)

    def activations(
        self, layer: int, seqs: Sequence[Sequence[int]], neurons: Sequence[int]
    ) -> list[np.ndarray]:
        """Per sequence, float32 [len(seq), len(neurons)] (BOS position dropped)."""
        if self.memo is None:
            return self._activations(layer, seqs, neurons)
        wide = list(self.memo_columns.get(layer) or [])
        wide += sorted(set(neurons) - set(wide))
        self.memo_columns[layer] = wide
        keys = [("act", layer, tuple(int(t) for t in s)) for s in seqs]
        need = set(neurons)
        todo = [k for k in dict.fromkeys(keys) if k not in self.memo or need - set(self.memo[k][1])]
        if todo:
            for k, a in zip(
                todo, self._activations(layer, [k[2] for k in todo], wide), strict=True
            ):
                self.memo[k] = (a, wide)
        out = []
        for k in keys:
            a, cols = self.memo[k]
            at = {n: c for c, n in enumerate(cols)}
            out.append(a[:, [at[n] for n in neurons]])
        return out

    def _activations(
        self, layer: int, seqs: Sequence[Sequence[int]], neurons: Sequence[int]
    ) -> list[np.ndarray]:
        import torch

        distinct: dict[tuple[int, ...], int] = {}
        rows: list[list[int]] = []
        where = []
        for s in seqs:
            key = tuple(int(t) for t in s)
            if key not in distinct:
                distinct[key] = len(rows)
                rows.append(self._with_bos(key))
            where.append(distinct[key])
        cols = torch.as_tensor(list(neurons), dtype=torch.long)
        offset = 1 if self.bos is not None else 0
        results: list[np.ndarray | None] = [None] * len(rows)
        layers = [layer, self.loaded.n_layers - 1] if self.full_depth else [layer]
        for batch in self._batches(rows):
            ids, mask = self._padded(rows, batch)
            acts = self.loaded.neuron_activations(ids, layers=layers, attention_mask=mask)[layer]
            picked = acts[:, :, cols.to(acts.device)].cpu().numpy()
            for r, i in enumerate(batch):
                results[i] = picked[r, offset : len(rows[i])]
            self._count(rows, batch, ids.shape[1], max(layers) + 1)
        return cast(list[np.ndarray], [results[w] for w in where])  # every row was filled

    def next_token_top(
        self,
        seqs: Sequence[Sequence[int]],
        k: int,
        rows: Sequence[Sequence[int]] | None = None,
    ) -> list[np.ndarray]:
        """Per sequence, int64 [len(seq)(+1 with BOS), k]: the model's top-k next tokens after
        each model position (row p predicts the token after it). Runs the whole model; with
        `rows` (per sequence, the rows wanted) the LM head runs only at those rows of each
        batch, and rows not asked for hold -1 (the head is most of the cost for a large
        vocabulary)."""
        wanted = [None] * len(seqs) if rows is None else [tuple(sorted(set(r))) for r in rows]
        if self.memo is not None:
            keys = [
                ("next", k, tuple(int(t) for t in s), w) for s, w in zip(seqs, wanted, strict=True)
            ]
            todo = [key for key in dict.fromkeys(keys) if key not in self.memo]
            if todo:
                tops = self._next_token_top([x[2] for x in todo], k, [x[3] for x in todo])
                for key, top in zip(todo, tops, strict=True):
                    self.memo[key] = top
            return [self.memo[key] for key in keys]
        return self._next_token_top(seqs, k, wanted)

    def _next_token_top(self, seqs, k: int, wanted) -> list[np.ndarray]:
        import torch

        rows = [self._with_bos(s) for s in seqs]
        out: list[np.ndarray | None] = [None] * len(rows)
        for batch in self._batches(rows):
            ids, mask = self._padded(rows, batch)
            if all(wanted[i] is not None for i in batch):
                keep = sorted({p for i in batch for p in wanted[i] if 0 <= p < len(rows[i])}) or [0]
            else:
                keep = list(range(ids.shape[1]))
            with torch.inference_mode():
                dev = self.loaded.device
                logits = self.loaded.model(
                    input_ids=ids.to(dev),
                    attention_mask=mask.to(dev),
                    use_cache=False,
                    logits_to_keep=torch.as_tensor(keep, dtype=torch.long, device=dev),
                ).logits
            top = torch.topk(logits.float(), k, dim=-1).indices.cpu().numpy()
            for r, i in enumerate(batch):
                full = np.full((len(rows[i]), k), -1, dtype=np.int64)
                for c, p in enumerate(keep):
                    if p < len(rows[i]):
                        full[p] = top[r, c]
                out[i] = full
            self._count(rows, batch, ids.shape[1], self.loaded.n_layers)
        return out  # type: ignore[return-value]
