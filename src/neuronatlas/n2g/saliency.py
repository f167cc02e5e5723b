"""Saliency: how much each token of a pruned example matters for each later position.

One batch of L+1 rows per example (the clean sequence and, for every token k, the sequence
with k replaced by the mask token) gives, for every position j ≥ k,
importance[k, j] = clip(1 − masked_k[j] / clean[j], 0, 1). Where clean[j] ≤ 0 (GELU outputs can
be negative) nothing can drop, so the importance is 0. A token never matters for positions
before it (causal model).

The mask token is chosen per tokenizer, on purpose (the reference's id 1 is a pad token for its
SoLU tokenizer but the `"` character in GPT-2): the pad token, else the unknown token, if it
exists and is not a normal text token; otherwise the BOS/EOS token. The choice and the reason
are recorded with every graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from neuronatlas.n2g.forward import Runner

EPS = 1e-6


@dataclass(frozen=True)
class MaskChoice:
    token_id: int
    token: str
    reason: str

    def to_json(self) -> dict:
        return {"id": self.token_id, "token": self.token, "reason": self.reason}


def choose_mask(tokenizer, forced: int | None = None) -> MaskChoice:
    """The masking token for this tokenizer (see module docstring)."""
    if forced is not None:
        return MaskChoice(
            int(forced),
            str(tokenizer.convert_ids_to_tokens(int(forced))),
            "set explicitly (reference: id 1)",
        )
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    for attr in ("pad_token_id", "unk_token_id"):
        tid = getattr(tokenizer, attr, None)
        if tid is not None and tid in special:
            return MaskChoice(
                int(tid),
                str(tokenizer.convert_ids_to_tokens(int(tid))),
                f"the tokenizer's {attr[:-3]} token, a special (non-text) token",
            )
    for attr in ("bos_token_id", "eos_token_id"):
        tid = getattr(tokenizer, attr, None)
        if tid is not None:
            return MaskChoice(
                int(tid),
                str(tokenizer.convert_ids_to_tokens(int(tid))),
                f"no special pad/unk token: the {attr[:3]} token",
            )
    raise ValueError("the tokenizer has no pad, unk, bos or eos token to mask with: set mask_token")


@dataclass
class Saliency:
    clean: np.ndarray  # [L] activation at each position
    importance: np.ndarray  # [L, L]: importance[k, j] of token k for position j


def importance_matrix(clean: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """importance[k, j] from clean [L] and masked [L(k), L(j)] activations."""
    L = clean.shape[0]
    safe = np.where(clean > EPS, clean, 1.0)
    imp = 1.0 - masked / safe[None, :]
    imp = np.clip(imp, 0.0, 1.0)
    imp[:, clean <= EPS] = 0.0
    imp[np.tril_indices(L, -1)] = 0.0  # rows k > columns j: a token after the position
    return imp


def masked_rows(ids: Sequence[int], mask_id: int) -> list[list[int]]:
    rows = [list(ids)]
    for k in range(len(ids)):
        row = list(ids)
        row[k] = mask_id
        rows.append(row)
    return rows


def measure(
    runner: Runner,
    layer: int,
    jobs: Sequence[tuple[list[int], int]],
    mask_id: int,
) -> list[Saliency]:
    """Saliency of many (ids, neuron) jobs of one layer from one batched set of passes."""
    neurons = sorted({n for _, n in jobs})
    col = {n: c for c, n in enumerate(neurons)}
    seqs: list[list[int]] = []
    for ids, _ in jobs:
        seqs.extend(masked_rows(ids, mask_id))
    acts = runner.activations(layer, seqs, neurons)
    out, at = [], 0
    for ids, neuron in jobs:
        L = len(ids)
        block = acts[at : at + L + 1]
        at += L + 1
        c = col[neuron]
        clean = block[0][:, c].astype(np.float64)
        masked = np.stack([b[:, c] for b in block[1:]]).astype(np.float64)
        out.append(Saliency(clean, importance_matrix(clean, masked)))
    return out
