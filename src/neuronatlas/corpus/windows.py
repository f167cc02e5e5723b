"""Documents → fixed-length token windows with deterministic ids.

Documents are tokenized without special tokens and packed into one stream, each document
followed by the tokenizer's end-of-text token when it has one (GPT-2's `<|endoftext|>`, the
way OpenAI's GPT-2 excerpts show it). The stream is cut into windows of exactly `context`
tokens; window `i` holds stream tokens `[i*context, (i+1)*context)`, so its id is its position
and the same corpus, tokenizer and context always give the same windows (a resumed or sharded
scrape sees exactly the same ones). A last partial window is dropped.

BOS policy (recorded with every atlas):

- `prepend`: the model reads `[BOS] + window`; the BOS position is not part of the window, its
  activations are neither scored nor stored (they are attention-sink outliers). Chosen by
  `auto` for tokenizers that add BOS themselves (Gemma, Llama, Mistral), whose models behave
  badly without it.
- `none`: the model reads the window alone (GPT-2, Pythia: their tokenizers add no BOS, and
  OpenAI's GPT-2 records had none).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

BOS_CHOICES = ("auto", "prepend", "none")


@dataclass(frozen=True)
class BosPolicy:
    """How windows meet the model: `mode`, the BOS id used, the document separator id."""

    mode: Literal["prepend", "none"]
    bos_id: int | None
    separator_id: int | None

    def describe(self) -> dict:
        return {"mode": self.mode, "bos_id": self.bos_id, "separator_id": self.separator_id}


@dataclass(frozen=True)
class WindowBatch:
    """`ids` int64 [b] window ids, `tokens` int32 [b, context] (no BOS)."""

    ids: np.ndarray
    tokens: np.ndarray

    def model_input(self, policy: BosPolicy) -> np.ndarray:
        """int64 [b, context(+1)]: the tokens, with a BOS column first under `prepend`."""
        tokens = self.tokens.astype(np.int64)
        if policy.mode == "prepend":
            bos = np.full((tokens.shape[0], 1), policy.bos_id, dtype=np.int64)
            tokens = np.concatenate([bos, tokens], axis=1)
        return tokens


def resolve_bos(tokenizer, requested: str = "auto") -> BosPolicy:
    """The BOS policy for a tokenizer (see the module docstring)."""
    from neuronatlas.errors import BadInput

    if requested not in BOS_CHOICES:
        raise BadInput(f"--bos {requested!r}: choose one of {', '.join(BOS_CHOICES)}")
    bos = tokenizer.bos_token_id
    sep = tokenizer.eos_token_id
    if requested == "auto":
        ids = tokenizer("hello").input_ids
        requested = "prepend" if bos is not None and ids and ids[0] == bos else "none"
    if requested == "prepend" and bos is None:
        raise BadInput("--bos prepend: this tokenizer has no BOS token")
    mode: Literal["prepend", "none"] = "prepend" if requested == "prepend" else "none"
    return BosPolicy(mode, None if bos is None else int(bos), None if sep is None else int(sep))


def _token_stream(
    documents: Iterable[str], tokenizer, separator: int | None, doc_batch: int
) -> Iterator[list[int]]:
    """Token lists of documents (with the separator appended), tokenized in batches."""
    pending: list[str] = []

    def flush() -> Iterator[list[int]]:
        encoded = tokenizer(pending, add_special_tokens=False, verbose=False)["input_ids"]
        for ids in encoded:
            yield [*ids, separator] if separator is not None else ids

    for doc in documents:
        pending.append(doc)
        if len(pending) == doc_batch:
            yield from flush()
            pending = []
    if pending:
        yield from flush()


def iter_windows(
    documents: Iterable[str],
    tokenizer,
    context: int,
    policy: BosPolicy,
    start: int = 0,
    stop: int | None = None,
    doc_batch: int = 256,
) -> Iterator[tuple[int, np.ndarray]]:
    """(window id, int32 [context] tokens) for ids in [start, stop)."""
    if context < 1:
        raise ValueError("context must be ≥ 1")
    buf = np.empty(0, dtype=np.int32)
    wid = 0
    for ids in _token_stream(documents, tokenizer, policy.separator_id, doc_batch):
        buf = np.concatenate([buf, np.asarray(ids, dtype=np.int32)])
        n_full = len(buf) // context
        for i in range(n_full):
            if stop is not None and wid >= stop:
                return
            if wid >= start:
                yield wid, buf[i * context : (i + 1) * context]
            wid += 1
        buf = buf[n_full * context :]
    return


def batch_windows(
    windows: Iterable[tuple[int, np.ndarray]], batch_size: int
) -> Iterator[WindowBatch]:
    """Group windows into `WindowBatch`es of `batch_size` (the last may be smaller)."""
    ids: list[int] = []
    toks: list[np.ndarray] = []
    for wid, tokens in windows:
        ids.append(wid)
        toks.append(tokens)
        if len(ids) == batch_size:
            yield WindowBatch(np.asarray(ids, dtype=np.int64), np.stack(toks))
            ids, toks = [], []
    if ids:
        yield WindowBatch(np.asarray(ids, dtype=np.int64), np.stack(toks))
