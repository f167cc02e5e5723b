"""Ray benchmark: the same scrape run locally (one process) and on a local Ray (2 workers) in
the same run, with the overhead ratio and the merge time; plus the two unit costs the paper
estimate in docs/scale-out.md is built from (statistics update per token × neuron, merge of
one GPT-2-small-sized layer state).

    python bench/ray_bench.py                # --quick: offline default model, layers 0-5,
                                             # 8,192 tokens, 8 shards, 2 workers
    python bench/ray_bench.py --tokens 65536 --shards 16
    python bench/ray_bench.py --model path/to/gpt2 --corpus my.txt

"overhead" = Ray wall time / local wall time for the whole scrape (model load, tokenising,
compute, merge, write). Ray's own start (ray.init) is reported apart: a cluster pays it once,
not per job. On a machine whose cores are shared, both runs compete for the same CPUs, so the
ratio measures Ray's costs (actor start, a model per actor, state files, merges), not speed-up.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def update_cost(d_mlp: int, batch: int, context: int, repeats: int) -> float:
    """Seconds per token × neuron of `update_layer` (top/random/quantile/moments), CPU."""
    import torch

    from neuronatlas.scrape import StatsConfig, new_state, update_layer

    cfg = StatsConfig(context=context)
    state = new_state(cfg, [0], d_mlp)
    gen = torch.Generator().manual_seed(0)
    acts = [torch.randn(batch, context, d_mlp, generator=gen) for _ in range(repeats + 1)]
    update_layer(state, 0, np.arange(batch), acts[0])  # warm-up
    started = time.perf_counter()
    for i, a in enumerate(acts[1:], 1):
        update_layer(state, 0, np.arange(i * batch, (i + 1) * batch), a)
    return (time.perf_counter() - started) / (repeats * batch * context * d_mlp)


def merge_cost(d_mlp: int, batch: int, context: int, repeats: int) -> float:
    """Seconds to merge two full one-layer states of `d_mlp` neurons (top-20, random-20, 5×5
    quantile samples of 64-token windows: the default config)."""
    import torch

    from neuronatlas.scrape import StatsConfig, merge, new_state, update_layer

    cfg = StatsConfig(context=context)
    gen = torch.Generator().manual_seed(1)
    states = []
    for s in range(2):
        st = new_state(cfg, [0], d_mlp)
        for i in range(3):
            first = (s * 3 + i) * batch
            update_layer(
                st,
                0,
                np.arange(first, first + batch),
                torch.randn(batch, context, d_mlp, generator=gen),
            )
        states.append(st)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        merge(states[0], states[1])
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="the default size (the default)")
    p.add_argument("--model", default="default")
    p.add_argument("--corpus", default="default")
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--context", type=int, default=64)
    p.add_argument(
        "--layers",
        default="0-5",
        help="layers to scrape (default 0-5: per-shard states of all 18 Gemma "
        "layers are 0.6 GB each, too much for a quick run); 'all' for all",
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = p.parse_args()

    import ray

    from neuronatlas.ids import parse_layers
    from neuronatlas.scale.ray_pool import LOCAL_RAY, RayOptions
    from neuronatlas.scale.ray_scrape import scrape_on_ray
    from neuronatlas.scrape import ScrapeSettings, run_scrape

    work = Path(args.work or tempfile.mkdtemp(prefix="ray_bench_"))
    shutil.rmtree(work / "ray", ignore_errors=True)
    for name in ("local.db", "ray.db"):
        (work / name).unlink(missing_ok=True)
    settings = ScrapeSettings(
        model=args.model,
        corpus=args.corpus,
        tokens=args.tokens,
        context=args.context,
        batch_size=args.batch_size,
        checkpoint_every=0,
        layers=None if args.layers == "all" else parse_layers(args.layers),
    )

    started = time.perf_counter()
    local = run_scrape(settings, work / "local.db")
    t_local = time.perf_counter() - started

    started = time.perf_counter()
    ray.init(**LOCAL_RAY, log_to_driver=False)
    t_init = time.perf_counter() - started
    try:
        started = time.perf_counter()
        res = scrape_on_ray(
            settings,
            work / "ray.db",
            options=RayOptions(
                shards=args.shards, workers=args.workers, work_dir=work / "ray", quiet=True
            ),
        )
        t_ray = time.perf_counter() - started
        started = time.perf_counter()
        again = scrape_on_ray(
            settings,
            work / "ray2.db",
            options=RayOptions(
                shards=args.shards, workers=args.workers, work_dir=work / "ray", quiet=True
            ),
        )
        t_resume = time.perf_counter() - started
    finally:
        ray.shutdown()

    shard_seconds = [m.seconds for m in res.shard_metadata]
    d_small = 3072
    u = update_cost(d_small, args.batch_size, args.context, repeats=3)
    m = merge_cost(d_small, args.batch_size, args.context, repeats=3)
    report = {
        "model": local.meta.get("model_id"),
        "layers": local.meta.get("scraped_layers"),
        "d_mlp": local.meta.get("d_mlp"),
        "tokens": local.tokens,
        "shards": res.shards,
        "workers": res.workers,
        "local_seconds": round(t_local, 2),
        "ray_init_seconds": round(t_init, 2),
        "ray_seconds": round(t_ray, 2),
        "overhead_ratio": round(t_ray / t_local, 2),
        "overhead_ratio_with_init": round((t_ray + t_init) / t_local, 2),
        "ray_shard_seconds_sum": round(sum(shard_seconds), 2),
        "ray_merges": res.merges,
        "ray_merge_seconds_total": round(res.merge_seconds, 3),
        "ray_merge_seconds_per_merge": round(res.merge_seconds / max(res.merges, 1), 4),
        "resume_all_done_seconds": round(t_resume, 2),
        "resume_recomputed_shards": len(again.computed),
        "local_tokens_per_second": round(local.tokens / t_local, 1),
        "ray_tokens_per_second": round(res.tokens / t_ray, 1),
        "update_seconds_per_token_neuron_cpu": float(f"{u:.3g}"),
        "merge_seconds_one_gpt2_small_layer": round(m, 4),
    }
    print(json.dumps(report, indent=1))
    print(
        f"Ray (2 workers) / local wall time: {report['overhead_ratio']}× "
        f"({t_ray:.1f}s vs {t_local:.1f}s; ray.init {t_init:.1f}s apart); "
        f"merging {res.merges} shard states took {res.merge_seconds:.2f}s; "
        f"one GPT-2-small layer merge {m * 1000:.0f} ms"
    )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
