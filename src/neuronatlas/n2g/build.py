"""Build the tries of many neurons of one layer: prune → saliency → augment → lines → trie.

Each step is one batched set of passes for all examples of all neurons given (see
forward.Runner), so an excerpt several neurons share is run once and every pass stops at the
layer. Lines follow docs/N2G.md step 5: every token of a (pruned or augmented) example whose
normalised activation (activation × scale / a_max) exceeds `activation_threshold` starts a
line; walking left, a token more important than `importance_threshold` for that position is
kept, a less important one becomes a wildcard, and the line stops at the last important token.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from neuronatlas.n2g import augment as aug
from neuronatlas.n2g import prune as prn
from neuronatlas.n2g import saliency as sal
from neuronatlas.n2g.calibrate import calibrate
from neuronatlas.n2g.examples import NeuronExamples
from neuronatlas.n2g.forward import Runner
from neuronatlas.n2g.settings import N2GSettings
from neuronatlas.n2g.trie import WILDCARD, Trie

log = logging.getLogger(__name__)


@dataclass
class NeuronBuild:
    """A neuron's trie and how it was made."""

    examples: NeuronExamples
    trie: Trie
    used_examples: int = 0
    skipped_examples: int = 0
    lines: int = 0
    substitutes_tried: int = 0
    substitutes_kept: int = 0
    pruned_lengths: list[int] = field(default_factory=list)
    sources: list[LineSource] = field(default_factory=list)
    """What the lines were made from (kept so a trie can be assembled again with other
    line settings without a model pass: see `assemble`)."""


@dataclass
class LineSource:
    """One pruned (or augmented) example: its tokens, clean activations, importances."""

    strings: list[str]
    clean: np.ndarray
    importance: np.ndarray
    scale: float
    evidence: dict[int, tuple[int, int]] | None = None


def make_lines(
    strings: Sequence[str],
    clean: np.ndarray,
    importance: np.ndarray,
    scale: float,
    a_max: float,
    settings: N2GSettings,
    evidence: dict[int, tuple[int, int]] | None = None,
) -> list[tuple[list[tuple[str, float]], float, list[tuple[int, int]]]]:
    """(line, normalised activation, per-item evidence) for every activating position."""
    out = []
    evidence = evidence or {}
    for j in range(len(strings)):
        norm = float(clean[j]) * scale / a_max
        if norm <= settings.activation_threshold:
            continue
        col = importance[:, j]
        important = [k for k in range(j) if col[k] > settings.importance_threshold]
        line = [(strings[j], float(col[j]))]
        ev = [evidence.get(j, (0, 0))]
        if important:
            for k in range(j - 1, min(important) - 1, -1):
                keep = col[k] > settings.importance_threshold
                line.append((strings[k] if keep else WILDCARD, float(col[k])))
                ev.append(evidence.get(k, (0, 0)) if keep else (0, 0))
        out.append((line, norm, ev))
    return out


@dataclass
class _Job:
    build: NeuronBuild
    ids: list[int]
    strings: list[str]
    pivot: int
    full: float | None
    post_fires: list[bool]


def _jobs(
    builds: Sequence[NeuronBuild],
    vocab,
    settings: N2GSettings,
    stored_full: bool,
    say_skips: bool = False,
) -> list[_Job]:
    """Prune jobs: one per pivot. pivots="max": the record's most activating token; "firing":
    every token above the trie threshold (each then needs no post-pivot context, since every
    firing token after it is a pivot of its own). The same examples always give the same jobs
    in the same order: `finish_layer` remakes them to pair with `prune_layer`'s results."""
    jobs = []
    for b in builds:
        ex = b.examples
        limit = settings.activation_threshold * ex.a_max
        for rec in ex.build:
            peak, top = rec.peak
            if top < 0 or peak <= limit:
                continue
            ids = vocab.to_ids(rec.tokens)
            if ids is None:
                b.skipped_examples += 1
                if say_skips:
                    log.info(
                        "%s: a %s record has tokens this tokenizer cannot map back exactly",
                        ex.neuron_id,
                        rec.category,
                    )
                continue
            if settings.pivots == "firing":
                pivots = [i for i, a in enumerate(rec.acts) if a is not None and a > limit]
            else:
                pivots = [top]
            for pivot in pivots:
                if settings.pivots == "firing":
                    post = [False] * (len(rec.acts) - pivot - 1)
                else:
                    post = [a is not None and a > limit for a in rec.acts[pivot + 1 :]]
                full = rec.acts[pivot] if stored_full else None
                jobs.append(_Job(b, ids, rec.tokens, pivot, full, post))
    return jobs


def _new_builds(examples: Sequence[NeuronExamples], layer: int, settings: N2GSettings):
    if any(ex.layer != layer for ex in examples):
        raise ValueError("n2g: all neurons of a batch must belong to the layer given")
    return [NeuronBuild(ex, Trie(settings.normalize_tokens, settings.aggregate)) for ex in examples]


def prune_layer(
    runner: Runner,
    layer: int,
    examples: Sequence[NeuronExamples],
    vocab,
    settings: N2GSettings,
    stored_full: bool,
) -> list[prn.Pruned]:
    """The first step of `build_layer` alone: every example of these neurons (all of `layer`)
    pruned, in `_jobs` order. Split off so a run can prune many neurons before building any
    and learn what the build will cost (`finish_tokens`)."""
    jobs = _jobs(_new_builds(examples, layer, settings), vocab, settings, stored_full, True)
    if not jobs:
        return []
    return prn.prune(
        runner,
        layer,
        [
            prn.PruneJob(j.build.examples.neuron, j.ids, j.strings, j.pivot, j.full, j.post_fires)
            for j in jobs
        ],
        settings,
    )


#: Mean number of positions `augment` tries substitutes at per pruned example: 1.6 on the demo
#: atlas's 480 graphs of layer 3 (8.2 substitutes tried per example, 5 per position).
AUGMENT_POSITIONS = 1.6


def finish_tokens(
    runner: Runner, pruned: Sequence[prn.Pruned], settings: N2GSettings
) -> dict[int, float]:
    """Model tokens `finish_layer` will feed for each neuron (by its index in the layer),
    predicted from its pruned examples: for an example cut to L tokens, saliency runs L + 1
    rows of L tokens (exactly) and augmentation about AUGMENT_POSITIONS × `substitutes` rows,
    each row with its BOS if the runner adds one. The runner runs a row that several examples
    share once, so the build may feed fewer. How long a neuron takes follows this, not the
    neuron count: a neuron's pruned contexts make its cost vary 20-fold (bench/README.md,
    "A neuron bar's time left")."""
    bos = 0 if runner.bos is None else 1
    rows = AUGMENT_POSITIONS * settings.substitutes
    out: dict[int, float] = {}
    for p in pruned:
        n = p.end - p.start
        out[p.neuron] = out.get(p.neuron, 0.0) + (n + 1 + rows) * (n + bos)
    return out


def finish_layer(
    runner: Runner,
    layer: int,
    examples: Sequence[NeuronExamples],
    pruned: Sequence[prn.Pruned],
    vocab,
    sources: Sequence[aug.SubstituteSource],
    mask: sal.MaskChoice,
    settings: N2GSettings,
    stored_full: bool,
) -> list[NeuronBuild]:
    """The steps of `build_layer` after pruning (saliency → augment → lines → trie), from
    `prune_layer`'s results for the same examples."""
    builds = _new_builds(examples, layer, settings)
    jobs = _jobs(builds, vocab, settings, stored_full)
    if len(jobs) != len(pruned):
        raise ValueError(f"finish_layer: {len(pruned)} pruned examples for {len(jobs)} jobs")
    if not jobs:
        return builds
    cut = [
        (j.ids[p.start : p.end], j.strings[p.start : p.end])
        for j, p in zip(jobs, pruned, strict=True)
    ]
    saliencies = sal.measure(
        runner,
        layer,
        [(ids, j.build.examples.neuron) for (ids, _), j in zip(cut, jobs, strict=False)],
        mask.token_id,
    )
    requests = []
    for (ids, _), j, p, s in zip(cut, jobs, pruned, saliencies, strict=False):
        positions = [
            k
            for k in range(p.pivot + 1)
            if s.importance[k, p.pivot] >= settings.important_for_augment
        ]
        requests.append(
            aug.AugmentRequest(
                ids, j.build.examples.neuron, p.pivot, positions, float(s.clean[p.pivot])
            )
        )
    results = aug.augment(
        runner, layer, requests, sources, settings.substitutes, settings.augment_keep
    )
    extra = _augmented_saliency(runner, layer, requests, results, saliencies, mask, settings)
    for (_, strings), j, p, s, res, ext in zip(
        cut, jobs, pruned, saliencies, results, extra, strict=False
    ):
        b = j.build
        b.used_examples += 1
        b.pruned_lengths.append(p.pivot + 1)
        b.sources.append(LineSource(strings, s.clean, s.importance, p.scale, res.evidence()))
        for sub, imp in zip([x for x in res.substitutes if x.kept], ext, strict=False):
            new_strings = list(strings)
            new_strings[sub.position] = vocab.strings[sub.token_id]
            b.sources.append(LineSource(new_strings, sub.activations, imp, p.scale))
        b.substitutes_tried += len(res.substitutes)
        b.substitutes_kept += sum(x.kept for x in res.substitutes)
    for b in builds:
        assemble(b, settings)
    return builds


def build_layer(
    runner: Runner,
    layer: int,
    examples: Sequence[NeuronExamples],
    vocab,
    sources: Sequence[aug.SubstituteSource],
    mask: sal.MaskChoice,
    settings: N2GSettings,
    stored_full: bool,
) -> list[NeuronBuild]:
    """Build every given neuron's trie (all neurons must be in `layer`): prune, then the rest."""
    pruned = prune_layer(runner, layer, examples, vocab, settings, stored_full)
    return finish_layer(
        runner, layer, examples, pruned, vocab, sources, mask, settings, stored_full
    )


def assemble(build: NeuronBuild, settings: N2GSettings) -> Trie:
    """(Re)build the neuron's trie from its line sources under `settings`' line choices
    (activation and importance thresholds, key normalisation, END aggregation), then calibrate
    its ENDs on the neuron's train records (settings.calibrate; see n2g.calibrate)."""
    trie = Trie(settings.normalize_tokens, settings.aggregate)
    lines = 0
    ex = build.examples
    a_max = ex.a_max
    for src in build.sources:
        for line, act, ev in make_lines(
            src.strings, src.clean, src.importance, src.scale, a_max, settings, src.evidence
        ):
            trie.insert(line, act, ev)
            lines += 1
    calibrate(
        trie,
        [r.pair() for r in ex.train],
        a_max,
        settings.calibrate,
        settings.fire_threshold,
        settings.calibrate_min_precision,
    )
    build.trie, build.lines = trie, lines
    return trie


def _augmented_saliency(
    runner: Runner,
    layer: int,
    requests,
    results,
    saliencies,
    mask: sal.MaskChoice,
    settings: N2GSettings,
) -> list[list[np.ndarray]]:
    """Importance matrices of each request's kept substitutes.

    reuse: the original's matrix stands for every kept substitute (one token differs; the
    substitute takes the original token's importance). recompute: measured again, as the
    reference does (L+1 more rows per kept substitute).
    """
    if settings.augment_saliency != "recompute":
        return [
            [s.importance for sub in res.substitutes if sub.kept]
            for res, s in zip(results, saliencies, strict=False)
        ]
    todo = []
    for r, res in zip(requests, results, strict=False):
        for sub in res.substitutes:
            if sub.kept:
                row = list(r.ids)
                row[sub.position] = sub.token_id
                todo.append((row, r.neuron))
    measured = iter(sal.measure(runner, layer, todo, mask.token_id)) if todo else iter(())
    return [[next(measured).importance for sub in res.substitutes if sub.kept] for res in results]
