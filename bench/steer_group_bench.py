"""Benchmark: a group of neurons edited together (`neuronatlas.steer.edit.applied`: one hook
per layer, one indexed write per layer) against the same edits as one hook per neuron (the
obvious way), same model, same text, same run.

Both give the same logits (checked). Two figures: the hooks' own work on the real neuron
vectors of the text (captured once, then edited `--hook-repeat` times each way), and whole
forward passes with the edits on (fastest of `--repeat`), with the unedited pass as the floor.

    .venv/bin/python bench/steer_group_bench.py                  # the offline Gemma-3-270M
    .venv/bin/python bench/steer_group_bench.py --neurons 256 --tokens 64 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from neuronatlas.ids import format_id
from neuronatlas.models import load_model
from neuronatlas.steer import make_edits
from neuronatlas.steer.edit import Edit, _layer_hook, applied, by_layer

TEXT = (
    "The Eiffel Tower is in Paris, the capital of France. It was built in 1889 for the World's "
    "Fair and was the tallest structure in the world for forty years. Every year millions of "
    "people climb its stairs or ride its lifts to look out over the city, the river Seine and "
)


def hook_for(edit: Edit):
    """One neuron's scale edit as its own forward pre-hook."""

    def hook(_module, args):
        x = args[0].clone()
        x[..., edit.neuron] *= edit.value
        return (x, *args[1:])

    return hook


@contextmanager
def one_hook_per_neuron(model, edits: tuple[Edit, ...]) -> Iterator[None]:
    """The same scale edits, each as its own forward pre-hook on its layer's projection."""
    handles = [model.projection(e.layer).register_forward_pre_hook(hook_for(e)) for e in edits]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--neurons", type=int, default=256, help="group size (spread over layers)")
    ap.add_argument("--tokens", type=int, default=64, help="text length in tokens")
    ap.add_argument("--repeat", type=int, default=3, help="whole forward passes per way")
    ap.add_argument("--hook-repeat", type=int, default=200, help="hook runs per way")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    model = load_model(args.model)
    ids = model.tokenizer(TEXT * 4, add_special_tokens=False)["input_ids"][: args.tokens]
    batch = torch.tensor([[model.bos_token_id, *ids]], device=model.device)
    rng = random.Random(0)
    places = rng.sample(range(model.n_layers * model.d_mlp), args.neurons)
    group = [format_id(*divmod(p, model.d_mlp)) for p in places]
    edits = make_edits(model, group, "scale", 3.0)

    def forward() -> torch.Tensor:
        with torch.inference_mode():
            return model.model(input_ids=batch, use_cache=False).logits.float()

    ways = {"no edit": None, "per layer": applied, "per neuron": one_hook_per_neuron}
    times: dict[str, list[float]] = {name: [] for name in ways}
    logits: dict[str, torch.Tensor] = {}
    for _ in range(args.repeat):
        for name, way in ways.items():
            t = time.perf_counter()
            if way is None:
                logits[name] = forward()
            else:
                with way(model, edits):
                    logits[name] = forward()
            times[name].append(time.perf_counter() - t)
    gap = float((logits["per layer"] - logits["per neuron"]).abs().max())
    moved = float((logits["per layer"] - logits["no edit"]).abs().max())
    assert gap <= 1e-4 * max(1.0, moved), f"the two ways disagree: max |Δlogit| {gap}"
    hooks = hook_times(model, batch, edits, args.hook_repeat)
    best = {k: min(v) for k, v in times.items()}
    layers = len({e.layer for e in edits})
    print(
        f"model {model.name} on {model.device}, {args.neurons} neurons scaled by 3 in {layers} "
        f"layers, {len(ids)} tokens + BOS; load average {os.getloadavg()[0]:.1f}; max "
        f"|Δlogit| between the ways {gap:.2g} (the edit moved logits by up to {moved:.3g})"
    )
    rows = [
        ("hooks only, per forward pass: one hook per layer", f"{hooks[0] * 1e3:8.2f} ms"),
        ("hooks only, per forward pass: one hook per neuron", f"{hooks[1] * 1e3:8.2f} ms"),
        ("  speed-up of grouping", f"{hooks[1] / hooks[0]:6.1f}x"),
        (f"forward, no edit (fastest of {args.repeat})", f"{best['no edit']:8.3f} s"),
        (f"forward, one hook per layer ({layers})", f"{best['per layer']:8.3f} s"),
        (f"forward, one hook per neuron ({args.neurons})", f"{best['per neuron']:8.3f} s"),
    ]
    for label, figure in rows:
        print(f"{label:<52}{figure}")


def hook_times(model, batch, edits: tuple[Edit, ...], repeat: int) -> tuple[float, float]:
    """Seconds per forward pass spent in the hooks themselves, (per layer, per neuron), on
    each layer's real neuron vector of the text (captured from one unedited pass)."""
    import torch

    captured: dict[int, torch.Tensor] = {}
    plan = by_layer(edits)

    def keep(layer: int):
        def hook(_module, args):
            captured[layer] = args[0].clone()

        return hook

    handles = [model.projection(layer).register_forward_pre_hook(keep(layer)) for layer in plan]
    with torch.inference_mode():
        model.model(input_ids=batch, use_cache=False)
    for h in handles:
        h.remove()
    grouped = {layer: _layer_hook(p) for layer, p in plan.items()}
    single = [(e.layer, hook_for(e)) for e in edits]
    out = []
    for way in ("grouped", "single"):
        t = time.perf_counter()
        with torch.inference_mode():
            for _ in range(repeat):
                if way == "grouped":
                    for layer, hook in grouped.items():
                        hook(None, (captured[layer],))
                else:
                    for layer, hook in single:
                        hook(None, (captured[layer],))
        out.append((time.perf_counter() - t) / repeat)
    return out[0], out[1]


if __name__ == "__main__":
    main()
