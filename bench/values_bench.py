"""Paired benchmark of the float32 value encoder a scrape writes with: one record at a time
(`values.f32_json`, two library calls per record) against one block at a time
(`values.f32_json_rows`: one orjson call per row, no text read back but one row in 64, since
the exhaustive scan of bench/f32_spelling_scan.py), on the same records, in the same run,
interleaved block by block.

The records are shaped like the profiled scrape's (issue 25: GPT-2-small's 36,864 neurons at
32,768 tokens wrote 2.1 M records; 57 per neuron, 64 tokens each) with GELU-like float32
values, and come in blocks of one neuron's records, as `store.rows.prepare` hands them over.
Both encoders must give the same texts; the benchmark checks every block. It also times
`values.encode` on the same records as lists of doubles (what the scrape's readout hands
over), the whole step that `prepare` runs.

    .venv/bin/python bench/values_bench.py                       # 2.1 M records
    .venv/bin/python bench/values_bench.py --records 200000      # a quicker run
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from neuronatlas.store import values


def neuron_block(rng: np.random.Generator, rows: int, width: int) -> np.ndarray:
    """One neuron's records: GELU of normal pre-activations, as float32."""
    x = rng.standard_normal((rows, width)).astype(np.float32) * np.float32(1.5)
    gelu = 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))
    return gelu.astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2_100_000)
    ap.add_argument("--per-neuron", type=int, default=57, help="records per block")
    ap.add_argument("--tokens", type=int, default=64, help="values per record")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    blocks = -(-args.records // args.per_neuron)
    print(
        f"{blocks * args.per_neuron:,} records of {args.tokens} float32 values in blocks of "
        f"{args.per_neuron}; load average before: {os.getloadavg()[0]:.2f}"
    )
    old = new = whole = 0.0
    clock = time.perf_counter
    for b in range(blocks):
        block = neuron_block(rng, args.per_neuron, args.tokens)
        lists = block.astype(np.float64).tolist()
        if b % 2:  # alternate which runs first, so both see the same drift
            t0 = clock()
            got = values.f32_json_rows(block)
            t1 = clock()
            want = [values.f32_json(row) for row in block]
            t2 = clock()
            new, old = new + t1 - t0, old + t2 - t1
        else:
            t0 = clock()
            want = [values.f32_json(row) for row in block]
            t1 = clock()
            got = values.f32_json_rows(block)
            t2 = clock()
            old, new = old + t1 - t0, new + t2 - t1
        if got != want:
            raise SystemExit(f"block {b}: the two encoders disagree")
        t0 = clock()
        stored = values.encode(lists)
        whole += clock() - t0
        if [s.json for s in stored] != want:
            raise SystemExit(f"block {b}: values.encode disagrees with f32_json")
    n = blocks * args.per_neuron
    print(f"one record at a time (f32_json):     {old:7.2f} s  {old / n * 1e6:6.2f} µs/record")
    print(f"one block at a time (f32_json_rows): {new:7.2f} s  {new / n * 1e6:6.2f} µs/record")
    print(f"values.encode (lists in, as prepare): {whole:7.2f} s  {whole / n * 1e6:6.2f} µs/record")
    print(
        f"block / record: {new / old:.2f}× the time; load average after: {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
