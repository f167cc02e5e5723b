"""Benchmark: scorer score distributions per explanation source, agreement between scorers,
and the local LLM's cost per neuron.

On a COPY of an atlas (it writes scores and, with --llm, LLM explanations):

1. samples --sample neurons (seeded) and scores every explanation they hold with the
   embedding scorer (no LLM); prints per source n, mean with a bootstrap 95 % CI, quartiles,
   and how many explanations got no score (too few held-out or quiet records);
2. Spearman agreement (bootstrap 95 % CI) between the embedding score and each other score
   stored on the same explanations: OpenAI's ev_correlation_score stored with the explanation
   (imported, top-token or N2G) and, with --llm, the simulation scorer;
3. with --llm SPEC: explains --llm-neurons of the sampled neurons with that model, then does it
   again from the atlas's response cache, and prints tokens and seconds per neuron and the
   fresh / cached time ratio; the simulation scorer then scores those neurons' explanations
   (seconds per neuron), and the LLM explanations join step 1's table.

--planted DIR builds the tests' tiny GPT-2 with planted detectors (L00N0003 fires on " Paris",
L01N0005 on " guitar") and its atlas in DIR, and prints, for each scorer, the score of a right
and a wrong explanation of each neuron ("the word Paris" / "musical instruments") and the
seconds each score took.

--synthetic-openai DIR writes a synthetic OpenAI-format folder first (tests/openai_fixtures.py:
random tokens, random activations, template explanations — a null control where no
explanation can be right, so every scorer should sit at chance) and imports it into --db.

    python bench/score_bench.py --db /work/scratch/me/demo.db --sample 300
    python bench/score_bench.py --db /work/scratch/me/demo.db --sample 300 --n2g-neurons 72 \
        --llm local:smollm2 --llm-neurons 12
    python bench/score_bench.py --db /tmp/oai.db --synthetic-openai /tmp/oai --sample 200
    python bench/score_bench.py --planted /tmp/planted --llm local:smollm2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} (1 / 5 min)"


def bootstrap_ci(values, stat, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    values = np.asarray(values)
    stats = [stat(values[rng.integers(0, len(values), len(values))]) for _ in range(n)]
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def write_synthetic_openai(folder: Path, layers: int, neurons: int) -> None:
    from openai_fixtures import neuron_record, simulation_results

    for layer in range(layers):
        for n in range(neurons):
            seed = layer * 100_000 + n
            rec = neuron_record(layer, n, seed, n_top=20, n_random=20, n_tokens=32)
            res = simulation_results(layer, n, seed, n_explanations=1)
            a = folder / "collated-activations" / str(layer) / f"{n}.json"
            e = folder / "explanations" / str(layer) / f"{n}.jsonl"
            a.parent.mkdir(parents=True, exist_ok=True)
            e.parent.mkdir(parents=True, exist_ok=True)
            a.write_text(json.dumps(rec), encoding="utf-8")
            e.write_text(json.dumps(res) + "\n", encoding="utf-8")


def sample_neurons(db: Path, k: int, seed: int) -> list[str]:
    from neuronatlas.store import open_reader, reader

    conn = open_reader(db)
    ids = reader.neuron_ids(conn)
    conn.close()
    return sorted(random.Random(seed).sample(ids, min(k, len(ids))))


def n2g_neurons(db: Path, k: int, seed: int) -> list[str]:
    """Up to k neurons (seeded) that hold an N2G explanation: the sample then has all three
    sources on the same neurons, and the LLM explains these first."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True)
    ids = [
        r[0]
        for r in conn.execute("SELECT DISTINCT neuron_id FROM explanations WHERE source = 'n2g'")
    ]
    conn.close()
    return sorted(random.Random(seed).sample(sorted(ids), min(k, len(ids))))


def stored_scores(conn, neurons: list[str]) -> list[tuple[str, str, int, str, str, float]]:
    """(scorer, judge, explanation id, neuron id, source, score) of the neurons' explanations."""
    marks = ",".join("?" * len(neurons))
    return conn.execute(
        "SELECT s.scorer, s.judge, e.id, e.neuron_id, e.source, s.score FROM explanation_scores s"
        f" JOIN explanations e ON e.id = s.explanation_id WHERE e.neuron_id IN ({marks})",
        neurons,
    ).fetchall()


def table(db: Path, neurons: list[str]) -> dict[tuple[str, str], list[tuple[int, str, float]]]:
    """(scorer, judge) → [(explanation id, source, score)] for the sampled neurons."""
    import sqlite3

    conn = sqlite3.connect(db)
    marks = ",".join("?" * len(neurons))
    out: dict = {}
    for scorer, judge, eid, _, source, score in stored_scores(conn, neurons):
        out.setdefault((scorer, judge), []).append((eid, source, score))
    ev = conn.execute(
        "SELECT id, source, ev_correlation_score FROM explanations"
        f" WHERE neuron_id IN ({marks}) AND ev_correlation_score IS NOT NULL",
        neurons,
    ).fetchall()
    out[("stored ev_correlation_score", "source")] = ev
    conn.close()
    return out


def report_distributions(scores: dict, failed: dict[str, int]) -> None:
    for (scorer, judge), rows in sorted(scores.items()):
        print(f"\n{scorer} ({judge})")
        print(
            f"  {'source':<28} {'n':>5} {'mean':>7} {'95% CI':>17} {'q25':>6} {'q50':>6} {'q75':>6}"
        )
        by: dict[str, list[float]] = {}
        for _, source, s in rows:
            by.setdefault(source, []).append(s)
        for source, vals in sorted(by.items()):
            v = np.asarray(vals)
            lo, hi = bootstrap_ci(v, np.mean) if len(v) > 1 else (float("nan"),) * 2
            q = np.percentile(v, [25, 50, 75])
            print(
                f"  {source:<28} {len(v):>5} {v.mean():>7.3f} [{lo:>6.3f}, {hi:>6.3f}]"
                f" {q[0]:>6.3f} {q[1]:>6.3f} {q[2]:>6.3f}"
            )
        if scorer == "embedding":
            for source, n in sorted(failed.items()):
                print(f"  {source:<28} {n:>5} without a score (too few held-out/quiet records)")


def report_agreement(scores: dict) -> None:
    base = {eid: s for eid, _, s in scores.get(("embedding", EMBEDDER[0]), [])}
    print("\nSpearman agreement with the embedding score (same explanations)")
    for key, rows in sorted(scores.items()):
        if key[0] == "embedding":
            continue
        pairs = [(base[eid], s) for eid, _, s in rows if eid in base]
        if len(pairs) < 5:
            print(f"  {key[0]} ({key[1]}): {len(pairs)} shared explanations, too few")
            continue
        a, b = np.asarray(pairs).T
        rho = spearman(a, b)
        lo, hi = bootstrap_ci(np.arange(len(a)), lambda i, a=a, b=b: spearman(a[i], b[i]), n=500)
        print(f"  {key[0]} ({key[1]}): rho {rho:.3f} [{lo:.3f}, {hi:.3f}] over {len(a)}")


def report_paired(db: Path, neurons: list[str]) -> None:
    """Each source against the neuron's own top-token explanation, on the same neurons
    (paired differences, bootstrap 95 % CI over neurons, 10,000 resamples)."""
    import sqlite3

    conn = sqlite3.connect(db)
    rows = stored_scores(conn, neurons)
    conn.close()
    by: dict[tuple[str, str], dict[str, float]] = {}
    for scorer, _, _, nid, source, score in rows:
        by.setdefault((scorer, nid), {})[source.split(":")[0]] = score
    print("\npaired on the same neurons: source - top-tokens (bootstrap 95% CI over neurons)")
    for scorer in sorted({k[0] for k in by}):
        for source in ("n2g", "llm", "openai"):
            d = np.asarray(
                [
                    v[source] - v["top-tokens"]
                    for (sc, _), v in by.items()
                    if sc == scorer and source in v and "top-tokens" in v
                ]
            )
            if len(d) < 3:
                continue
            lo, hi = bootstrap_ci(d, np.mean, n=10_000)
            print(
                f"  {scorer}: {source} - top-tokens {d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]"
                f" over {len(d)} neurons, {source} higher on {(d > 0).sum()}"
            )


EMBEDDER: list[str] = []


def planted(folder: Path, embedder: str, llm_spec: str | None) -> None:
    """Right vs wrong explanations of the planted Paris and guitar detectors, per scorer."""
    from llm_fixtures import GUITAR, PARIS, build_paris_atlas
    from neuronatlas.errors import NeuronAtlasError
    from neuronatlas.score import get_scorer, score_text

    db, _ = build_paris_atlas(folder)
    right_wrong = {
        PARIS: ("the word Paris", "musical instruments"),
        GUITAR: ("musical instruments", "the word Paris"),
    }
    scorers = [get_scorer("embedding", embedder=embedder)]
    if llm_spec:
        from neuronatlas.llm import open_client

        client = open_client(llm_spec)
        scorers += [get_scorer(n, llm=client) for n in ("simulation", "detection", "fuzzing")]
    print(
        f"{'scorer':<11} {'judge':<24} {'neuron':<9} {'right':>7} {'wrong':>7}"
        "  right>wrong  s/score"
    )
    for scorer in scorers:
        for nid, texts in right_wrong.items():
            got, secs = [], []
            for text in texts:
                t = time.monotonic()
                try:
                    got.append(score_text(db, nid, text, scorer)["score"])
                except NeuronAtlasError as exc:
                    print(f"  {scorer.name} {nid} {text!r}: no score ({exc})")
                    got.append(float("nan"))
                secs.append(time.monotonic() - t)
            print(
                f"{scorer.name:<11} {scorer.judge:<24} {nid:<9} {got[0]:>7.3f} {got[1]:>7.3f}"
                f"  {'yes' if got[0] > got[1] else 'no':<11}  {sum(secs) / 2:>6.1f}"
            )
    print(load())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--db", type=Path, help="an atlas COPY (it is written)")
    ap.add_argument("--planted", type=Path, default=None)
    ap.add_argument("--sample", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embedder", default="all-MiniLM-L6-v2")
    ap.add_argument("--llm", default=None)
    ap.add_argument("--llm-neurons", type=int, default=8)
    ap.add_argument(
        "--n2g-neurons",
        type=int,
        default=0,
        help="add up to N neurons with an N2G explanation to the sample; --llm explains them first",
    )
    ap.add_argument("--synthetic-openai", type=Path, default=None)
    ap.add_argument("--synthetic-layers", type=int, default=2)
    ap.add_argument("--synthetic-neurons", type=int, default=150)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    EMBEDDER.append(args.embedder)
    print(load())
    if args.planted:
        planted(args.planted, args.embedder, args.llm)
        return
    if args.db is None:
        ap.error("--db is required (or --planted DIR)")
    if args.synthetic_openai:
        write_synthetic_openai(args.synthetic_openai, args.synthetic_layers, args.synthetic_neurons)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "neuronatlas.cli",
                "import-openai",
                str(args.synthetic_openai),
                "--db",
                str(args.db),
                "--silent",
            ],
            check=True,
        )
    from neuronatlas.score import get_scorer, score_neurons

    with_n2g = n2g_neurons(args.db, args.n2g_neurons, args.seed) if args.n2g_neurons else []
    rest = [n for n in sample_neurons(args.db, args.sample, args.seed) if n not in with_n2g]
    neurons = with_n2g + rest
    llm_ids = neurons[: args.llm_neurons] if args.llm else []
    if args.llm:
        from neuronatlas.explain.llm_explainer import explain_neurons
        from neuronatlas.llm import open_client
        from neuronatlas.store.llm import ResponseCache

        client = open_client(args.llm, ResponseCache(args.db))
        t = time.monotonic()
        fresh = explain_neurons(args.db, client, llm_ids)
        fresh_s = time.monotonic() - t
        u = fresh.usage
        done = max(1, len(fresh.done))
        print(
            f"\nexplain with {args.llm}: {len(fresh.done)} written, {len(fresh.failed)} failed;"
            f" per neuron {u.prompt_tokens / done:,.0f} prompt + {u.completion_tokens / done:,.1f}"
            f" completion tokens, {fresh_s / done:.1f} s ({load()})"
        )
        client.usage = type(u)()
        t = time.monotonic()
        explain_neurons(args.db, client, llm_ids, overwrite=True)
        cached_s = time.monotonic() - t
        ratio = fresh_s / max(cached_s, 1e-9)
        print(
            f"rerun from the response cache: {cached_s:.2f} s, {client.usage.cached_calls} of"
            f" {client.usage.calls} calls cached; fresh / cached = {ratio:,.0f}x"
        )
        t = time.monotonic()
        sim = score_neurons(args.db, get_scorer("simulation", llm=client), llm_ids)
        sim_s = time.monotonic() - t
        print(
            f"simulation scorer ({client.model}): {len(sim.scored)} scored, {len(sim.failed)}"
            f" without a score, {sim_s / max(1, len(llm_ids)):.1f} s per neuron"
            f" ({sim_s / max(1, len(sim.scored) + len(sim.failed)):.1f} s per explanation)"
        )
    t = time.monotonic()
    emb = score_neurons(args.db, get_scorer("embedding", embedder=args.embedder), neurons)
    emb_s = time.monotonic() - t
    failed: dict[str, int] = {}
    for _, source, _ in emb.failed:
        failed[source] = failed.get(source, 0) + 1
    print(
        f"\nembedding scorer ({args.embedder}): {len(emb.scored)} scored, {len(emb.failed)} without"
        f" a score, {emb.already} already, over {len(neurons)} neurons in {emb_s:.1f} s ({load()})"
    )
    scores = table(args.db, neurons)
    report_distributions(scores, failed)
    report_agreement(scores)
    report_paired(args.db, neurons)
    print(f"\n{load()}")


if __name__ == "__main__":
    main()
