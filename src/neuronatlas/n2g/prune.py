"""Pruning: the shortest context ending at the pivot that still makes the neuron fire.

The pivot is the excerpt's most activating token (or, with pivots="firing", each firing token).
A prefix `ids[s : pivot+1]` passes when the neuron's activation at its last token is at least
`prune_keep ×` the full-context activation and that token is still the prefix's argmax. We try
every length from `min_context` (every `prune_step`-th; the reference tries 5, 10, … 30) from
the shortest up: `prune_chunk` lengths in the first batched pass, `prune_growth` times more in
each later one, which runs only for the examples that found nothing yet (most contexts are
short, so most examples need only the first, cheap pass). All examples of all neurons of a
layer share those passes (see forward.Runner). If no length passes, the longest tried is kept,
as the reference does. After the pivot up to `post_pivot_tokens` tokens are kept, never past
the end of the pivot's sentence, and (`trim_post_context`) none after the last one that fires
in the stored record; they need no pass (a causal model's pivot does not see them).

`scale = full / pruned` rescales the pruned example's activations back to full-context strength.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from neuronatlas.n2g.forward import Runner
from neuronatlas.n2g.settings import N2GSettings

_SENTENCE_END = re.compile(r"[.!?\n]")


@dataclass
class PruneJob:
    """One example of one neuron to prune."""

    neuron: int
    ids: list[int]
    strings: list[str]
    pivot: int
    full: float | None = None  # full-context activation at the pivot; None: measure it
    post_fires: list[bool] | None = None  # per token after the pivot: fires in the record


@dataclass
class Pruned:
    start: int
    end: int  # exclusive; includes the post-pivot tokens
    pivot: int  # index of the pivot inside ids[start:end]
    full: float
    pruned: float
    passed: bool
    neuron: int = -1  # the job's neuron (its index in the layer)

    @property
    def scale(self) -> float:
        if self.pruned > 0 and self.full > 0:
            return self.full / self.pruned
        return 1.0


def candidate_lengths(pivot: int, settings: N2GSettings) -> list[int]:
    longest = min(settings.max_context, pivot + 1)
    shortest = min(settings.min_context, longest)
    lengths = [n for n in range(shortest, longest + 1) if n % settings.prune_step == 0]
    if not lengths or lengths[-1] != longest:
        lengths.append(longest)
    return lengths


def post_pivot_end(strings: Sequence[str], pivot: int, limit: int) -> int:
    """Exclusive end: up to `limit` tokens after the pivot, stopping after a sentence end."""
    end = pivot + 1
    if _SENTENCE_END.search(strings[pivot]):
        return end
    while end < len(strings) and end - pivot - 1 < limit:
        end += 1
        if _SENTENCE_END.search(strings[end - 1]):
            break
    return end


def measure_full(runner: Runner, layer: int, jobs: Sequence[PruneJob], neurons: list[int]) -> None:
    """Fill `full` for jobs that lack it with one batched pass over their whole prefixes."""
    todo = [j for j in jobs if j.full is None]
    if not todo:
        return
    col = {n: c for c, n in enumerate(neurons)}
    acts = runner.activations(layer, [j.ids[: j.pivot + 1] for j in todo], neurons)
    for job, a in zip(todo, acts, strict=False):
        job.full = float(a[job.pivot, col[job.neuron]])


def prune(
    runner: Runner, layer: int, jobs: Sequence[PruneJob], settings: N2GSettings
) -> list[Pruned]:
    """Prune every job (see module docstring); returns one Pruned per job, in order."""
    neurons = sorted({j.neuron for j in jobs})
    col = {n: c for c, n in enumerate(neurons)}
    measure_full(runner, layer, jobs, neurons)
    lengths = [candidate_lengths(j.pivot, settings) for j in jobs]
    found: list[tuple[int, float, bool] | None] = [None] * len(jobs)
    last_seen: list[tuple[int, float]] = [(0, 0.0)] * len(jobs)
    lo, width = 0, settings.prune_chunk
    while True:
        asks: list[tuple[int, int]] = []  # (job index, length)
        for i in range(len(jobs)):
            if found[i] is None:
                asks.extend((i, n) for n in lengths[i][lo : lo + width])
        lo, width = lo + width, width * settings.prune_growth
        if not asks:
            break
        seqs = [jobs[i].ids[jobs[i].pivot + 1 - n : jobs[i].pivot + 1] for i, n in asks]
        acts = runner.activations(layer, seqs, neurons)
        for (i, n), a in zip(asks, acts, strict=False):
            if found[i] is not None:
                continue
            job = jobs[i]
            col_acts = a[:, col[job.neuron]]
            at_pivot = float(col_acts[-1])
            last_seen[i] = (n, at_pivot)
            full = job.full if job.full is not None else 0.0
            if at_pivot >= settings.prune_keep * full and at_pivot >= float(col_acts.max()):
                found[i] = (n, at_pivot, True)
    out = []
    for i, job in enumerate(jobs):
        hit = found[i]
        n, at_pivot, passed = hit if hit is not None else (*last_seen[i], False)
        start = job.pivot + 1 - n
        end = post_pivot_end(job.strings, job.pivot, settings.post_pivot_tokens)
        if settings.trim_post_context and job.post_fires is not None:
            fires = job.post_fires[: end - job.pivot - 1]
            end = job.pivot + 1 + (max((k + 1 for k, f in enumerate(fires) if f), default=0))
        out.append(
            Pruned(
                start, end, job.pivot - start, float(job.full or 0.0), at_pivot, passed, job.neuron
            )
        )
    return out
