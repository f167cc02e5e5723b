"""Measurement: how much of an atlas shows U+FFFD, before and after `neuronatlas migrate
--characters`, counted through the seed's `neurons` and `activations` relations.

The atlas given is never written: it is copied to --work first (SQLite's backup API, so rows
still in its write-ahead log come along) and the repair runs there.

    .venv/bin/python bench/whole_characters.py /work/demo/atlas.db --work /tmp/chars_demo.db
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from pathlib import Path

from neuronatlas.scrape.characters import repair_characters

FFFD = "\ufffd"


def counts(db: Path, layer5: int = 200) -> dict[str, tuple[int, int]]:
    """name → (holding U+FFFD, total), through the seed's relations (and `explanations`)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    one = lambda sql, *a: conn.execute(sql, a).fetchone()  # noqa: E731
    hi = f"L05N{layer5 - 1:04d}"
    out = {
        "primary explanations (neurons)": one(
            "SELECT total(instr(explanation_text, ?) > 0), count(*) FROM neurons", FFFD
        ),
        "records (activations)": one(
            "SELECT total(instr(tokens, ?) > 0), count(*) FROM activations", FFFD
        ),
        f"records of L05N0000..{hi}": one(
            "SELECT total(instr(tokens, ?) > 0), count(*) FROM activations"
            " WHERE neuron_id BETWEEN 'L05N0000' AND ?",
            FFFD,
            hi,
        ),
    }
    for source, bad, total in conn.execute(
        "SELECT source, total(instr(text, ?) > 0), count(*) FROM explanations GROUP BY source",
        (FFFD,),
    ):
        out[f"explanations: {source}"] = (bad, total)
    conn.close()
    return {k: (int(v[0]), int(v[1])) for k, v in out.items()}


def copy(src: Path, dst: Path) -> None:
    """A consistent copy through SQLite's backup API: a plain file copy of an atlas in WAL mode
    misses whatever the write-ahead log still holds (the last stages' rows)."""
    dst.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    target = sqlite3.connect(dst)
    source.backup(target)
    target.close()
    source.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("atlas", type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/chars_demo.db"))
    args = ap.parse_args()
    copy(args.atlas, args.work)
    before = counts(args.work)
    started = time.perf_counter()
    report = repair_characters(args.work)
    took = time.perf_counter() - started
    after = counts(args.work)
    print(
        f"repair: {took:.1f} s, {report.windows_read} corpus windows read, "
        f"{report.excerpts_repaired} excerpts re-decoded, {len(report.neurons)} neurons, "
        f"{report.explanations_rewritten} top-token explanations rewritten"
    )
    if report.note:
        print(f"note: {report.note}")
    print(f"| {'what':<40} | before | after | total |")
    for name, (bad, total) in before.items():
        now = after.get(name, (0, total))[0]
        print(f"| {name:<40} | {bad:,} | {now:,} | {total:,} |")


if __name__ == "__main__":
    main()
