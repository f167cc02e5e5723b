"""The scrape on an accelerator: throughput against the bare forward pass, and the device state
against the CPU state on the same activations. Run through bench/gpu_check.sh.

For each model (random weights built from its config: nothing is downloaded or read):

1. bare forward (the model body, no hooks) and scrape (`scrape_shard`: hooks, every layer,
   every statistic, state on the device) over the same random-token windows, after a warm-up
   and with the state already holding `--warm` windows; tokens/s of each and their ratio
   (goal on a GPU: ≤ 1.3). `torch.cuda.synchronize` brackets each timing.
2. equality: one small stream of activations (computed once, on the device) folded into a
   state on the device and into a state on the CPU; top and random records (window ids,
   values, vectors) and histograms must be equal exactly, moments to 1e-5 relative, quantile
   records exactly. With --device cpu the device state is forced onto the accelerators' code
   path (dense writes) so that path is what is compared.

Exit code 0 when every equality holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

CONTEXT = 64


def build(name: str, device: str, dtype: str):
    """A LoadedModel with random weights from the named model's config."""
    import torch
    import transformers

    from neuronatlas.models import wrap_model

    torch.manual_seed(0)
    if name == "gpt2-small":
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config())
    elif name == "gemma-3-270m":
        config = transformers.Gemma3TextConfig(
            vocab_size=262_144,
            hidden_size=640,
            intermediate_size=2048,
            num_hidden_layers=18,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=256,
            query_pre_attn_scalar=256,
            sliding_window=512,
            max_position_embeddings=32_768,
        )
        model = transformers.Gemma3ForCausalLM(config)
    elif name == "tiny":  # for the test suite: two layers of 256 neurons
        model = transformers.GPT2LMHeadModel(
            transformers.GPT2Config(
                vocab_size=1000,
                n_positions=128,
                n_embd=64,
                n_layer=2,
                n_head=2,
                n_inner=256,
                bos_token_id=None,
                eos_token_id=None,
            )
        )
    else:
        raise SystemExit(f"unknown model {name!r}: gpt2-small, gemma-3-270m or tiny")
    model = model.to(getattr(torch, dtype))

    class _NoTokenizer:  # the check feeds token ids; nothing is ever decoded
        bos_token_id = None

    return wrap_model(model, _NoTokenizer(), f"{name} (random)", dtype=dtype, device=device)


def windows(vocab: int, n: int, seed: int, batch: int):
    from neuronatlas.corpus import WindowBatch

    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab, (n, CONTEXT)).astype(np.int32)
    ids = np.arange(n, dtype=np.int64)
    return [WindowBatch(ids[i : i + batch], tokens[i : i + batch]) for i in range(0, n, batch)]


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare(lm, batches, policy) -> float:
    import torch

    body = lm.model.base_model
    _sync(lm.device)
    t = time.perf_counter()
    with torch.inference_mode():
        for b in batches:
            ids = torch.as_tensor(b.model_input(policy), device=lm.device)
            body(input_ids=ids, use_cache=False)
    _sync(lm.device)
    return time.perf_counter() - t


def scrape(lm, batches, policy, state, config) -> float:
    from neuronatlas.scrape import scrape_shard

    _sync(lm.device)
    t = time.perf_counter()
    scrape_shard(lm, batches, config, policy, state=state)
    _sync(lm.device)
    return time.perf_counter() - t


def throughput(name: str, args) -> dict:
    from neuronatlas.corpus import BosPolicy
    from neuronatlas.scrape import StatsConfig, new_state

    lm = build(name, args.device, args.dtype)
    vocab = lm.model.config.vocab_size
    policy = BosPolicy("none", None, None)
    config = StatsConfig(context=CONTEXT)
    warm = windows(vocab, args.warm, 1, args.batch_size)
    timed = windows(vocab, args.tokens // CONTEXT, 2, args.batch_size)
    timed = [type(b)(b.ids + args.warm, b.tokens) for b in timed]  # ids after the warm ones
    state = new_state(config, range(lm.n_layers), lm.d_mlp, lm.device)
    bare(lm, warm[:2], policy)
    scrape(lm, warm, policy, state, config)  # warm-up + a state past its first windows
    runs = {"bare_s": [], "scrape_s": []}
    for _ in range(args.reps):
        runs["bare_s"].append(bare(lm, timed, policy))
        st = state_copy(state)
        runs["scrape_s"].append(scrape(lm, timed, policy, st, config))
    tokens = len(timed) * args.batch_size * CONTEXT
    b, s = min(runs["bare_s"]), min(runs["scrape_s"])
    out = {
        "model": name,
        "layers": lm.n_layers,
        "d_mlp": lm.d_mlp,
        "tokens": tokens,
        "bare_tokens_per_s": tokens / b,
        "scrape_tokens_per_s": tokens / s,
        "ratio": s / b,
        "runs": runs,
    }
    print(
        f"{name:>13}: bare {tokens / b:12,.0f} tok/s   scrape {tokens / s:12,.0f} tok/s   "
        f"ratio {s / b:.3f}   ({lm.n_layers} layers × {lm.d_mlp} neurons, {tokens:,} tokens, "
        f"state warmed with {args.warm} windows)",
        flush=True,
    )
    return out


def state_copy(state):
    from neuronatlas.scrape import ScrapeState

    layers = {L: ls.copy() for L, ls in state.layers.items()}
    return ScrapeState(state.config, layers, state.windows, state.windows_seen, dict(state.meta))


def equality(name: str, args) -> dict:
    """The same activations into a device state and a CPU state: equal read-outs."""
    from neuronatlas.corpus import BosPolicy
    from neuronatlas.scrape import StatsConfig, canonical, new_state, state, update
    from neuronatlas.scrape.readout import neuron_results

    lm = build(name, args.device, "float32")
    policy = BosPolicy("none", None, None)
    config = StatsConfig(context=CONTEXT, top_k=8, random_k=8, quantile_k=3)
    layers = list(range(lm.n_layers))
    on_device = new_state(config, layers, lm.d_mlp, lm.device)
    on_cpu = new_state(config, layers, lm.d_mlp, "cpu")
    forced = args.device == "cpu"  # compare the accelerators' dense path on a CPU
    for batch in windows(lm.model.config.vocab_size, args.check_windows, 3, args.batch_size):
        acts = lm.neuron_activations(batch.model_input(policy), layers)
        sparse = state.sparse_writes
        if forced:
            state.sparse_writes = lambda _device: False
        try:
            update(on_device, batch.ids, batch.tokens, acts)
        finally:
            state.sparse_writes = sparse
        update(on_cpu, batch.ids, batch.tokens, {L: a.cpu() for L, a in acts.items()})
    problems = []
    for L in layers:
        a, b = canonical(on_device.layers[L]), canonical(on_cpu.layers[L])
        for key in a:
            if not np.array_equal(a[key], b[key]):
                problems.append(f"layer {L} {key} differs")
        ma, mb = on_device.layers[L].moments.arrays(), on_cpu.layers[L].moments.arrays()
        for key in ("mean", "m2", "m3", "m4"):
            scale = np.maximum(np.abs(mb[key]), 1e-30)
            err = float(np.max(np.abs(ma[key] - mb[key]) / scale))
            tol = 1e-5 if key != "mean" else 1e-5 + 1e-6 * float(np.max(np.sqrt(mb["m2"])))
            if err > tol:
                problems.append(f"layer {L} moment {key}: relative error {err:.2e}")
        strings = lambda ids: [str(i) for i in ids]  # noqa: E731
        for x, y in zip(
            neuron_results(on_device, L, strings), neuron_results(on_cpu, L, strings), strict=True
        ):
            if x["records"] != y["records"]:
                problems.append(f"layer {L} neuron {x['neuron']}: records differ")
                break
    ok = not problems
    what = "dense (accelerator) path on the CPU" if forced else f"{lm.device} state"
    print(
        f"{name:>13}: {what} vs CPU state over {args.check_windows} windows: "
        + ("equal (top/random/quantile exact, moments ≤ 1e-5 relative)" if ok else "DIFFERENT"),
        flush=True,
    )
    for p in problems[:20]:
        print(f"  {p}", flush=True)
    return {"model": name, "windows": args.check_windows, "equal": ok, "problems": problems}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda[:N]")
    ap.add_argument("--models", default="gpt2-small,gemma-3-270m", help="comma list (or tiny)")
    ap.add_argument("--tokens", type=int, default=262_144, help="timed tokens per model")
    ap.add_argument("--warm", type=int, default=512, help="windows folded in before timing")
    ap.add_argument("--batch-size", type=int, default=64, help="windows per forward pass")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--check-windows", type=int, default=256, help="windows of the equality")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    import torch

    from neuronatlas.models import resolve_device

    args.device = resolve_device(args.device)
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(
        f"gpu_check: torch {torch.__version__}, device {args.device} ({where}), {args.dtype}, "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    report: dict = {"device": args.device, "device_name": where, "dtype": args.dtype}
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    report["throughput"] = [throughput(n, args) for n in names]
    report["equality"] = [equality(n, args) for n in names]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    ok = all(e["equal"] for e in report["equality"])
    print("gpu_check: " + ("OK" if ok else "FAILED: device and CPU states differ"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
