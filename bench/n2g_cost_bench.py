"""What an N2G batch costs, step by step: time per model token of pruning against time per
predicted token of the rest of the build (`n2g.build.finish_tokens`), and how well each unit a
progress bar could count (predicted build tokens, or neurons) foresees a batch's time.

Runs `n2g`'s own batches (random neurons of the layer, N2G's seed) through the session's
`prune` and `finish` and the evaluation, nothing written; the first batch is the warm-up and
is left out. The ratio it prints is `n2g.run.PRUNE_TOKENS_PER_BUILD_TOKEN`.

    PYTHONPATH=src .venv/bin/python bench/n2g_cost_bench.py --db ATLAS.db --layer 3 \\
        --skip 480 --batches 11
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from neuronatlas.n2g.build import finish_tokens
from neuronatlas.n2g.evaluate import evaluate
from neuronatlas.n2g.order import work_batches
from neuronatlas.n2g.predict import predict
from neuronatlas.n2g.run import buildable_examples, open_session
from neuronatlas.store import open_reader, reader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--layer", type=int, default=3)
    parser.add_argument("--skip", type=int, default=480, help="leave out the layer's first N")
    parser.add_argument("--batches", type=int, default=11, help="the first is the warm-up")
    parser.add_argument("--batch-neurons", type=int, default=16)
    args = parser.parse_args()

    conn = open_reader(args.db)
    prefix = f"L{args.layer:02d}"
    ids = [i for i in reader.neuron_ids(conn) if i.startswith(prefix)][args.skip :]
    session = open_session(args.db, device="cpu")
    settings, count = session.settings, session.runner.count
    rows = []
    for i, batch in enumerate(work_batches(ids, args.batch_neurons, settings.seed)[: args.batches]):
        examples = [buildable_examples(conn, nid, settings) for nid in batch.ids]
        started, tokens = time.perf_counter(), count.tokens
        pruned = session.prune(batch.layer, examples, True)
        prune_s, prune_tokens = time.perf_counter() - started, count.tokens - tokens
        predicted = sum(finish_tokens(session.runner, pruned, settings).values())
        started, tokens = time.perf_counter(), count.tokens
        for build in session.finish(batch.layer, examples, pruned, True):
            ex = build.examples
            guesses = [predict(build.trie, r.tokens, ex.a_max) for r in ex.test]
            test = [r.pair() for r in ex.test]
            train = [r.pair() for r in ex.train]
            evaluate(guesses, test, train, ex.a_max, settings.fire_threshold, settings.ngram)
        build_s, build_tokens = time.perf_counter() - started, count.tokens - tokens
        rows.append((prune_s, prune_tokens, build_s, build_tokens, predicted, len(examples)))
        print(
            f"batch {i}: prune {prune_s:5.1f} s, {prune_tokens:6,} tokens; build {build_s:5.1f} s,"
            f" {build_tokens:6,} tokens ({predicted:8,.0f} predicted)",
            flush=True,
        )
    a = np.array(rows[1:], dtype=float)
    prune_rate = a[:, 0].sum() / a[:, 1].sum()
    build_rate = a[:, 2].sum() / a[:, 4].sum()
    print(
        f"pruning {1000 * prune_rate:.3f} ms a token, the build {1000 * build_rate:.3f} ms a "
        f"predicted token: ratio {build_rate / prune_rate:.2f} "
        f"(PRUNE_TOKENS_PER_BUILD_TOKEN); pruning is "
        f"{a[:, 0].sum() / (a[:, 0].sum() + a[:, 2].sum()):.1%} of the time"
    )
    per_token = a[:, 2] / a[:, 4]
    per_neuron = a[:, 2] / a[:, 5]
    cv_token = per_token.std() / per_token.mean()
    cv_neuron = per_neuron.std() / per_neuron.mean()
    corr = np.corrcoef(a[:, 2], a[:, 4])[0, 1]
    print(
        "a batch's build seconds per unit, coefficient of variation over the batches: "
        f"per predicted token {cv_token:.2f}, per neuron {cv_neuron:.2f} "
        f"(ratio {cv_neuron / cv_token:.1f}x); correlation of build time with predicted tokens "
        f"{corr:.3f}"
    )


if __name__ == "__main__":
    main()
