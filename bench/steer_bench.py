"""Benchmark: one steering request (`neuronatlas.steer.steer`) on a real model, against the
same answer composed from stock parts, same model, same texts, same run.

- steer: the unedited pass and the edited pass over the text, each continuing greedily from
  its own key/value cache (what `neuronatlas steer` and `POST /api/steer` run);
- stock: the two comparison passes without a cache, then `generate()` twice (unedited and
  edited) for the continuations, each of which runs the text through the model again.

Both give the same continuations (checked); the ratio is what sharing the prefill saves.
Also printed: one plain forward pass over the text (what `/api/activate` costs), the floor.

    .venv/bin/python bench/steer_bench.py                       # the offline Gemma-3-270M
    .venv/bin/python bench/steer_bench.py --tokens 128 --new-tokens 20 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from neuronatlas.ids import parse_id
from neuronatlas.models import load_model
from neuronatlas.steer import steer
from neuronatlas.steer.edit import applied, make_edit

TEXT = (
    "The Eiffel Tower is in Paris, the capital of France. It was built in 1889 for the World's "
    "Fair and was the tallest structure in the world for forty years. Every year millions of "
    "people climb its stairs or ride its lifts to look out over the city, the river Seine and "
    "the parks around it. At night it is lit by thousands of lights that sparkle for five "
    "minutes every hour, and the view from the top reaches far beyond the city walls."
)


def stock(model, ids, edit, new_tokens: int) -> tuple[list[int], list[int]]:
    """The comparison from stock parts: two passes without a cache, two `generate()` calls."""
    import torch
    from transformers import GenerationConfig

    batch = torch.tensor([ids])
    config = GenerationConfig(
        max_new_tokens=new_tokens, do_sample=False, num_beams=1, eos_token_id=None, pad_token_id=0
    )

    def side() -> list[int]:
        with torch.inference_mode():
            model.model(input_ids=batch, use_cache=False).logits[0].float().log_softmax(-1)
            out = model.model.generate(
                input_ids=batch, attention_mask=torch.ones_like(batch), generation_config=config
            )
        return out[0, len(ids) :].tolist()

    before = side()
    with applied(model, edit):
        after = side()
    return before, after


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--neuron", default="L05N0100")
    ap.add_argument("--tokens", type=int, default=64, help="text length in tokens")
    ap.add_argument("--new-tokens", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    model = load_model(args.model)
    ids = model.tokenizer(TEXT * 4, add_special_tokens=False)["input_ids"][: args.tokens]
    text = model.tokenizer.decode(ids)
    ids = [model.bos_token_id, *model.tokenizer(text, add_special_tokens=False)["input_ids"]]
    layer, neuron = parse_id(args.neuron)
    edit = make_edit(model, layer, neuron, "scale", 8.0)
    times: dict[str, list[float]] = {"forward": [], "steer": [], "stock": []}
    for _ in range(args.repeat):
        t = time.perf_counter()
        with torch.inference_mode():
            model.model(input_ids=torch.tensor([ids]), use_cache=False)
        times["forward"].append(time.perf_counter() - t)
        t = time.perf_counter()
        r = steer(
            model, text, args.neuron, "scale", 8.0, prepend_bos=True, new_tokens=args.new_tokens
        )
        times["steer"].append(time.perf_counter() - t)
        t = time.perf_counter()
        before, after = stock(model, ids, edit, args.new_tokens)
        times["stock"].append(time.perf_counter() - t)
        assert r.continuation.before.tokens == model.token_strings(before)
        assert r.continuation.after.tokens == model.token_strings(after)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"model {model.name}, {len(ids) - 1} tokens + BOS, {args.new_tokens} new tokens, "
        f"median of {args.repeat}; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"one forward pass   {med['forward']:7.2f} s")
    print(f"steer              {med['steer']:7.2f} s  ({med['steer'] / med['forward']:.1f} passes)")
    print(f"stock parts        {med['stock']:7.2f} s")
    print(f"speed-up           {med['stock'] / med['steer']:.2f}x (same continuations)")


if __name__ == "__main__":
    main()
