"""How every stage of the OpenAI-data path grows with the atlas: import, embed, map, index.

Builds one atlas per size from slices of one folder written by `bench/gen_openai_xl.py` (the
slice is a folder of symbolic links, so every size reads the very same neuron files), runs each
stage as its own `neuronatlas` process and records its wall time, CPU time (user + system, the
figure load moves least), peak RSS and the atlas's size on disk afterwards. The table then gives
each stage's growth exponent between sizes (t ∝ n^b: b = log(t₂/t₁) / log(n₂/n₁)) and the disk per
neuron, and compares every stage with n log n.

    .venv/bin/python bench/gen_openai_xl.py --out /tmp/xl/src          # 48 × 6,400 neurons
    .venv/bin/python bench/atlas_growth_bench.py --source /tmp/xl/src --work /tmp/xl/growth \\
        --slices 48x768 16x6400 48x6400 --out growth.json
    .venv/bin/python bench/atlas_growth_bench.py --table growth.json       # print it again

`--stages` picks stages (default: import embed map index); a stage whose process fails stops
that size's run and is reported with its exit code, never as a time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

STAGES = {
    "import": ["import-openai", "{src}", "--db", "{db}", "--model", "gpt2-xl"],
    "embed": ["embed", "--db", "{db}", "--embedder", "all-MiniLM-L6-v2"],
    "map": ["map", "--db", "{db}"],
    "index": ["index", "--db", "{db}"],
}
SUBFOLDERS = (("collated-activations", "json"), ("explanations", "jsonl"))


@dataclass
class StageRun:
    size: int
    stage: str
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    disk_bytes: int
    exit_code: int


def slice_folder(source: Path, work: Path, layers: int, neurons: int) -> Path:
    """A folder of links to the first `neurons` neurons of the first `layers` layers."""
    out = work / f"src-{layers}x{neurons}"
    for sub, ext in SUBFOLDERS:
        for layer in range(layers):
            folder = out / sub / str(layer)
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(neurons):
                link = folder / f"{n}.{ext}"
                if not link.exists():
                    link.symlink_to(source / sub / str(layer) / f"{n}.{ext}")
    return out


def disk_bytes(db: Path) -> int:
    """The atlas and its WAL, as a user's disk holds them."""
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def run_stage(stage: str, size: int, src: Path, db: Path) -> StageRun:
    """One stage as its own process; CPU and peak RSS from the kernel's accounting (wait4)."""
    args = [a.format(src=src, db=db) for a in STAGES[stage]]
    cmd = [sys.executable, "-m", "neuronatlas", *args, "--silent"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    return StageRun(
        size,
        stage,
        round(wall, 1),
        round(usage.ru_utime + usage.ru_stime, 1),
        round(usage.ru_maxrss / 1024, 1),
        disk_bytes(db),
        code,
    )


def exponent(n1: int, t1: float, n2: int, t2: float) -> float | None:
    if t1 <= 0 or t2 <= 0 or n1 == n2:
        return None
    return math.log(t2 / t1) / math.log(n2 / n1)


def table(runs: list[StageRun]) -> str:
    """Markdown: per stage and size, wall / CPU / RSS / disk, then the growth exponent of CPU
    time from the smallest to the largest size and n log n's over the same range."""
    sizes = sorted({r.size for r in runs})
    by = {(r.stage, r.size): r for r in runs}
    head = " | ".join(f"{s:,} neurons: wall / CPU s, peak RSS MiB" for s in sizes)
    lines = [
        f"| stage | {head} | CPU exponent | n log n's |",
        "|---" * (len(sizes) + 3) + "|",
    ]
    for stage in STAGES:
        cells, done = [], [by[(stage, s)] for s in sizes if (stage, s) in by]
        if not done:
            continue
        for s in sizes:
            r = by.get((stage, s))
            if r is None:
                cells.append("—")
            elif r.exit_code != 0:
                cells.append(f"failed (exit {r.exit_code})")
            else:
                cells.append(f"{r.wall_s:,.0f} / {r.cpu_s:,.0f}, {r.peak_rss_mib:,.0f}")
        ok = [r for r in done if r.exit_code == 0]
        b = exponent(ok[0].size, ok[0].cpu_s, ok[-1].size, ok[-1].cpu_s) if len(ok) > 1 else None
        nlogn = (
            exponent(
                ok[0].size,
                ok[0].size * math.log(ok[0].size),
                ok[-1].size,
                ok[-1].size * math.log(ok[-1].size),
            )
            if len(ok) > 1
            else None
        )
        lines.append(
            f"| {stage} | {' | '.join(cells)} | {'—' if b is None else f'{b:.2f}'} | "
            f"{'—' if nlogn is None else f'{nlogn:.2f}'} |"
        )
    final = [max((r for r in runs if r.size == s), key=lambda r: r.disk_bytes) for s in sizes]
    disk = " | ".join(
        f"{r.disk_bytes / 1e9:.2f} GB ({r.disk_bytes / r.size / 1e3:.1f} kB a neuron)"
        for r in final
    )
    lines.append(f"| atlas on disk | {disk} | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--source", type=Path, help="a folder written by bench/gen_openai_xl.py")
    ap.add_argument("--work", type=Path, help="where the slices and atlases go")
    ap.add_argument(
        "--slices",
        nargs="+",
        default=["48x768", "16x6400", "48x6400"],
        help="LAYERSxNEURONS per size (default: 36,864 / 102,400 / 307,200)",
    )
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    ap.add_argument("--out", type=Path, default=Path("growth.json"))
    ap.add_argument("--table", type=Path, help="print the table of a saved run and stop")
    args = ap.parse_args()
    if args.table:
        print(table([StageRun(**r) for r in json.loads(args.table.read_text())]))
        return
    if args.source is None or args.work is None:
        ap.error("--source and --work are needed to run (or --table FILE)")
    runs = [StageRun(**r) for r in json.loads(args.out.read_text())] if args.out.exists() else []
    for spec in args.slices:
        layers, neurons = (int(x) for x in spec.split("x"))
        size = layers * neurons
        src = slice_folder(args.source, args.work, layers, neurons)
        db = args.work / f"atlas-{layers}x{neurons}.db"
        for stage in args.stages:
            run = run_stage(stage, size, src, db)
            runs = [r for r in runs if (r.size, r.stage) != (size, stage)] + [run]
            args.out.write_text(json.dumps([asdict(r) for r in runs], indent=1))
            print(f"{size:,} {stage}: {run}", flush=True)
            if run.exit_code != 0:
                break
    print(table(runs))


if __name__ == "__main__":
    main()
