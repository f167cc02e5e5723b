"""Benchmark: every neuron's 20 nearest neighbours by explanation embedding (what `embed`
precomputes for neuron pages), the old way vs the new way, same vectors, same run.

* old — the loop `precompute_similar` ran before issue 27: a second copy of every vector as
  queries, 256 queries per chunk, `queries @ matrix.T`, then `argpartition(-scores)` over the
  whole chunk (a negated copy and an int64 index array as large as the scores);
* new — `VectorIndex.search_block` in blocks sized to `index.BLOCK_FLOATS`, the queries being
  rows of the one matrix: exact up to `EXACT_MAX` (60,000) vectors, above it the HNSW graph
  the atlas's search already builds (usearch, int8), candidates rescored exactly.

Vectors: synthetic unit vectors of dimension 384 (MiniLM's), clustered like explanation
embeddings (400 topics × 8 subtopics, Gaussian noise) with 10 % exact duplicates (neurons
sharing an explanation text). Each method runs in its own process, so its peak RSS is its own.
At 307,200 the old way would run for hours: it is timed on its first `--old-sample` queries
(its peak memory is reached in the first chunk) and its total extrapolated linearly.
Recall@20 of the new way against exact neighbours is measured on `--recall-sample` queries.

The by-tokens kind needs a real token index: `--tokens-db ATLAS` (e.g. an import of
bench/gen_openai_xl.py's files) times the old per-neuron self-join (`token_overlap`, on a
random sample of `--old-sample` neurons, extrapolated) against the new blocked numpy join
(`relations.token_neighbours`, every neuron), and checks that the sampled neurons' rows are equal.

    .venv/bin/python bench/similar_bench.py                # 36,864 and 307,200
    .venv/bin/python bench/similar_bench.py --sizes 36864
    .venv/bin/python bench/similar_bench.py --sizes none --tokens-db /tmp/xl/xl.db
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

K = 20
DIM = 384


def vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((400, DIM)).astype(np.float32)
    subs = rng.standard_normal((400 * 8, DIM)).astype(np.float32)
    sub_of = rng.integers(0, 400 * 8, size=n)
    m = (
        topics[sub_of // 8]
        + 0.7 * subs[sub_of]
        + 0.9 * rng.standard_normal((n, DIM)).astype(np.float32)
    )
    dup = rng.random(n) < 0.10  # shared explanation texts: identical vectors
    m[dup] = m[rng.integers(0, n, size=int(dup.sum()))]
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m


def distinct(order: np.ndarray, sims: np.ndarray, self_row: int, k: int) -> list[int]:
    out: list[int] = []
    for r in order.tolist():
        if r != self_row:
            out.append(r)
            if len(out) == k:
                break
    return out


def run_old(m: np.ndarray, limit: int) -> dict:
    """The pre-issue-27 loop, faithfully: its own query copy, chunks of 256."""
    queries = m.copy()  # neuron_vectors() read every vector a second time
    n, want, chunk = len(m), 3 * K + 1, 256
    t0 = time.perf_counter()
    out = {}
    for start in range(0, min(limit, n), chunk):
        scores = queries[start : start + chunk] @ m.T
        top = np.argpartition(-scores, want - 1, axis=1)[:, :want]
        for row in range(len(scores)):
            cand = top[row]
            order = cand[np.argsort(-scores[row, cand], kind="stable")]
            out[start + row] = distinct(order, scores[row, order], start + row, K)
    return {"seconds": time.perf_counter() - t0, "queries": min(limit, n), "result": out}


def run_new(m: np.ndarray) -> dict:
    from neuronatlas.search.vector_index import build_index

    t0 = time.perf_counter()
    index = build_index(m)  # no cache: what `embed` pays after new vectors
    built = time.perf_counter() - t0
    want = 3 * K + 1
    block = index.block_size(want)
    out = {}
    for start in range(0, len(m), block):
        rows, _ = index.search_block(m[start : start + block], want)
        for i in range(len(rows)):
            ok = rows[i] >= 0
            out[start + i] = distinct(rows[i][ok], None, start + i, K)  # type: ignore[arg-type]
    return {
        "seconds": time.perf_counter() - t0,
        "build_seconds": built,
        "queries": len(m),
        "approximate": index.approximate,
        "result": out,
    }


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: reset by exec, unlike ru_maxrss, which a child started
    by fork + exec inherits from its parent on Linux)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(method: str, path: str, old_sample: int, recall_sample: int) -> None:
    m = np.load(path)
    n = len(m)
    base_rss = peak_rss_mib()
    got = run_old(m, old_sample) if method == "old" else run_new(m)
    got["peak_rss_mib"] = peak_rss_mib()  # before the recall check, which has its own arrays
    result = got.pop("result")
    sample = np.random.default_rng(1).choice(n, size=min(recall_sample, n), replace=False)
    from neuronatlas.search.vector_index import exact_top_k_block

    hits = total = same_sims = 0
    for start in range(0, len(sample), 256):
        rows = sample[start : start + 256]
        exact, sims = exact_top_k_block(m, m[rows], 3 * K + 1)
        for i, r in enumerate(rows.tolist()):
            if r not in result:
                continue
            truth = distinct(exact[i], sims[i], r, K)
            mine = result[r]
            hits += len(set(truth) & set(mine))
            total += len(truth)
            same_sims += np.allclose(m[truth] @ m[r], m[mine] @ m[r], atol=1e-6)
    got["recall"] = hits / max(total, 1)
    got["same_similarities"] = same_sims
    got["vectors_rss_mib"] = base_rss
    print(json.dumps(got))


def tokens_child(method: str, db: str, sample: int) -> None:
    from neuronatlas.relations.similar import _token_neighbours
    from neuronatlas.relations.token_neighbours import all_token_neighbours
    from neuronatlas.store import open_reader
    from neuronatlas.store.search import token_shares

    conn = open_reader(db)
    ids = [r[0] for r in conn.execute("SELECT DISTINCT neuron_id FROM token_index")]
    picked = sorted(np.random.default_rng(2).choice(len(ids), min(sample, len(ids)), replace=False))
    chosen = [ids[i] for i in picked]
    t0 = time.perf_counter()
    if method == "tokens-old":
        rows = {nid: _token_neighbours(conn, nid, K) for nid in chosen}
        seconds = (time.perf_counter() - t0) * len(ids) / len(chosen)
    else:
        every = dict(all_token_neighbours(token_shares(conn), K))
        seconds = time.perf_counter() - t0
        rows = {nid: every[nid] for nid in chosen}
    digest = hash(json.dumps(rows, sort_keys=True))
    print(
        json.dumps(
            {"seconds": seconds, "neurons": len(ids), "digest": digest, "rss": peak_rss_mib()}
        )
    )


def tokens_bench(db: str, sample: int) -> None:
    res = {}
    for method in ("tokens-old", "tokens-new"):
        cmd = [sys.executable, __file__, "--child", method, db, "--old-sample", str(sample)]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        res[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    old, new = res["tokens-old"], res["tokens-new"]
    print(
        f"by tokens, {old['neurons']:,} neurons: old {old['seconds']:,.1f} s (extrapolated from "
        f"{sample:,} neurons), peak RSS {old['rss']:,.0f} MiB | new {new['seconds']:,.1f} s, "
        f"peak RSS {new['rss']:,.0f} MiB | speed {old['seconds'] / new['seconds']:.1f}× | "
        f"sampled rows equal: {old['digest'] == new['digest']}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="36864,307200")
    p.add_argument("--old-sample", type=int, default=4096)
    p.add_argument("--recall-sample", type=int, default=2000)
    p.add_argument("--tokens-db", help="an atlas with a token index: time the by-tokens kind")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        if a.child[0].startswith("tokens-"):
            tokens_child(a.child[0], a.child[1], a.old_sample)
        else:
            child(a.child[0], a.child[1], a.old_sample, a.recall_sample)
        return 0
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    if a.tokens_db:
        tokens_bench(a.tokens_db, a.old_sample)
    for n in (int(s) for s in a.sizes.split(",") if s.isdigit()):
        res = {}
        path = os.path.join(tempfile.mkdtemp(), f"vectors{n}.npy")
        np.save(path, vectors(n))  # each child loads it: its RSS starts at the vectors
        for method in ("old", "new"):
            limit = n if (method == "new" or n <= 60000) else a.old_sample
            cmd = [sys.executable, __file__, "--child", method, path]
            cmd += ["--old-sample", str(limit), "--recall-sample", str(a.recall_sample)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            res[method] = json.loads(proc.stdout.strip().splitlines()[-1])
        os.unlink(path)
        old, new = res["old"], res["new"]
        old_total = old["seconds"] * n / old["queries"]
        est = "" if old["queries"] == n else f" (extrapolated from {old['queries']:,} queries)"
        print(
            f"n={n:,}: old {old_total:,.1f} s{est}, peak RSS {old['peak_rss_mib']:,.0f} MiB | "
            f"new {new['seconds']:,.1f} s (index build {new['build_seconds']:.1f} s, "
            f"{'HNSW' if new['approximate'] else 'exact'}), peak RSS "
            f"{new['peak_rss_mib']:,.0f} MiB | process with the vectors loaded "
            f"{new['vectors_rss_mib']:,.0f} MiB"
        )
        print(
            f"  speed {old_total / new['seconds']:.1f}×, memory "
            f"{new['peak_rss_mib'] / old['peak_rss_mib']:.2f}×; recall@{K} vs exact: old "
            f"{old['recall']:.4f}, new {new['recall']:.4f} "
            f"(same similarities at every rank: old {old['same_similarities']}, "
            f"new {new['same_similarities']} of the sampled queries)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
