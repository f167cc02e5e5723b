"""N2G benchmark: model tokens and seconds per neuron, our batched schedule vs the reference
code's pass schedule on the same neurons in the same run; and a quality table by layer (N2G F1
vs token-lookup F1 vs n-gram F1 on held-out records), plus prediction speed.

    python bench/n2g_bench.py --quick                 # offline default model (Gemma-3-270M)
    python bench/n2g_bench.py --db atlas.db           # an existing atlas (its model)

Without --db a small atlas of the model is built first (cached in --work): `--per-layer`
random neurons of every layer, their top-20 and 20 random 64-token windows of the offline
Wikipedia corpus (`--tokens` tokens), with the scraper's BOS rule. "Model tokens" are real
tokens fed to the model (BOS included, padding not); "token-layers" weigh each token by the
number of blocks it went through (our passes stop at the neuron's layer, the reference's do
not).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def build_bench_atlas(
    db: Path, model_spec: str, tokens: int, per_layer: int, seed: int, loaded
) -> list[str]:
    """A small atlas of `per_layer` random neurons per layer (see module docstring)."""
    import torch

    from neuronatlas.corpus import iter_windows, open_source, resolve_bos
    from neuronatlas.ids import format_id
    from neuronatlas.store import AtlasWriter, NeuronData, Record, prepare

    rng = random.Random(seed)
    chosen = {L: sorted(rng.sample(range(loaded.d_mlp), per_layer)) for L in range(loaded.n_layers)}
    policy = resolve_bos(loaded.tokenizer, "auto")
    source = open_source("default")
    windows = [
        w
        for _, w in iter_windows(
            source.documents(), loaded.tokenizer, 64, policy, stop=tokens // 64
        )
    ]
    acts = {L: [] for L in chosen}
    for at in range(0, len(windows), 16):
        batch = np.stack(windows[at : at + 16]).astype(np.int64)
        if policy.mode == "prepend":
            batch = np.concatenate([np.full((len(batch), 1), policy.bos_id), batch], axis=1)
        out = loaded.neuron_activations(torch.as_tensor(batch))
        skip = 1 if policy.mode == "prepend" else 0
        for L, cols in chosen.items():
            acts[L].append(out[L][:, skip:, cols].numpy())
    strings = [loaded.token_strings(w.tolist()) for w in windows]
    prepared, ids = [], []
    for L, cols in chosen.items():
        a_all = np.concatenate(acts[L])  # [W, 64, per_layer]
        for c, n in enumerate(cols):
            a = a_all[:, :, c]
            top = np.argsort(-a.max(axis=1), kind="stable")[:20]
            rand = rng.sample(range(len(windows)), 20)
            recs = {
                "top": [Record(strings[i], a[i].tolist()) for i in top],
                "random": [Record(strings[i], a[i].tolist()) for i in rand],
            }
            flat = a.ravel()
            prepared.append(
                prepare(
                    NeuronData(
                        layer=L,
                        neuron=n,
                        source="scrape",
                        records=recs,
                        mean=float(flat.mean()),
                        variance=float(flat.var()),
                    )
                )
            )
            ids.append(format_id(L, n))
    with AtlasWriter(db) as w:
        w.set_meta(
            {
                "model_id": loaded.name,
                "model_path": model_spec,
                "bos_policy": json.dumps(policy.describe()),
                "tokens": str(tokens),
            }
        )
        w.write_neurons(prepared)
    return ids


def cost_run(session, conn, ids: list[str], per_layer_batches: bool) -> dict:
    """Build the given neurons with a session; model tokens and seconds per neuron."""
    from neuronatlas.ids import parse_id
    from neuronatlas.n2g.evaluate import evaluate
    from neuronatlas.n2g.examples import load_examples
    from neuronatlas.n2g.predict import predict

    before = session.runner.count.snapshot()
    started = time.perf_counter()
    by_layer: dict[int, list] = {}
    for nid in ids:
        ex = load_examples(conn, nid, session.settings)
        if ex.a_max > 0 and ex.build:
            by_layer.setdefault(parse_id(nid)[0], []).append(ex)
    builds = []
    for layer, exs in by_layer.items():
        if per_layer_batches:
            builds += session.build(layer, exs, stored_full=True)
        else:
            builds += session.build(layer, exs, stored_full=False)
    seconds = time.perf_counter() - started
    after = session.runner.count.snapshot()
    n = max(1, len(builds))
    f1s = []
    for b in builds:
        ex = b.examples
        ev = evaluate(
            [predict(b.trie, r.tokens, ex.a_max) for r in ex.test],
            [r.pair() for r in ex.test],
            [r.pair() for r in ex.train],
            ex.a_max,
            session.settings.fire_threshold,
            session.settings.ngram,
        )
        if ev.f1 is not None:
            f1s.append(ev.f1)
    return {
        "neurons": len(builds),
        "tokens_per_neuron": (after["tokens"] - before["tokens"]) / n,
        "token_layers_per_neuron": (after["token_layers"] - before["token_layers"]) / n,
        "passes_per_neuron": (after["passes"] - before["passes"]) / n,
        "seconds_per_neuron": seconds / n,
        "mean_f1": statistics.fmean(f1s) if f1s else None,
    }


def quality(db: Path, ids: list[str], session) -> tuple[list[dict], dict]:
    """Run our stage on every neuron, then the metrics by layer and prediction speed."""
    from neuronatlas.n2g.api import load_trie
    from neuronatlas.n2g.predict import predict
    from neuronatlas.n2g.run import run_n2g
    from neuronatlas.store import n2g as store
    from neuronatlas.store import open_reader, reader

    report = run_n2g(db, neurons=ids, overwrite=True, session=session)
    conn = open_reader(db)
    rows = [m for m in store.all_metrics(conn) if m.neuron_id in set(report.done)]
    table = []
    for layer in sorted({m.layer for m in rows}):
        sel = [m for m in rows if m.layer == layer]

        def mean(key, sel=sel):
            vals = [v for m in sel if (v := getattr(m.metrics, key)) is not None]
            return statistics.fmean(vals) if vals else None

        table.append(
            {
                "layer": layer,
                "neurons": len(sel),
                "n2g_f1": mean("f1"),
                "token_f1": mean("baseline_token_f1"),
                "ngram_f1": mean("baseline_ngram_f1"),
                "ev_correlation": mean("ev_correlation_score"),
            }
        )
    n_tok, started = 0, time.perf_counter()
    for nid in report.done:
        trie, a_max = load_trie(conn, nid)
        for recs in reader.records(conn, nid).values():
            for r in recs:
                predict(trie, r.tokens, a_max)
                n_tok += len(r.tokens)
    pred_s = time.perf_counter() - started
    speed = {
        "graphs": len(report.done),
        "tokens": n_tok,
        "seconds": pred_s,
        "tokens_per_second": n_tok / pred_s if pred_s else None,
        "skipped": report.failed,
        "run_seconds": report.seconds,
    }
    return table, speed


def print_cost(sample: list[str], ours: dict, ref: dict) -> None:
    def ratio(key):
        return ref[key] / ours[key] if ours[key] else float("inf")

    print(f"\nCost on {ours['neurons']} neurons ({', '.join(sample)}):")
    print(f"{'':24}{'ours':>12}{'reference':>12}{'ratio':>8}")
    for key in (
        "tokens_per_neuron",
        "token_layers_per_neuron",
        "passes_per_neuron",
        "seconds_per_neuron",
    ):
        print(f"{key:24}{ours[key]:12.1f}{ref[key]:12.1f}{ratio(key):8.1f}x")
    print(f"{'mean F1 (held out)':24}{ours['mean_f1'] or 0:12.3f}{ref['mean_f1'] or 0:12.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, help="existing atlas (default: build one in --work)")
    ap.add_argument(
        "--model",
        default=None,
        help="model spec (default: the atlas's, or 'default' when building)",
    )
    ap.add_argument("--work", type=Path, default=Path("/tmp/n2g_bench"))
    ap.add_argument("--tokens", type=int, default=32768)
    ap.add_argument("--per-layer", type=int, default=4)
    ap.add_argument("--ref-neurons", type=int, default=4)
    ap.add_argument(
        "--quick", action="store_true", help="--tokens 16384 --per-layer 2 --ref-neurons 2"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--pivots",
        choices=("max", "firing"),
        default="max",
        help="our schedule's pivots per record (see N2GSettings.pivots)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.tokens, args.per_layer, args.ref_neurons = 16384, 2, 2

    from neuronatlas.models import load_model
    from neuronatlas.n2g.run import Session, model_spec, prepend_bos, select_neurons
    from neuronatlas.n2g.settings import N2GSettings, reference_settings
    from neuronatlas.store import open_reader, reader

    t0 = time.perf_counter()
    if args.db is None:
        args.work.mkdir(parents=True, exist_ok=True)
        db = args.work / f"atlas-{args.tokens}-{args.per_layer}-{args.seed}.db"
        spec = args.model or "default"
        loaded = load_model(spec)
        if not db.exists():
            build_bench_atlas(db, spec, args.tokens, args.per_layer, args.seed, loaded)
    else:
        db = args.db
        spec = model_spec(reader.meta(open_reader(db)), args.model)
        loaded = load_model(spec)
    conn = open_reader(db)
    meta = reader.meta(conn)
    ids = select_neurons(conn, None, None, True)
    bos = prepend_bos(meta, loaded.tokenizer)
    print(
        f"atlas {db}: {len(ids)} neurons of {loaded.name} ({loaded.n_layers} layers); "
        f"ready in {time.perf_counter() - t0:.0f}s",
        file=sys.stderr,
    )

    # cost: same neurons, same run, both schedules
    rng = random.Random(args.seed)
    sample = sorted(rng.sample(ids, min(args.ref_neurons, len(ids))))
    cost_ours = cost_ref = None
    if sample:  # --ref-neurons 0 skips the cost comparison
        ours = Session(loaded, N2GSettings(pivots=args.pivots), bos)
        ref = Session(loaded, reference_settings(pass_structure="reference"), bos)
        cost_ours = cost_run(ours, conn, sample, per_layer_batches=True)
        cost_ref = cost_run(ref, conn, sample, per_layer_batches=False)
        print_cost(sample, cost_ours, cost_ref)
    table, speed = quality(db, ids, Session(loaded, N2GSettings(pivots=args.pivots), bos))
    print("\nQuality by layer (mean per-neuron F1 of firing tokens on held-out top+random):")
    print(f"{'layer':>5}{'neurons':>8}{'N2G':>8}{'token':>8}{'n-gram':>8}{'ev_corr':>9}")
    for row in table:
        cells = [row[k] for k in ("n2g_f1", "token_f1", "ngram_f1", "ev_correlation")]
        print(
            f"{row['layer']:>5}{row['neurons']:>8}"
            + "".join(f"{'—' if v is None else f'{v:.3f}':>8}" for v in cells[:3])
            + f"{'—' if cells[3] is None else f'{cells[3]:.3f}':>9}"
        )
    allf = [r for r in table if r["n2g_f1"] is not None and r["token_f1"] is not None]
    if allf:
        w = sum(r["neurons"] for r in allf)
        n2g = sum(r["n2g_f1"] * r["neurons"] for r in allf) / w
        tok = sum(r["token_f1"] * r["neurons"] for r in allf) / w
        print(f"{'all':>5}{w:>8}{n2g:8.3f}{tok:8.3f}   (N2G − token = {n2g - tok:+.3f})")
    print(
        f"\nPrediction: {speed['graphs']} graphs over all their stored records, "
        f"{speed['tokens']} tokens in {speed['seconds']:.2f}s "
        f"({speed['tokens_per_second']:.0f} tokens/s); stage run {speed['run_seconds']:.0f}s; "
        f"skipped {len(speed['skipped'])}"
    )
    print(
        json.dumps(
            {
                "cost_ours": cost_ours,
                "cost_reference": cost_ref,
                "quality": table,
                "prediction": {k: v for k, v in speed.items() if k != "skipped"},
            }
        ),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
