"""Benchmark: `neuronatlas.trace` on a real model (the offline Gemma-3-270M by default).

Prints, in one run:

- cost of one trace of a 32-token prompt with up to --max-nodes neuron rows, split into the
  first-order pass (clean run, logit rows, total effects, pool), the backward rows and the
  assembly + pruning, and the process's peak memory (RSS);
- the comparison: rows computed in batched backward passes (--batch targets per pass,
  each pass stopping at its deepest target's layer) against one backward pass per row,
  same rows, same run; the ratio is what batching saves;
- growth (last): the same trace at 16/32/64/128 tokens (fixed budget --growth-nodes), and at 32
  tokens with budgets 250/500/1000;
- faithfulness: on --prompts prompts, the top-20 nodes of each graph (target: the model's
  likeliest next token) zero-ablated one at a time at their position in the real model;
  Spearman correlation and sign agreement of the predicted (-total effect in the linearised
  model) vs actual change of the demeaned target logit; median over prompts.

    .venv/bin/python bench/trace_bench.py                                 # full run
    .venv/bin/python bench/trace_bench.py --max-nodes 300 --growth-nodes 100 --prompts 20 \
        --faith-nodes 100 --skip-budgets                                  # reduced run
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from neuronatlas.models import load_model
from neuronatlas.trace import check_interventions, trace
from neuronatlas.trace.attribute import _neuron_rows, _Pool
from neuronatlas.trace.linearised import Linearised

STORY = (
    "The old lighthouse keeper climbed the stairs every evening to light the lamp that warned "
    "ships away from the rocks below the cliffs where the sea birds nested in the spring and "
    "the fishermen told stories of storms that had sunk whole fleets in a single night long "
    "before the harbour was built and the railway brought visitors from the city who came to "
    "walk along the beach and eat fish in the small cafes by the water while the children "
    "played in the sand and the dogs chased the waves until the sun went down behind the hills"
)

PROMPTS = [
    "The capital of France is",
    "She poured the milk into a glass and",
    "The Eiffel Tower is located in the city of",
    "One, two, three, four,",
    "The opposite of hot is",
    "In the morning I drink a cup of",
    "Water freezes at zero degrees",
    "The cat sat on the",
    "My favourite colour is blue and my sister's is",
    "To be or not to",
    "The sun rises in the east and sets in the",
    "He opened the door with a",
    "Monday, Tuesday, Wednesday,",
    "The doctor told the patient to take the",
    "Paris is to France as Rome is to",
    "The children played football in the",
    "A triangle has three sides and a square has",
    "The river flows into the",
    "Bread is made from flour, water and",
    "The first president of the United States was George",
    "January, February, March,",
    "The bird built its nest in the",
]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prompt_of(model, n_tokens: int) -> str:
    """A text of exactly n_tokens tokens (without BOS)."""
    ids = model.tokenizer(" ".join([STORY] * 4), add_special_tokens=False)["input_ids"]
    return model.tokenizer.decode(ids[:n_tokens])


def one(model, text: str, max_nodes: int, batch: int, **kw):
    t0 = time.perf_counter()
    g = trace(model, text, prepend_bos=True, max_nodes=max_nodes, batch_size=batch, **kw)
    return g, time.perf_counter() - t0


def batching(model, text: str, rows: int, batch: int) -> tuple[float, float]:
    """Seconds for `rows` neuron rows: batched (`batch` per pass) vs one pass per row."""
    import torch

    ids = [model.bos_token_id, *model.tokenizer(text, add_special_tokens=False)["input_ids"]]
    lin = Linearised(model, ids)
    n_layers, n_pos, d = model.n_layers, len(ids), model.d_mlp
    gen = torch.Generator().manual_seed(0)
    flat = torch.randperm(n_layers * n_pos * d, generator=gen)[:rows].sort().values
    pool = _Pool(flat, n_layers, n_pos, d)
    which = list(range(rows))
    t0 = time.perf_counter()
    batched = _neuron_rows(lin, pool, which, batch)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = _neuron_rows(lin, pool, which, 1)
    t_single = time.perf_counter() - t0
    worst = max(float(abs(a - b).max()) for a, b in zip(batched, single, strict=True))
    print(f"  batched and single rows agree to {worst:.1e}")
    return t_batched, t_single


def report_main(model, text32: str, args, base_rss: float) -> None:
    g, secs = one(model, text32, args.max_nodes, args.batch)
    t = g.timings
    print(
        f"\n[main] 32 tokens, {g.neuron_rows} neuron rows (budget {args.max_nodes}), batch "
        f"{args.batch}: total {secs:.1f} s = first-order {t['first_order_s']:.1f} + rows "
        f"{t['rows_s']:.1f} + assemble {t['assemble_s']:.1f} + prune {t['prune_s']:.1f}; "
        f"kept {sum(n.kind == 'neuron' for n in g.nodes)} neurons, {len(g.links)} links; "
        f"completeness error {g.completeness_error:.1e}; peak RSS {rss_mib():.0f} MiB "
        f"(+{rss_mib() - base_rss:.0f} over the loaded model)"
    )


def faithfulness(model, args) -> None:
    import torch

    print(
        f"\n[faithfulness] {args.prompts} prompts, budget {args.faith_nodes}, top 20 nodes, "
        f"alpha {args.alpha}"
    )
    rhos, signs = [], []
    for text in PROMPTS[: args.prompts]:
        ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model.model(torch.tensor([[model.bos_token_id, *ids]])).logits[0, -1]
        top = model.token_strings([int(logits.argmax())])[0]
        g = trace(
            model,
            text,
            target=top,
            prepend_bos=True,
            max_nodes=args.faith_nodes,
            batch_size=args.batch,
            alpha=args.alpha,
        )
        check = check_interventions(model, g, top=20)
        rhos.append(check.spearman)
        signs.append(check.sign_agreement)
        print(
            f"  {text!r} -> {top!r}: spearman {check.spearman}, sign agreement "
            f"{check.sign_agreement}, {len(check.ablations)} nodes"
        )
    valid = [r for r in rhos if r is not None]
    valid_s = [s for s in signs if s is not None]
    print(
        f"  median spearman {statistics.median(valid):.3f} (goal >= 0.7) over {len(valid)} "
        f"prompts; median sign agreement {statistics.median(valid_s):.3f}"
    )


def growth(model, text32: str, args) -> None:
    print(f"\n[growth] budget {args.growth_nodes} rows")
    for n_tok in (16, 32, 64, 128):
        g, secs = one(model, prompt_of(model, n_tok - 1), args.growth_nodes, args.batch)
        t = g.timings
        print(
            f"  {n_tok:4d} tokens: {secs:6.1f} s (first-order {t['first_order_s']:.1f}, rows "
            f"{t['rows_s']:.1f}, assemble+prune {t['assemble_s'] + t['prune_s']:.1f}), "
            f"peak RSS {rss_mib():.0f} MiB"
        )
    if not args.skip_budgets:
        print("[growth] 32 tokens")
        for budget in (250, 500, 1000):
            g, secs = one(model, text32, budget, args.batch)
            print(f"  budget {budget:5d}: {secs:6.1f} s, {g.neuron_rows} rows")


PARTS = ("main", "compare", "faithfulness", "growth")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--max-nodes", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--growth-nodes", type=int, default=250)
    ap.add_argument("--compare-rows", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=len(PROMPTS))
    ap.add_argument("--faith-nodes", type=int, default=250)
    ap.add_argument("--skip-budgets", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--alpha", type=float, default=1.0, help="Gated split (1: freeze the gate).")
    ap.add_argument("--only", choices=PARTS, action="append", help="Run only these parts.")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = load_model(args.model)
    print(
        f"model {model.name}: {model.n_layers} layers x {model.d_mlp} neurons, "
        f"{args.threads} threads"
    )
    base_rss = rss_mib()
    parts = set(args.only or PARTS)
    text32 = prompt_of(model, 31)  # + BOS = 32 positions
    if "main" in parts:
        report_main(model, text32, args, base_rss)
    if "compare" in parts:
        t_b, t_s = batching(model, text32, args.compare_rows, args.batch)
        print(
            f"\n[compare] {args.compare_rows} random neuron rows at 32 tokens: batched "
            f"{t_b:.1f} s vs one pass per row {t_s:.1f} s: {t_s / t_b:.1f}x"
        )
    if "faithfulness" in parts:
        faithfulness(model, args)
    if "growth" in parts:
        growth(model, text32, args)


if __name__ == "__main__":
    main()
