"""Measurement: how much of an atlas shows U+FFFD, before and after `neuronatlas migrate
--characters`, counted through the seed's `neurons` and `activations` relations.

The atlas given is never written: it is copied to --work first (SQLite's backup API, so rows
still in its write-ahead log come along) and the repair runs there.

    .venv/bin/python bench/whole_characters.py /work/demo/atlas.db --work /tmp/chars_demo.db

Without a model run, `--windows N` decodes the first N windows of the default corpus (the
demo's: Gemma-3-270M's tokenizer, 64 tokens, BOS prepended) both ways and counts the windows
showing U+FFFD, old way against whole characters:

    .venv/bin/python bench/whole_characters.py --windows 4096
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


def windows(n: int, context: int = 64) -> None:
    """Windows of the default corpus with U+FFFD decoded per token vs as whole characters."""
    from neuronatlas.corpus import iter_windows, open_source, resolve_bos
    from neuronatlas.models import load_header
    from neuronatlas.models.tokens import TokenStrings, legacy_strings

    started = time.perf_counter()
    tokenizer = load_header("default").model.tokenizer
    strings = TokenStrings(tokenizer)
    policy = resolve_bos(tokenizer, "auto")
    seen = old = new = split = 0
    source = open_source("default").documents()
    for _, ids in iter_windows(source, tokenizer, context, policy, stop=n):
        ids_list = ids.tolist()
        seen += 1
        old += any(FFFD in t for t in legacy_strings(strings, ids_list))
        shown = strings.record(ids_list)
        new += FFFD in "".join(shown)
        split += "" in shown
    took = time.perf_counter() - started
    print(
        f"{seen:,} windows of {context} tokens ({took:.1f} s): with U+FFFD {old:,} decoded per "
        f"token, {new:,} as whole characters; {split:,} hold a split character"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("atlas", type=Path, nargs="?")
    ap.add_argument("--work", type=Path, default=Path("/tmp/chars_demo.db"))
    ap.add_argument("--windows", type=int, default=0, help="count default-corpus windows")
    args = ap.parse_args()
    if args.windows:
        windows(args.windows)
    if args.atlas is None:
        return
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
