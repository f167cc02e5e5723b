"""The reference code's pass schedule, for the benchmark (settings.pass_structure="reference").

Same steps as `build`, but run the way `apartresearch/Neuron2Graph` runs them (docs/N2G.md,
"Cost"): one neuron at a time, one example at a time, the model run through all its layers,
and these passes per training example:

1. the whole excerpt (to find the pivot and its full-context activation);
2. prefixes of 5, 10, … 30 tokens in batches of 4, until a batch holds a passing prefix;
3. saliency of the pruned prompt (L+1 rows);
4. the pruned prompt again (the augmenter's own baseline), then one batch of substitutes;
5. saliency again for every prompt the augmenter returns — the original (a duplicate of 3),
   each kept substitute and each rejected one — one call per prompt;

then every test top record is run again to get its activations (we read them from the store).
The reference also prunes once more for every other token of an excerpt within 75 % of its
maximum; this mode prunes only the maximum, so it *under*-counts the reference's cost.
The trie is built from the same lines, so quality can be compared too. Substitutes come from the
run's substitute sources (DistilBERT is offline-unavailable); their own cost is counted as in our
schedule.
"""

from __future__ import annotations

from neuronatlas.n2g import augment as aug
from neuronatlas.n2g import prune as prn
from neuronatlas.n2g import saliency as sal
from neuronatlas.n2g.build import NeuronBuild, _jobs, make_lines
from neuronatlas.n2g.examples import NeuronExamples
from neuronatlas.n2g.trie import Trie


def build_reference(session, ex: NeuronExamples, stored_full: bool = False) -> NeuronBuild:
    """One neuron's trie with the reference schedule (see module docstring)."""
    settings, runner, vocab = session.settings, session.runner, session.vocab
    layer, neuron, mask = ex.layer, ex.neuron, session.mask.token_id
    build = NeuronBuild(ex, Trie(settings.normalize_tokens, settings.aggregate))
    for job in _jobs([build], vocab, settings, stored_full=False):
        full_acts = runner.activations(layer, [job.ids], [neuron])[0][:, 0]  # pass 1
        job.full = float(full_acts[job.pivot])
        p = prn.prune(
            runner,
            layer,
            [prn.PruneJob(neuron, job.ids, job.strings, job.pivot, job.full)],
            settings,
        )[0]  # pass 2
        ids, strings = job.ids[p.start : p.end], job.strings[p.start : p.end]
        s = sal.measure(runner, layer, [(ids, neuron)], mask)[0]  # pass 3
        runner.activations(layer, [ids], [neuron])  # pass 4a: the augmenter's baseline
        positions = [
            k
            for k in range(p.pivot + 1)
            if s.importance[k, p.pivot] >= settings.important_for_augment
        ]
        res = aug.augment(
            runner,
            layer,
            [aug.AugmentRequest(ids, neuron, p.pivot, positions, float(s.clean[p.pivot]))],
            session.sources,
            settings.substitutes,
            settings.augment_keep,
        )[0]
        s_again = sal.measure(runner, layer, [(ids, neuron)], mask)[0]  # pass 5: duplicate
        build.used_examples += 1
        build.pruned_lengths.append(p.pivot + 1)
        for line, act, ev in make_lines(
            strings, s_again.clean, s_again.importance, p.scale, ex.a_max, settings, res.evidence()
        ):
            build.trie.insert(line, act, ev)
            build.lines += 1
        for sub in res.substitutes:  # pass 5: every returned prompt, kept or not
            row = list(ids)
            row[sub.position] = sub.token_id
            s_sub = sal.measure(runner, layer, [(row, neuron)], mask)[0]
            if not sub.kept:
                continue
            new_strings = list(strings)
            new_strings[sub.position] = vocab.strings[sub.token_id]
            for line, act, ev in make_lines(
                new_strings, s_sub.clean, s_sub.importance, p.scale, ex.a_max, settings
            ):
                build.trie.insert(line, act, ev)
                build.lines += 1
        build.substitutes_tried += len(res.substitutes)
        build.substitutes_kept += sum(x.kept for x in res.substitutes)
    for rec in ex.test:  # the reference re-runs its test excerpts
        if rec.category != "top":
            continue
        ids = vocab.to_ids(rec.tokens)
        if ids is not None:
            runner.activations(layer, [ids], [neuron])
    return build
