"""N2G quality against lookup baselines under the evaluation protocol (docs/N2G.md).

    python bench/n2g_quality.py --quick            # small: 10 neurons per third, 1 seed
    python bench/n2g_quality.py                    # 40 per third, seeds 0 1 2

One run: windows of whole documents (offline Wikipedia lead sections plus Python standard
library source, `--code-share` of the documents), the activations of `--per-layer` random
neurons of every layer; per split seed, documents are split train/validation/test, each neuron
gets its train records and its test sets (A: held-out top windows, B: held-out random
windows, the same for every neuron), N2G is built from the train records (one build per
`--builds` entry), every line-setting variant is scored on the validation split, the best
variant (by validation mean F1 on A) is frozen and only then scored on the test sets beside
every baseline (fitted on exactly the same train records). Prints the validation A/B table,
the test table per third of layers, paired bootstrap CIs and Wilcoxon p-values. Activations
and builds are cached in --work, so a rerun with other variants costs no model pass.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import random
import sys
import sysconfig
import time
from dataclasses import asdict
from pathlib import Path

BUILDS = {
    "default": {},
    "firing": {"pivots": "firing"},
    "min5": {"min_context": 5},
    "nosubs": {"substitutes": 0},
    "firing_nosubs": {"pivots": "firing", "substitutes": 0},
    "firing_nosubs_min5": {"pivots": "firing", "substitutes": 0, "min_context": 5},
    # an in-distribution mask: a token the model sees everywhere, not a never-seen <pad>
    "firing_nosubs_mask_the": {"pivots": "firing", "substitutes": 0, "mask_text": " the"},
}
LINE_VARIANTS = {
    "as_built": {},
    "calib_mean": {"calibrate": "mean"},
    "calib_precision": {"calibrate": "precision"},
    "imp0.5+calib_mean": {"importance_threshold": 0.5, "calibrate": "mean"},
    "imp0.9+calib_mean": {"importance_threshold": 0.9, "calibrate": "mean"},
    "exact+calib_mean": {"normalize_tokens": "none", "calibrate": "mean"},
    "max+calib_mean": {"aggregate": "max", "calibrate": "mean"},
}


def documents(code_share: float, seed: int, max_code_chars: int):
    """(kind, text): Wikipedia extracts with Python stdlib files mixed in, seeded order."""
    from neuronatlas.corpus import open_source

    wiki = [("wiki", t) for t in open_source("default").documents()]
    code = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")[:max_code_chars]
        if text.strip():
            code.append(("python", text))
    rng = random.Random(seed)
    rng.shuffle(wiki)
    rng.shuffle(code)
    n_code = min(len(code), round(code_share / max(1e-9, 1 - code_share) * len(wiki)))
    docs = wiki + code[:n_code]
    rng.shuffle(docs)
    return docs, n_code


def cached(path: Path, make):
    if path.exists():
        with path.open("rb") as f:
            return pickle.load(f)
    value = make()
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        pickle.dump(value, f)
    tmp.replace(path)
    return value


def key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def third(layer: int, n_layers: int) -> int:
    return min(2, layer * 3 // n_layers)


def scores_for(sets, predictions, names):
    """{set name: {method: NeuronScore}} for one neuron (firing at 0.5 × train a_max)."""
    from neuronatlas.n2g.evaluate import score_neuron

    out = {}
    for name in names:
        recs = sets.sets[name]
        truth = [r.acts for r in recs]
        out[name] = {
            m: score_neuron(truth, [fn(r.tokens) for r in recs], 0.5 * sets.a_max)
            for m, fn in predictions.items()
        }
    return out


def n2g_predictor(build, settings):
    """The neuron's trie assembled (and calibrated on its train records) under `settings`."""
    from neuronatlas.n2g.build import assemble
    from neuronatlas.n2g.predict import predict

    trie = assemble(build, settings)
    a_max = build.examples.a_max
    return lambda toks, trie=trie: predict(trie, toks, a_max)


def fmt(v, width=8, digits=3):
    return f"{'—' if v is None else f'{v:.{digits}f}':>{width}}"


def print_summary(title, per_method):
    from neuronatlas.n2g.evaluate import summarize

    print(f"\n{title}")
    cols = ("mean_f1", "median_f1", "pooled_f1", "pooled_precision", "pooled_recall")
    cols += ("mean_precision", "mean_recall", "mean_auprc", "mean_ev_correlation")
    heads = ("meanF1", "medF1", "poolF1", "poolP", "poolR", "meanP", "meanR", "AUPRC", "ev_corr")
    print(f"{'method':28}{'n':>5}" + "".join(f"{h:>8}" for h in heads))
    for method, scores in per_method.items():
        s = summarize(scores)
        print(f"{method:28}{s['scored']:>5}" + "".join(fmt(s[c]) for c in cols))


def print_reach(reaches, report) -> None:
    """What any method firing only on train firing tokens can reach on test A, per third."""
    print("\n=== test A: reach from the train records (mean over (seed, neuron)) ===")
    print(f"{'layers':14}{'n':>5}{'firing':>8}{'reachable':>11}{'unseen':>9}{'ceiling F1':>12}")
    for label, sel in (("all", {0, 1, 2}), ("first third", {0}), ("middle", {1}), ("last", {2})):
        rs = [r for t, r in reaches if t in sel and r.firing]
        if not rs:
            continue
        row = {
            "neurons": len(rs),
            "firing": sum(r.firing for r in rs) / len(rs),
            "reachable": sum(r.reachable / r.firing for r in rs) / len(rs),
            "unseen": sum(r.unseen / r.firing for r in rs) / len(rs),
            "ceiling_f1": sum(r.ceiling_f1 for r in rs) / len(rs),
        }
        report.setdefault("reach", {})[label] = row
        print(
            f"{label:14}{row['neurons']:>5}{row['firing']:>8.1f}{row['reachable']:>11.3f}"
            f"{row['unseen']:>9.3f}{row['ceiling_f1']:>12.3f}"
        )


def build_settings(bname: str, tokenizer, **line):
    """A build's N2G settings (with a line variant's). `mask_text` names the masking token by
    its text, since token ids differ per tokenizer; it must be one token."""
    from neuronatlas.n2g.settings import N2GSettings

    spec = dict(BUILDS[bname])
    text = spec.pop("mask_text", None)
    if text is not None:
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise SystemExit(f"build {bname}: mask text {text!r} is {len(ids)} tokens, not one")
        spec["mask_token"] = ids[0]
    return N2GSettings(**spec, **line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--work", type=Path, default=Path("/tmp/n2g_quality"))
    ap.add_argument("--tokens", type=int, default=16384, help="corpus tokens scraped")
    ap.add_argument("--context", type=int, default=32)
    ap.add_argument("--code-share", type=float, default=0.1)
    ap.add_argument("--per-layer", type=int, default=6, help="candidate neurons per layer")
    ap.add_argument("--min-per-third", type=int, default=40)
    ap.add_argument(
        "--cap-per-third", type=int, default=0, help="score at most this many neurons per third"
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--builds", nargs="+", default=["default"], choices=sorted(BUILDS))
    ap.add_argument("--variants", nargs="+", default=list(LINE_VARIANTS))
    ap.add_argument("--train-top", type=int, default=10)
    ap.add_argument("--train-quantiles", type=int, default=0)
    ap.add_argument("--train-random", type=int, default=20)
    ap.add_argument("--eval-top", type=int, default=20)
    ap.add_argument("--eval-random", type=int, default=100)
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="--min-per-third 10 --cap-per-third 10 --seeds 0 (same scrape as the full run)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.min_per_third, args.cap_per_third, args.seeds = 10, 10, [0]
    unknown = [v for v in args.variants if v not in LINE_VARIANTS]
    if unknown:
        ap.error(f"unknown --variants {unknown}: choose from {list(LINE_VARIANTS)}")

    from neuronatlas.ids import format_id
    from neuronatlas.models import load_model
    from neuronatlas.n2g.evaluate import baselines, paired_comparison, reach
    from neuronatlas.n2g.protocol import RecordPlan, neuron_sets, shared_random, split_documents
    from neuronatlas.n2g.run import Session

    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    loaded = load_model(args.model)
    from neuronatlas.corpus import resolve_bos

    bos_policy = resolve_bos(loaded.tokenizer, "auto")
    bos = bos_policy.bos_id if bos_policy.mode == "prepend" else None
    rng = random.Random(0)
    neurons = {
        layer: sorted(rng.sample(range(loaded.d_mlp), args.per_layer))
        for layer in range(loaded.n_layers)
    }
    data_key = key(loaded.name, args.tokens, args.context, args.code_share, neurons)

    def scrape():
        from neuronatlas.n2g.protocol import document_windows, window_activations

        docs, _ = documents(args.code_share, 0, 6000)
        windows = document_windows(
            docs, loaded.tokenizer, loaded.record_strings, args.context, args.tokens
        )
        started = time.perf_counter()

        def tell(done, total):
            if done == total or done % 320 == 0:
                print(
                    f"  scraped {done}/{total} windows {time.perf_counter() - started:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )

        acts = window_activations(loaded, windows, neurons, bos, progress=tell)
        return windows, acts

    windows, acts = cached(args.work / f"acts-{data_key}.pkl", scrape)
    kinds = {k: windows.kinds.count(k) for k in set(windows.kinds)}
    print(
        f"{len(windows)} windows of {windows.n_docs} documents {kinds}, "
        f"{sum(map(len, windows.ids))} tokens; activations ready "
        f"{time.perf_counter() - t0:.0f}s",
        file=sys.stderr,
    )
    plan = RecordPlan(
        args.train_top, args.train_quantiles, args.train_random, args.eval_top, args.eval_random
    )
    memo: dict = {}  # forward passes shared by every seed and build (see forward.Runner)
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "seeds": {}}
    pooled_test: dict[str, dict] = {}  # set → method → [(third, NeuronScore)]
    reaches: list = []  # (third, Reach of test A from the train records) per (seed, neuron)
    for seed in args.seeds:
        side = split_documents(windows.n_docs, seed)
        rand = shared_random(side, windows, max(args.train_random, args.eval_random), seed)
        chosen = []
        for layer, ns in neurons.items():
            for n in ns:
                s = neuron_sets(
                    format_id(layer, n), layer, n, acts[(layer, n)], windows, side, rand, plan
                )
                if s.a_max > 0 and s.firing_tokens("test_A") >= 5:
                    chosen.append(s)
        if args.cap_per_third:
            pick = random.Random(seed)
            kept = []
            for t in range(3):
                here = [c for c in chosen if third(c.layer, loaded.n_layers) == t]
                kept += pick.sample(here, min(args.cap_per_third, len(here)))
            chosen = sorted(kept, key=lambda c: (c.layer, c.neuron))
        per_third = [sum(third(s.layer, loaded.n_layers) == t for s in chosen) for t in range(3)]
        print(f"seed {seed}: {len(chosen)} neurons qualify, per third {per_third}", file=sys.stderr)
        if min(per_third) < args.min_per_third:
            print(
                f"  fewer than --min-per-third {args.min_per_third} in some third: "
                "raise --per-layer or --tokens",
                file=sys.stderr,
            )
        builds = {}
        for bname in args.builds:
            settings = build_settings(bname, loaded.tokenizer)
            bkey = key(data_key, seed, plan, asdict(settings))

            path = args.work / f"build-{bkey}.pkl"
            have = cached(path, dict)  # neuron id → build, grown as runs ask for more
            if isinstance(have, list):
                have = {b.examples.neuron_id: b for b in have}
            todo = [s for s in chosen if s.neuron_id not in have]
            if todo:
                sess = Session(loaded, settings, bos is not None)
                sess.runner.memo = memo
                started = time.perf_counter()
                for layer in sorted({s.layer for s in todo}):
                    exs = [s.examples(settings.activation_threshold) for s in todo]
                    exs = [e for e in exs if e.build and e.layer == layer]
                    for b in sess.build(layer, exs, stored_full=True) if exs else []:
                        b.trie = None  # re-assembled per variant
                        have[b.examples.neuron_id] = b
                print(
                    f"  build {bname}: {len(todo)} neurons in {time.perf_counter() - started:.0f}s",
                    file=sys.stderr,
                )
                with path.with_suffix(".tmp").open("wb") as f:
                    pickle.dump(have, f)
                path.with_suffix(".tmp").replace(path)
            builds[bname] = have
        # validation: every (build, line variant) pair
        # (neurons scored on validation: ≥ 5 firing tokens in validation A, as on test)
        on_val = [s for s in chosen if s.firing_tokens("validation_A") >= 5]
        val: dict[str, dict] = {}
        for m in ("token_max", "token_rate"):
            val[f"baseline/{m}"] = {"validation_A": [], "validation_B": []}
        for s in on_val:
            fitted = baselines([r.pair() for r in s.train], s.a_max)
            sc = scores_for(
                s,
                {m: fitted[m].predict for m in ("token_max", "token_rate")},
                ("validation_A", "validation_B"),
            )
            for m in ("token_max", "token_rate"):
                for setname in ("validation_A", "validation_B"):
                    val[f"baseline/{m}"][setname].append(sc[setname][m])
        for bname, bmap in builds.items():
            for vname in args.variants:
                settings = build_settings(bname, loaded.tokenizer, **LINE_VARIANTS[vname])
                name = f"{bname}/{vname}"
                val[name] = {"validation_A": [], "validation_B": []}
                for s in on_val:
                    b = bmap.get(s.neuron_id)
                    if b is None:
                        continue
                    pred = n2g_predictor(b, settings)
                    sc = scores_for(s, {"n2g": pred}, ("validation_A", "validation_B"))
                    for setname in val[name]:
                        val[name][setname].append(sc[setname]["n2g"])
        from neuronatlas.n2g.evaluate import summarize

        best = max(
            (n for n in val if not n.startswith("baseline/")),
            key=lambda n: summarize(val[n]["validation_A"])["mean_f1"] or -1,
        )
        print(f"\n=== seed {seed}: validation (A/B choose the frozen N2G settings) ===")
        for setname in ("validation_A", "validation_B"):
            print_summary(setname, {n: v[setname] for n, v in val.items()})
        print(f"chosen on validation: {best}")
        bname, vname = best.split("/", 1)
        frozen = build_settings(bname, loaded.tokenizer, **LINE_VARIANTS[vname])
        # test: frozen N2G and every baseline, same train records
        test = {"test_A": {}, "test_B": {}}
        for s in chosen:
            b = builds[bname].get(s.neuron_id)
            if b is None:
                continue
            train_pairs = [r.pair() for r in s.train]
            held = [r.pair() for r in s.sets["test_A"]]
            reaches.append((third(s.layer, loaded.n_layers), reach(train_pairs, held, s.a_max)))
            preds = {"n2g": n2g_predictor(b, frozen)}
            for m, model in baselines(train_pairs, s.a_max, 0.5, frozen.normalize_tokens).items():
                preds[m] = model.predict
            sc = scores_for(s, preds, ("test_A", "test_B"))
            t = third(s.layer, loaded.n_layers)
            for setname in test:
                for m, v in sc[setname].items():
                    test[setname].setdefault(m, []).append((t, v))
                    pooled_test.setdefault(setname, {}).setdefault(m, []).append((t, v))
        report["seeds"][seed] = {"chosen": best, "per_third": per_third}
        for setname, methods in test.items():
            print_summary(
                f"seed {seed} {setname} (frozen {best})",
                {m: [v for _, v in x] for m, x in methods.items()},
            )
    # all seeds pooled over (seed, neuron): per third and overall, CIs against each baseline
    print("\n=== test, all seeds: N2G − baseline, paired over (seed, neuron) ===")
    for setname, methods in pooled_test.items():
        metric = "f1" if setname == "test_A" else "precision"
        for label, sel in (
            ("all", {0, 1, 2}),
            ("first third", {0}),
            ("middle", {1}),
            ("last", {2}),
        ):
            ours = [v for t, v in methods["n2g"] if t in sel]
            print(f"\n{setname} · {label} · metric {metric} ({len(ours)} neuron-seeds)")
            print_summary("", {m: [v for t, v in x if t in sel] for m, x in methods.items()})
            for m in ("token_max", "token_rate", "trigram_backoff", "bigram"):
                theirs = [v for t, v in methods[m] if t in sel]

                def val_of(v, metric=metric):
                    if metric == "precision":
                        return v.precision if v.tp + v.fp else None
                    return v.f1

                pc = paired_comparison([val_of(v) for v in ours], [val_of(v) for v in theirs])
                print(
                    f"  N2G − {m:16} {fmt(pc.mean_difference, 7)} "
                    f"95% CI [{fmt(pc.ci_low, 0)}, {fmt(pc.ci_high, 0)}] "
                    f"Wilcoxon p {fmt(pc.wilcoxon_p, 0, 4)} (n={pc.neurons})"
                )
                report.setdefault("comparisons", []).append(
                    {"set": setname, "layers": label, "baseline": m, **asdict(pc)}
                )
    print_reach(reaches, report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    print(f"\ntotal {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
