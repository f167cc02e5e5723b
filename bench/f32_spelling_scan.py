"""Every finite float32 spelled by orjson and read back as the library reads it (issue 25).

The scrape's value encoder (`store.values`) stores each float32 as orjson's shortest float32
spelling and trusts that a reader (msgspec: parse as a double, round to float32) gets the
same float32 back, except for the bit patterns in `values.DOUBLE_ROUNDING`, which it spells
with their exact doubles instead. This scan is the proof behind that list: it spells all
4,278,190,080 finite float32 bit patterns (±0, subnormals, normals, the extremes) and prints
every pattern that does not read back, so the list can be checked against the installed
orjson and msgspec. It takes one core about 10 minutes on an idle machine.

    PYTHONPATH=src .venv/bin/python bench/f32_spelling_scan.py            # everything
    PYTHONPATH=src .venv/bin/python bench/f32_spelling_scan.py --step 97  # a quick sample
"""

from __future__ import annotations

import argparse
import time

import msgspec
import numpy as np
import orjson

CHUNK = 1 << 22
_decode = msgspec.json.Decoder(list[float]).decode


def scan(start: int, stop: int, step: int) -> list[int]:
    """Bit patterns in [start, stop) (every `step`-th) whose finite float32 does not read back."""
    bad: list[int] = []
    for lo in range(start, stop, CHUNK * step):
        bits = np.arange(lo, min(lo + CHUNK * step, stop), step, dtype=np.uint64).astype(np.uint32)
        vals = bits.view(np.float32)
        vals = vals[np.isfinite(vals)]
        if not len(vals):
            continue
        back = np.array(_decode(orjson.dumps(vals, option=orjson.OPT_SERIALIZE_NUMPY)))
        wrong = back.astype(np.float32).view(np.uint32) != vals.view(np.uint32)
        bad.extend(vals.view(np.uint32)[wrong].tolist())
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--step", type=int, default=1, help="scan every STEP-th pattern (default all)")
    args = ap.parse_args()
    print(f"orjson {orjson.__version__}, msgspec {msgspec.__version__}", flush=True)
    t0 = time.perf_counter()
    c0 = time.process_time()
    bad = []
    for half in (0, 1 << 31):  # positive, then negative patterns
        bad += scan(half, half + (1 << 31), args.step)
        print(f"  sign bit {half >> 31}: {time.process_time() - c0:.0f} s CPU", flush=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{len(bad)} patterns do not read back: {[hex(b) for b in bad]}")
    print(f"{wall:.0f} s wall, {cpu:.0f} s CPU")


if __name__ == "__main__":
    main()
