"""Scrape benchmark: the cost of the streaming statistics over a bare forward pass.

On a GPT-2-small-shaped model (12 layers × 3072 neurons, random weights, the real GPT-2
tokenizer) over windows of the offline corpus, in one run:

1. marginal cost ratio (scrape(2T) − scrape(T)) / (bare(2T) − bare(T)); goal ≤ 1.10. "bare" is
   the model body (all blocks, no unembedding) with no hooks; "scrape" is `scrape_shard` (hooks,
   all 12 layers, every statistic). Runs are interleaved and repeated, the minimum kept, since
   the 2-core machine is shared. The same marginal, paired by batch: a state built over T,
   then each later batch run bare and scraped back to back (ratio of sums, bootstrap 95 % CI
   over batches): a slow spell of the machine hits both sides of a pair instead of one run.
2. peak RSS of a scrape over T and 4T tokens, each in a fresh subprocess; goal: flat within 10 %.
3. the naive way (the seed's TransformerLens style): one full forward per layer caching every
   activation, all windows' activations of that layer kept, top-k at the end; timed on
   `--naive-layers` layers and scaled to all layers (each layer is an independent pass).
4. the statistics update alone, this version (torch state) against the previous one (numpy
   state, kept in tests/scrape_state_v1.py) on the same captured activations and states.
5. bfloat16 against float32: forward and scrape speed, and how far the top-k lists agree.
6. TransformerLens 4 (TransformerBridge) hooks against plain forward hooks, when
   `transformer_lens` can be imported (set PYTHONPATH to a folder holding it).

`--model gemma` runs 1-4 on the offline Gemma-3-270M (the default model) instead.

Usage: python bench/scrape_bench.py            (--quick: T = 4096 tokens)
       python bench/scrape_bench.py --threads 1 --clock cpu   (on a shared machine)
       python bench/scrape_bench.py --tokens 32768 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tiny_models.gpt2_tokenizer: the offline GPT-2 tokenizer

CONTEXT = 64


MODEL = "gpt2"  # --model


def build_model(dtype: str = "float32", seed: int = 0):
    if MODEL == "gemma":
        from neuronatlas.models import load_model

        return load_model("default", dtype=dtype, device="cpu")
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from neuronatlas.models import wrap_model
    from tiny_models import gpt2_tokenizer

    torch.manual_seed(seed)
    tok = gpt2_tokenizer()
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok)))
    if dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    return wrap_model(model, tok, "gpt2-small-shaped (random)", dtype=dtype)


def batches_for(tokenizer, n_tokens: int, batch_size: int):
    from neuronatlas.corpus import batch_windows, iter_windows, open_source, resolve_bos

    policy = resolve_bos(tokenizer)
    docs = open_source("default").documents()
    windows = iter_windows(docs, tokenizer, CONTEXT, policy, stop=n_tokens // CONTEXT)
    return list(batch_windows(windows, batch_size)), policy


CLOCK = time.perf_counter  # --clock cpu switches to process CPU time (robust on a shared box)


def bare(lm, batches, policy) -> float:
    import torch

    body = lm.model.base_model
    t = CLOCK()
    with torch.inference_mode():
        for b in batches:
            body(input_ids=torch.from_numpy(b.model_input(policy)), use_cache=False)
    return CLOCK() - t


def scrape(lm, batches, policy, config=None):
    from neuronatlas.scrape import StatsConfig, scrape_shard

    t = CLOCK()
    state = scrape_shard(lm, batches, config or StatsConfig(context=CONTEXT), policy)
    return CLOCK() - t, state


def marginal(lm, batches, policy, reps: int) -> dict:
    half = batches[: len(batches) // 2]
    runs = {"bare_T": [], "scrape_T": [], "bare_2T": [], "scrape_2T": []}
    bare(lm, half[:1], policy)  # warm-up
    for r in range(reps):
        order = [("bare_T", half), ("scrape_T", half), ("bare_2T", batches), ("scrape_2T", batches)]
        if r % 2:
            order.reverse()
        for name, bs in order:
            runs[name].append(
                bare(lm, bs, policy) if name.startswith("bare") else scrape(lm, bs, policy)[0]
            )
    best = {k: min(v) for k, v in runs.items()}
    med = {k: float(np.median(v)) for k, v in runs.items()}
    ratio = (best["scrape_2T"] - best["scrape_T"]) / (best["bare_2T"] - best["bare_T"])
    ratio_med = (med["scrape_2T"] - med["scrape_T"]) / (med["bare_2T"] - med["bare_T"])
    return {
        "seconds_min": best,
        "ratio_marginal_min": ratio,
        "ratio_marginal_median": ratio_med,
        "ratio_total_2T": best["scrape_2T"] / best["bare_2T"],
        "runs": runs,
    }


def paired(lm, batches, policy) -> dict:
    """The marginal cost measured batch by batch: a state is built over the first half (T
    tokens), then each batch of the second half is run bare and scraped into that state, back
    to back (order alternating), so a slow spell of the shared machine hits both sides of a
    pair. Ratio of the sums, with a 95 % bootstrap interval over batches."""
    from neuronatlas.scrape import StatsConfig, scrape_shard

    half = len(batches) // 2
    config = StatsConfig(context=CONTEXT)
    state = scrape_shard(lm, batches[:half], config, policy)
    bare_s, scrape_s = [], []
    for i, b in enumerate(batches[half:]):
        for side in ("bare", "scrape") if i % 2 == 0 else ("scrape", "bare"):
            if side == "bare":
                bare_s.append(bare(lm, [b], policy))
            else:
                t = CLOCK()
                scrape_shard(lm, [b], config, policy, state=state)
                scrape_s.append(CLOCK() - t)
    b_arr, s_arr = np.array(bare_s), np.array(scrape_s)
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(b_arr), size=(10_000, len(b_arr)))
    boot = s_arr[picks].sum(1) / b_arr[picks].sum(1)
    return {
        "windows_before": half * batches[0].ids.shape[0],
        "batches": len(b_arr),
        "bare_s": float(b_arr.sum()),
        "scrape_s": float(s_arr.sum()),
        "ratio": float(s_arr.sum() / b_arr.sum()),
        "ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
        "ratio_median_pair": float(np.median(s_arr / b_arr)),
    }


def rss_child(n_tokens: int, batch_size: int) -> None:
    lm = build_model()
    batches, policy = batches_for(lm.tokenizer, n_tokens, batch_size)
    seconds, state = scrape(lm, batches, policy)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "tokens": n_tokens,
                "peak_rss_mb": peak,
                "seconds": seconds,
                "windows_kept": len(state.windows),
            }
        )
    )


def rss(n_tokens: int, batch_size: int) -> dict:
    import torch

    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--rss-child",
            str(n_tokens),
            "--batch-size",
            str(batch_size),
            "--threads",
            str(torch.get_num_threads()),
            "--model",
            MODEL,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def naive(lm, batches, policy, layers: list[int], top_k: int = 20) -> dict:
    """Per layer: full forward with every activation cached, the layer's activations of all
    windows kept, top-k windows by max at the end."""
    import torch

    per_layer = []
    kept_bytes = 0
    for layer in layers:
        t = CLOCK()
        kept = []
        for b in batches:
            cache = {}
            hooks = [
                lm.projection(L).register_forward_pre_hook(
                    lambda _m, args, L=L, c=cache: c.__setitem__(L, args[0].clone())
                )
                for L in range(lm.n_layers)
            ]
            try:
                with torch.inference_mode():
                    out = lm.model(
                        input_ids=torch.from_numpy(b.model_input(policy)),
                        output_hidden_states=True,
                        output_attentions=True,
                        use_cache=False,
                    )
            finally:
                for h in hooks:
                    h.remove()
            kept.append(cache[layer])
            del out
        acts = torch.cat(kept)  # [windows, context, neurons]
        kept_bytes = acts.numel() * acts.element_size()
        torch.topk(acts.amax(dim=1).T, min(top_k, acts.shape[0]), dim=1)
        per_layer.append(CLOCK() - t)
    return {
        "seconds_per_layer": per_layer,
        "kept_bytes_per_layer": kept_bytes,
        "seconds_all_layers_est": float(np.mean(per_layer)) * lm.n_layers,
    }


def update_vs_v1(lm, batches, policy, reps: int = 3) -> dict:
    """Seconds of the statistics update of one batch (all layers), this version against the
    numpy state it replaced, each from a state that has seen `batches[:-1]`."""
    import scrape_state_v1 as v1
    from neuronatlas.scrape import StatsConfig, new_state, scrape_shard, update

    config = StatsConfig(context=CONTEXT)
    warm = scrape_shard(lm, batches[:-1], config, policy)
    last = batches[-1]
    skip = 1 if policy.mode == "prepend" else 0
    acts = {
        L: a[:, skip:, :].contiguous()
        for L, a in lm.neuron_activations(last.model_input(policy)).items()
    }
    old = v1.new_state(config, list(warm.layers), lm.d_mlp)
    for L, ls in warm.layers.items():  # the same state, in the old layout
        h = ls.host()
        for name, value in h.items():
            setattr(old.layers[L], name, value.copy())
        m = ls.moments.arrays()
        old.layers[L].moments = v1.Moments(float(m["n"]), m["mean"], m["m2"], m["m3"], m["m4"])
    old.windows_seen = warm.windows_seen
    times = {"new_s": [], "v1_s": []}
    for _ in range(reps):
        fresh = new_state(config, list(warm.layers), lm.d_mlp)
        fresh.layers = {L: ls.copy() for L, ls in warm.layers.items()}
        t = CLOCK()
        update(fresh, last.ids, last.tokens, acts)
        times["new_s"].append(CLOCK() - t)
        before = v1.new_state(config, list(old.layers), lm.d_mlp)
        before.layers = {L: ls.copy() for L, ls in old.layers.items()}
        t = CLOCK()
        v1.update(before, last.ids, last.tokens, acts)
        times["v1_s"].append(CLOCK() - t)
    new, prev = min(times["new_s"]), min(times["v1_s"])
    return {
        "windows_before": warm.windows_seen,
        "update_new_s": new,
        "update_v1_s": prev,
        "v1_over_new": prev / new,
        "runs": times,
    }


def bf16_vs_fp32(batches, policy, state32, seconds32: float, bare32: float) -> dict:
    lm16 = build_model("bfloat16")
    bare(lm16, batches[:1], policy)
    b16 = bare(lm16, batches, policy)
    s16, state16 = scrape(lm16, batches, policy)
    top1, overlap = topk_agreement(state32, state16)
    return {
        "bare_fp32_s": bare32,
        "bare_bf16_s": b16,
        "bare_speedup": bare32 / b16,
        "scrape_fp32_s": seconds32,
        "scrape_bf16_s": s16,
        "scrape_speedup": seconds32 / s16,
        "top1_same_window": top1,
        "topk_overlap": overlap,
    }


def topk_agreement(state_a, state_b) -> tuple[float, float]:
    """(share of neurons whose top-1 window is the same, mean top-k set overlap)."""
    from neuronatlas.scrape import canonical

    top1, overlap = [], []
    for L in state_a.layers:
        a = canonical(state_a.layers[L])["top_wid"]
        b = canonical(state_b.layers[L])["top_wid"]
        top1.append(float(np.mean(a[:, 0] == b[:, 0])))
        overlap.append(
            float(
                np.mean(
                    [
                        len(set(x) & set(y)) / len(x)
                        for x, y in zip(a.tolist(), b.tolist(), strict=False)
                    ]
                )
            )
        )
    return float(np.mean(top1)), float(np.mean(overlap))


def gemma_bf16(n_tokens: int, batch_size: int) -> dict:
    """The offline default model (Gemma-3-270M) in float32 and bfloat16 over the same windows."""
    from neuronatlas.corpus import batch_windows, iter_windows, open_source, resolve_bos
    from neuronatlas.models import load_model
    from neuronatlas.scrape import StatsConfig, scrape_shard

    out = {}
    states = {}
    for dtype in ("float32", "bfloat16"):
        lm = load_model("default", dtype=dtype)
        policy = resolve_bos(lm.tokenizer)
        windows = iter_windows(
            open_source("default").documents(),
            lm.tokenizer,
            CONTEXT,
            policy,
            stop=n_tokens // CONTEXT,
        )
        batches = list(batch_windows(windows, batch_size))
        lm.stream_activations(batches[0].model_input(policy), lambda L, a: None)  # warm-up
        t = CLOCK()
        states[dtype] = scrape_shard(lm, batches, StatsConfig(context=CONTEXT), policy)
        out[f"scrape_{dtype}_s"] = CLOCK() - t
        del lm
    out["speedup_bf16"] = out["scrape_float32_s"] / out["scrape_bfloat16_s"]
    out["top1_same_window"], out["topk_overlap"] = topk_agreement(
        states["float32"], states["bfloat16"]
    )
    return out


def transformer_lens(lm, batches, policy) -> dict:
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError as exc:
        return {"available": False, "why": f"transformer_lens not importable ({exc})"}
    import tempfile

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        lm.model.config.save_pretrained(tmp)
        lm.tokenizer.save_pretrained(tmp)
        from transformers import AutoTokenizer

        bridge = TransformerBridge.boot_transformers(
            tmp, hf_model=lm.model, device="cpu", tokenizer=AutoTokenizer.from_pretrained(tmp)
        )
    names = [f"blocks.{L}.mlp.hook_post" for L in range(lm.n_layers)]

    def noop(acts, hook):
        acts.float().amax(dim=1)

    t = CLOCK()
    with torch.inference_mode():
        for b in batches:
            bridge.run_with_hooks(
                torch.from_numpy(b.model_input(policy)),
                return_type=None,
                fwd_hooks=[(n, noop) for n in names],
            )
    tl_s = CLOCK() - t
    t = CLOCK()
    for b in batches:
        lm.stream_activations(b.model_input(policy), lambda L, a: a.amax(dim=1))
    plain_s = CLOCK() - t
    return {
        "available": True,
        "tl_bridge_s": tl_s,
        "plain_hooks_s": plain_s,
        "tl_over_plain": tl_s / plain_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="T = 4096 tokens (the default)")
    ap.add_argument("--tokens", type=int, default=4096, help="T")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--naive-layers", type=int, default=2)
    ap.add_argument(
        "--skip", default="", help="comma list of: marginal,paired,rss,naive,update,bf16,tl"
    )
    ap.add_argument(
        "--model",
        choices=("gpt2", "gemma"),
        default="gpt2",
        help="gpt2: GPT-2-small-shaped, random weights; gemma: the offline Gemma-3-270M",
    )
    ap.add_argument(
        "--gemma",
        type=int,
        default=0,
        metavar="TOKENS",
        help="also compare float32/bfloat16 on the offline Gemma-3-270M over this "
        "many tokens (needs its cache; see neuronatlas.models.default)",
    )
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: perf_counter; cpu: this process's CPU time (use with --threads 1 "
        "when other jobs share the cores)",
    )
    ap.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    global CLOCK, MODEL
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    MODEL = args.model
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(args.rss_child, args.batch_size)
        return
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    skip = set(filter(None, args.skip.split(",")))
    if "marginal" in skip:
        skip.add("naive")  # compared with the marginal run's scrape time
    T = args.tokens
    report: dict = {
        "T_tokens": T,
        "context": CONTEXT,
        "batch_size": args.batch_size,
        "clock": args.clock,
        "threads": torch.get_num_threads(),
        "load_avg": os.getloadavg(),
    }
    lm = build_model()
    batches, policy = batches_for(lm.tokenizer, 2 * T, args.batch_size)
    name = "Gemma-3-270M" if MODEL == "gemma" else "GPT-2-small-shaped"
    report["model"] = name
    print(f"{name}, {len(batches)} batches for 2T = {2 * T} tokens", flush=True)
    if "marginal" not in skip:
        report["marginal"] = m = marginal(lm, batches, policy, args.reps)
        print(
            f"marginal cost ratio (min of {args.reps}): {m['ratio_marginal_min']:.3f}  "
            f"(median {m['ratio_marginal_median']:.3f}; whole 2T run {m['ratio_total_2T']:.3f})",
            flush=True,
        )
    if "paired" not in skip:
        report["paired"] = p = paired(lm, batches, policy)
        print(
            f"marginal cost ratio, paired by batch (windows {p['windows_before']}–"
            f"{2 * p['windows_before']}, {p['batches']} pairs): {p['ratio']:.3f} "
            f"[{p['ci95'][0]:.3f}, {p['ci95'][1]:.3f}] (median pair {p['ratio_median_pair']:.3f})",
            flush=True,
        )
    if "rss" not in skip:
        r1, r4 = rss(T, args.batch_size), rss(4 * T, args.batch_size)
        report["rss"] = {"T": r1, "4T": r4, "ratio": r4["peak_rss_mb"] / r1["peak_rss_mb"]}
        print(
            f"peak RSS: T {r1['peak_rss_mb']:.0f} MB, 4T {r4['peak_rss_mb']:.0f} MB, "
            f"ratio {report['rss']['ratio']:.3f}",
            flush=True,
        )
    half = batches[: len(batches) // 2]
    if "update" not in skip:
        report["update"] = up = update_vs_v1(lm, batches, policy)
        print(
            f"statistics update of batch {len(batches)} (after {up['windows_before']} windows, "
            f"all layers): {up['update_new_s'] * 1e3:.0f} ms, previous numpy state "
            f"{up['update_v1_s'] * 1e3:.0f} ms: ×{up['v1_over_new']:.2f}",
            flush=True,
        )
    if "naive" not in skip:
        layers = list(range(min(args.naive_layers, lm.n_layers)))
        report["naive"] = nv = naive(lm, half, policy, layers)
        ours = m["seconds_min"]["scrape_T"]
        nv["ratio_naive_over_scrape"] = nv["seconds_all_layers_est"] / ours
        print(
            f"naive full-cache per layer: {np.mean(nv['seconds_per_layer']):.1f} s/layer, "
            f"all {lm.n_layers} layers ≈ {nv['seconds_all_layers_est']:.0f} s vs scrape "
            f"{ours:.1f} s over T: ×{nv['ratio_naive_over_scrape']:.1f}; keeps "
            f"{nv['kept_bytes_per_layer'] / 1e6:.0f} MB per layer at T (grows with T)",
            flush=True,
        )
    if "bf16" not in skip:
        s32, state32 = scrape(lm, half, policy)
        b32 = bare(lm, half, policy)
        report["bf16"] = bf = bf16_vs_fp32(half, policy, state32, s32, b32)
        print(
            f"bf16 vs fp32: bare ×{bf['bare_speedup']:.2f}, scrape ×{bf['scrape_speedup']:.2f}"
            f" faster; top-1 window same for {bf['top1_same_window']:.1%} of neurons, top-k "
            f"overlap {bf['topk_overlap']:.1%}",
            flush=True,
        )
    if "tl" not in skip:
        report["transformer_lens"] = tl = transformer_lens(lm, half, policy)
        if tl["available"]:
            print(
                f"TransformerLens bridge hooks {tl['tl_bridge_s']:.1f} s vs plain hooks "
                f"{tl['plain_hooks_s']:.1f} s: ×{tl['tl_over_plain']:.2f}",
                flush=True,
            )
        else:
            print(f"TransformerLens: {tl['why']}", flush=True)
    if args.gemma:
        report["gemma_bf16"] = g = gemma_bf16(args.gemma, args.batch_size)
        print(
            f"Gemma-3-270M bf16 vs fp32 scrape: ×{g['speedup_bf16']:.2f} faster; top-1 window "
            f"same for {g['top1_same_window']:.1%} of neurons, top-k overlap "
            f"{g['topk_overlap']:.1%}",
            flush=True,
        )
    print(json.dumps(report, default=float))


if __name__ == "__main__":
    main()
