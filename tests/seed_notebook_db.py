"""A seed-notebook database built with the notebook's own statements, for `import-seed` tests.

Where the statements come from: the users' seed notebook "Create database and populate with
neuron explainer data" (ChinaGraph2024, GPT-2 small). Copied verbatim from it: the two INSERT
statements (its `insert_neuron` and `insert_activation`), the UPDATE of its embedding step
(`update_explanation_embedding_by_id`), the SELECT that step runs per layer, and its helpers
`compact_json_encode` and `round_floats`. Its import loop inserts a neuron, then its 'random'
records, then its 'top' records, and commits per neuron; its embedding step encodes each
layer's explanations with all-mpnet-base-v2 (`normalize_embeddings=True`) and stores each
vector as compact JSON rounded to 8 decimals. `build_seed_db` runs exactly that.

The notebook creates its tables from a separate file (`ChinaGraph2024-gpt2small-init.session.sql`,
made with DB Designer) that is not part of the notebook, so CREATE_TABLES below is a
reconstruction, not a copy: the columns its statements name, typed by the values it binds (an
INTEGER PRIMARY KEY `id` gives `activations` the rowid order the records were inserted in).
The importer does not rely on these declared types.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np

# -- reconstructed (see above): the notebook's init script is not part of the notebook --------
CREATE_TABLES = """
CREATE TABLE "neurons" (
  "id" varchar PRIMARY KEY,
  "layer_index" integer,
  "neuron_index" integer,
  "explanation_text" text,
  "explanation_embedding" text,
  "explanation_ev_correlation_score" float,
  "explanation_rsquared_score" float,
  "explanation_absolute_dev_explained_score" float,
  "activation_mean" float,
  "activation_variance" float,
  "activation_skewness" float,
  "activation_kurtosis" float
);
CREATE TABLE "activations" (
  "id" integer PRIMARY KEY AUTOINCREMENT,
  "neuron_id" varchar,
  "category" varchar,
  "tokens" text,
  "activation_values" text,
  FOREIGN KEY ("neuron_id") REFERENCES "neurons" ("id")
);
"""

# -- copied verbatim from the notebook -------------------------------------------------------
INSERT_NEURON = """
    INSERT INTO neurons (
      id,
      layer_index,
      neuron_index,
      explanation_text,
      explanation_ev_correlation_score,
      explanation_rsquared_score,
      explanation_absolute_dev_explained_score,
      activation_mean,
      activation_variance,
      activation_skewness,
      activation_kurtosis
    )
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);
    """

INSERT_ACTIVATION = """
    INSERT INTO activations (
      neuron_id,
      category,
      tokens,
      activation_values
    )
    VALUES (?, ?, ?, ?);
    """

UPDATE_EMBEDDING = """
    UPDATE neurons
    SET explanation_embedding = ? 
    WHERE id = ?;
    """  # noqa: W291 (the notebook's trailing space, kept)

SELECT_LAYER = "SELECT id, explanation_text FROM neurons WHERE layer_index = ?"


def compact_json_encode(obj):
    return json.dumps(obj, separators=(",", ":"))


def round_floats(o, ndigits=8):
    if isinstance(o, float):
        return round(o, ndigits)
    if isinstance(o, dict):
        return {k: round_floats(v, ndigits) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [round_floats(x, ndigits) for x in o]
    return o


# -- GPT-2-small-shaped data -----------------------------------------------------------------


def _wide(xs):
    """float32 values widened to doubles, as OpenAI's files (and so the notebook) hold them."""
    return np.asarray(xs, dtype=np.float32).astype(np.float64).tolist()


#: neuron id -> (explanation, (ev, rsquared, absolute_dev), (mean, variance, skewness, kurtosis))
NEURONS = {
    "L00N0000": (" dog breeds", (0.61, 0.34, 0.2), (0.011, 0.21, 1.5, 9.0)),
    "L00N0001": (" the letter Q", (0.05, -0.02, -0.1), (0.02, 0.3, None, 3.25)),
    "L05N1234": (" dogs and puppies", (0.47, 0.2, 0.15), (-0.03, 0.12, 2.0, 11.5)),
    "L11N3071": (" closing parentheses", (0.82, 0.67, 0.55), (0.1, 0.5, 0.75, 4.0)),
    "L11N0042": (" years in dates", (0.33, 0.1, 0.08), (None, None, None, None)),
}

#: neuron id -> {category: [(tokens, activations)]}; the notebook inserts 'random' then 'top'
RECORDS = {
    "L00N0000": {
        "random": [
            ([" the", " cat", " sat", "日本"], _wide([0.0, -0.16994381, 0.5, 0.0625])),
            ([" A", " walk", "\n"], _wide([0.01, 0.02, -0.03])),
        ],
        "top": [
            ([" my", " poodle", " and", " beagle"], _wide([0.1, 7.3125, 0.2, 6.5])),
            ([" a", " terrier"], _wide([0.0, 5.25])),
        ],
    },
    "L00N0001": {
        "random": [(["Q", "uick"], [0.1, float("nan")])],  # 0.1: no float32; NaN: no value
        "top": [([" Q", "ueen"], _wide([3.5, 0.25]))],
    },
    "L05N1234": {
        "random": [([" puppies", " play"], _wide([1.25, 0.0]))],
        "top": [([" puppy", " love"], _wide([8.0, 0.5])), ([" dogs", "!"], _wide([6.0, 0.1]))],
    },
    "L11N3071": {
        "random": [(["(", "x", ")"], _wide([0.0, 0.0, 2.5]))],
        "top": [(["f", "(", ")", ")"], _wide([0.0, 0.1, 9.75, 9.5]))],
    },
    "L11N0042": {"random": [([" in", " 1999"], _wide([0.0, 4.0]))], "top": []},
}

DIM = 768  # all-mpnet-base-v2


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def planned_vectors(dim: int = DIM) -> dict[str, np.ndarray]:
    """Stand-ins for all-mpnet-base-v2's unit vectors: the two dog neurons close together,
    the others unrelated (so similar-by-embedding has one right answer)."""
    rng = np.random.default_rng(7)
    dog = rng.standard_normal(dim)
    out = {nid: _unit(rng.standard_normal(dim)) for nid in NEURONS}
    out["L00N0000"] = _unit(dog + 0.2 * rng.standard_normal(dim))
    out["L05N1234"] = _unit(dog + 0.2 * rng.standard_normal(dim))
    return out


Encode = Callable[[list[str], list[str]], np.ndarray]  # (ids, explanations) -> unit rows


def planned_encode(dim: int = DIM) -> Encode:
    vectors = planned_vectors(dim)
    return lambda ids, _texts: np.stack([vectors[i] for i in ids]).astype(np.float32)


def _split(nid: str) -> tuple[int, int]:
    return int(nid[1:3]), int(nid[4:])


def run_import_loop(db_conn: sqlite3.Connection, neurons=None, records=None) -> None:
    """The notebook's import loop, with its statements (one commit per neuron)."""
    for nid, (text, scores, stats) in (neurons or NEURONS).items():
        layer_index, neuron_index = _split(nid)
        cursor = db_conn.cursor()
        cursor.execute(INSERT_NEURON, (nid, layer_index, neuron_index, text, *scores, *stats))
        for category in ("random", "top"):
            for tokens, acts in (records or RECORDS)[nid][category]:
                cursor.execute(
                    INSERT_ACTIVATION,
                    (nid, category, compact_json_encode(tokens), compact_json_encode(acts)),
                )
        db_conn.commit()


def run_embedding_step(db_conn: sqlite3.Connection, encode: Encode) -> None:
    """The notebook's embedding step per layer: SELECT, encode, UPDATE with rounded JSON."""
    cursor = db_conn.cursor()
    for layer_index in range(12):
        neurons = cursor.execute(SELECT_LAYER, (layer_index,)).fetchall()
        if not neurons:
            continue
        embeddings = encode([n[0] for n in neurons], [n[1] for n in neurons])
        for neuron, embedding in zip(neurons, embeddings, strict=True):
            cursor.execute(
                UPDATE_EMBEDDING,
                (compact_json_encode(round_floats(embedding.tolist(), 8)), neuron[0]),
            )
        db_conn.commit()


def build_seed_db(
    path: Path, encode: Encode | None = None, neurons=None, records=None, schema=CREATE_TABLES
) -> Path:
    """A seed database as the notebook makes it; `encode` None skips the embedding step."""
    db_conn = sqlite3.connect(path)
    db_conn.executescript(schema)
    run_import_loop(db_conn, neurons, records)
    if encode is not None:
        run_embedding_step(db_conn, encode)
    db_conn.close()
    return path
