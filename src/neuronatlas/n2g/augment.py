"""Augmentation: swap each important token for plausible substitutes and see what generalises.

Substitutes come from pluggable sources, registered by name (`SOURCES`):
- "model" (default): the analysed model's own top next-token predictions at that position;
- "embedding": nearest tokens to it in the model's input embedding matrix (cosine);
- "casing": other casings of the word (casings.CasingTable);
- "distilbert": DistilBERT masked-LM candidates (probability ≥ 1e-5), re-cased like the
  reference (title case kept when the original was title case, else the commonest casing);
  needs the Hugging Face hub, and says so when it is unreachable.

A substitute replaces one token *id* in place, so positions never shift (the reference
substitutes text and re-tokenises, then guesses where the pivot went). Substitutes that are
the original token, special tokens, or only a re-spacing/re-casing the trie would not tell
apart are dropped, and every substitute is tried once (the reference's "same as original" check
compared with the wrong word and its de-duplication set was never filled; sub-word tokens were
never augmented — here every token is).

A substitute is kept when the pivot keeps ≥ `augment_keep` of its clean activation; the kept
ones become new examples. The ones that fail are counted per token as evidence that the token
itself is required (stored on the trie node as substitutes tried / failed).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from neuronatlas.errors import BadInput, ModelUnavailable
from neuronatlas.n2g.forward import Runner
from neuronatlas.n2g.trie import normalize_token

if TYPE_CHECKING:
    from neuronatlas.n2g.examples import VocabIndex

log = logging.getLogger(__name__)

SOURCES: dict[str, type[SubstituteSource]] = {}


def register(cls: type[SubstituteSource]) -> type[SubstituteSource]:
    """Class decorator: make a source available under `cls.name`."""
    if cls.name in SOURCES:
        raise ValueError(f"substitute source {cls.name!r} registered twice")
    SOURCES[cls.name] = cls
    return cls


@dataclass
class AugmentContext:
    """What sources may use: the runner (model, counted passes), the vocabulary index and,
    for the casing/DistilBERT sources, a lazily built casing table."""

    runner: Runner
    vocab: VocabIndex
    casings_path: str | None = None
    normalize: str = "space"
    corpus_tokens: Callable[[], Iterable[str]] | None = None
    """Called only when a casing table must be counted from the corpus (no --casings, no
    spaCy data)."""
    _casings: object = field(default=None, repr=False)

    def casings(self):
        if self._casings is None:
            from neuronatlas.n2g.casings import default_table

            corpus = self.corpus_tokens() if self.corpus_tokens is not None else None
            self._casings = default_table(self.casings_path, corpus)
        return self._casings


class SubstituteSource(ABC):
    """Proposes replacement token ids for (sequence, position) requests, best first."""

    name: ClassVar[str]

    def __init__(self, ctx: AugmentContext):
        self.ctx = ctx
        tok = ctx.runner.loaded.tokenizer
        self.special = set(getattr(tok, "all_special_ids", []) or [])

    @abstractmethod
    def propose(self, requests: Sequence[tuple[list[int], int]], n: int) -> list[list[int]]:
        """Up to n candidate ids per request (already filtered with `acceptable`)."""

    def acceptable(self, original: int, candidate: int) -> bool:
        if candidate == original or candidate in self.special:
            return False
        strings = self.ctx.vocab.strings
        if not (0 <= candidate < len(strings)):
            return False
        mode = self.ctx.normalize
        return normalize_token(strings[candidate], mode) != normalize_token(strings[original], mode)

    def _filter(self, original: int, ranked: Sequence[int], n: int) -> list[int]:
        out: list[int] = []
        seen: set[int] = set()
        for c in ranked:
            c = int(c)
            if c not in seen and self.acceptable(original, c):
                seen.add(c)
                out.append(c)
                if len(out) >= n:
                    break
        return out


@register
class ModelPredictions(SubstituteSource):
    """The analysed model's top next-token predictions at the position (one full pass per
    distinct sequence gives every position). Position 0 without a BOS has no prediction."""

    name = "model"

    def propose(self, requests, n):
        runner = self.ctx.runner
        distinct: dict[tuple[int, ...], int] = {}
        has_bos = runner.bos is not None
        needed: list[set[int]] = []
        for ids, pos in requests:
            at = distinct.setdefault(tuple(ids), len(distinct))
            if at == len(needed):
                needed.append(set())
            needed[at].add(pos if has_bos else pos - 1)
        tops = runner.next_token_top(
            [list(k) for k in distinct], k=4 * n + 8, rows=[sorted(x) for x in needed]
        )
        out: list[list[int]] = []
        for ids, pos in requests:
            row = pos if has_bos else pos - 1
            if row < 0:
                out.append([])
                continue
            top = tops[distinct[tuple(ids)]][row]
            out.append(self._filter(ids[pos], top, n))
        return out


@register
class EmbeddingNeighbours(SubstituteSource):
    """Nearest tokens by cosine similarity in the model's input embedding matrix."""

    name = "embedding"

    def __init__(self, ctx):
        super().__init__(ctx)
        import torch

        with torch.inference_mode():
            self.weight = ctx.runner.loaded.model.get_input_embeddings().weight.float()
            self.norms = self.weight.norm(dim=1).clamp_min(1e-8)

    def propose(self, requests, n):
        import torch

        out = []
        for ids, pos in requests:
            orig = ids[pos]
            with torch.inference_mode():
                sims = (self.weight @ self.weight[orig]) / (self.norms * self.norms[orig])
                top = torch.topk(sims, min(4 * n + 8, sims.numel())).indices.tolist()
            out.append(self._filter(orig, top, n))
        return out


@register
class CasingVariants(SubstituteSource):
    """Other casings of the token's word that are single tokens (same leading space)."""

    name = "casing"

    def propose(self, requests, n):
        table = self.ctx.casings()
        strings, vocab = self.ctx.vocab.strings, self.ctx.vocab
        out = []
        for ids, pos in requests:
            orig = ids[pos]
            s = strings[orig]
            core = s.strip()
            lead = s[: len(s) - len(s.lstrip())]
            forms = [*table.variants(core), core.lower(), core.title(), core.upper()]
            cands = [vocab.unique.get(lead + f) for f in forms if f and f != core]
            # Casings are exactly what normalisation may merge; keep those the trie can tell apart.
            out.append(self._filter(orig, [c for c in cands if c is not None], n))
        return out


@register
class MaskedLM(SubstituteSource):
    """DistilBERT masked-LM candidates, re-cased and mapped to single tokens (needs the hub)."""

    name = "distilbert"
    model_id = "distilbert-base-uncased"

    def __init__(self, ctx):
        super().__init__(ctx)
        try:
            from transformers import AutoModelForMaskedLM, AutoTokenizer

            self.mlm_tok = AutoTokenizer.from_pretrained(self.model_id)
            self.mlm = AutoModelForMaskedLM.from_pretrained(self.model_id).eval()
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(
                f"substitute source 'distilbert' needs {self.model_id} from the Hugging Face hub,"
                f" which cannot be reached here ({type(exc).__name__}); use the default 'model'"
                " source (--substitutes model) or 'embedding'/'casing'"
            ) from exc

    def propose(self, requests, n):
        import torch

        strings, vocab, table = self.ctx.vocab.strings, self.ctx.vocab, self.ctx.casings()
        out: list[list[int]] = []
        for ids, pos in requests:
            orig = strings[ids[pos]]
            left = "".join(strings[i] for i in ids[:pos])
            right = "".join(strings[i] for i in ids[pos + 1 :])
            lead = orig[: len(orig) - len(orig.lstrip())]
            text = f"{left}{lead}{self.mlm_tok.mask_token}{right}"
            enc = self.mlm_tok(text, return_tensors="pt", truncation=True)
            where = (enc["input_ids"][0] == self.mlm_tok.mask_token_id).nonzero()
            if not len(where):
                out.append([])
                continue
            with torch.inference_mode():
                probs = self.mlm(**enc).logits[0, int(where[0])].softmax(-1)
            top = torch.topk(probs, 64)
            cands = []
            for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=False):
                if p < 1e-5:
                    break
                word = str(self.mlm_tok.convert_ids_to_tokens(i))  # one id gives one token
                if word.startswith("##") or not word.isalpha():
                    continue
                cased = word.title() if orig.strip().istitle() else table.commonest(word)
                tid = vocab.unique.get(lead + cased)
                if tid is not None:
                    cands.append(tid)
            out.append(self._filter(ids[pos], cands, n))
        return out


def make_sources(names: Sequence[str], ctx: AugmentContext) -> list[SubstituteSource]:
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise BadInput(f"unknown substitute source(s) {unknown}: choose from {sorted(SOURCES)}")
    return [SOURCES[n](ctx) for n in names]


@dataclass
class AugmentRequest:
    ids: list[int]
    neuron: int
    pivot: int
    positions: list[int]
    clean_pivot: float


@dataclass
class Substitute:
    position: int
    token_id: int
    activations: np.ndarray  # the neuron's activation at every position of the new sequence
    kept: bool


@dataclass
class AugmentResult:
    substitutes: list[Substitute] = field(default_factory=list)

    def evidence(self) -> dict[int, tuple[int, int]]:
        """position → (substitutes tried, substitutes that failed)."""
        out: dict[int, tuple[int, int]] = {}
        for s in self.substitutes:
            tried, failed = out.get(s.position, (0, 0))
            out[s.position] = (tried + 1, failed + (not s.kept))
        return out


def merge(per_source: list[list[int]], n: int) -> list[int]:
    """Round-robin over sources, first come first kept, up to n."""
    out: list[int] = []
    for i in range(max((len(x) for x in per_source), default=0)):
        for cands in per_source:
            if i < len(cands) and cands[i] not in out:
                out.append(cands[i])
    return out[:n]


def augment(
    runner: Runner,
    layer: int,
    requests: Sequence[AugmentRequest],
    sources: Sequence[SubstituteSource],
    n: int,
    keep: float,
) -> list[AugmentResult]:
    """Propose, run (one batched set of passes for all requests) and judge substitutes."""
    flat = [(r.ids, p) for r in requests for p in r.positions]
    results = [AugmentResult() for _ in requests]
    if not flat or n == 0 or not sources:
        return results
    proposals = [s.propose(flat, n) for s in sources]
    seqs, owners = [], []
    at = 0
    for ri, r in enumerate(requests):
        for p in r.positions:
            for tid in merge([prop[at] for prop in proposals], n):
                row = list(r.ids)
                row[p] = tid
                seqs.append(row)
                owners.append((ri, p, tid))
            at += 1
    if not seqs:
        return results
    neurons = sorted({r.neuron for r in requests})
    col = {nn: c for c, nn in enumerate(neurons)}
    acts = runner.activations(layer, seqs, neurons)
    for (ri, p, tid), a in zip(owners, acts, strict=False):
        r = requests[ri]
        values = a[:, col[r.neuron]].astype(np.float64)
        kept = r.clean_pivot > 0 and values[r.pivot] >= keep * r.clean_pivot
        results[ri].substitutes.append(Substitute(p, tid, values, bool(kept)))
    return results
