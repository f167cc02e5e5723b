"""Generated OpenAI neuron-explainer folders for the import/export tests.

`write_source` writes a small folder in OpenAI's layout (or the seed's) whose neurons between
them carry every quirk the importer must accept, plus three broken neurons. `expected_*`
re-read the written files with Python's `json` to give the values the atlas must hold.
"""

from __future__ import annotations

import json
import math
import random
import struct
from pathlib import Path

TOKENS = [
    " the",
    " cat",
    "é",
    " 日本",
    "\n",
    " 🙂",
    "\u2581x",
    ' "q"',
    "\\",
    "�",
    " sat",
    ",",
    " on",
    " mat",
    ".",
    " über",
    "\t",
    " ",
    "ß",
    " naïve",
]

BROKEN = {
    "L01N0001": "truncated",  # activations file cut mid-way
    "L01N0002": "wrong type",  # explanations: explanation is a number
    "L01N0003": "missing",  # no activations file at all
}


def _acts(rng: random.Random, n: int, nulls: bool) -> list:
    out = []
    for i in range(n):
        if nulls and i % 5 == 1:
            out.append(None)
        elif i % 7 == 3:
            out.append(0)  # an integer in the JSON
        else:
            # float32 values widened to float64: long reprs, like OpenAI's files
            v = rng.gauss(0.0, 1.0) * 3
            out.append(struct.unpack("f", struct.pack("f", v))[0])
    return out


def _record(rng: random.Random, n_tokens: int, tag: bool, nulls: bool = False) -> dict:
    rec = {
        "tokens": [rng.choice(TOKENS) for _ in range(n_tokens)],
        "activations": _acts(rng, n_tokens, nulls),
    }
    if tag:
        rec = {"dataclass_name": "ActivationRecord", **rec}
    return rec


def neuron_record(
    layer: int,
    neuron: int,
    seed: int,
    *,
    tag: bool = True,
    quantiles: bool = False,
    empty_random: bool = False,
    null_stats: bool = False,
    n_top: int = 4,
    n_random: int = 3,
    n_tokens: int = 8,
) -> dict:
    """A NeuronRecord dict in OpenAI's shape with the requested quirks."""
    rng = random.Random(seed)
    nid = {"layer_index": layer, "neuron_index": neuron}
    if tag:
        nid = {"dataclass_name": "NeuronId", **nid}
    rec: dict = {
        "neuron_id": nid,
        "random_sample": []
        if empty_random
        else [_record(rng, n_tokens, tag, nulls=(i == 0)) for i in range(n_random)],
        "random_sample_by_quantile": None,
        "quantile_boundaries": None,
        "mean": None if null_stats else rng.random() * 0.1,
        "variance": None if null_stats else rng.random(),
        "skewness": None if null_stats else rng.gauss(0, 2),
        "kurtosis": None if null_stats else rng.random() * 30,
        "most_positive_activation_records": [
            _record(rng, n_tokens, tag, nulls=(i == 1)) for i in range(n_top)
        ],
    }
    if quantiles:
        rec["random_sample_by_quantile"] = [
            [_record(rng, n_tokens, tag) for _ in range(2)],
            [],
            [_record(rng, n_tokens, tag)],
        ]
        rec["quantile_boundaries"] = [0.01, None]
    if tag:
        rec = {"dataclass_name": "NeuronRecord", **rec}
    return rec


def _seq_sim(rng: random.Random, old: bool, tag: bool) -> dict:
    sim = {
        "tokens": [" a", " b"],
        "expected_activations": [rng.random(), None],
        ("unit" if old else "activation_scale"): "neuron_activations",
        "distribution_values": [[0.0, 1.0], [0.0, None]],
        "distribution_probabilities": [[0.5, 0.5], [1.0, 0.0]],
        "uncalibrated_simulation": None,
    }
    if tag:
        sim = {"dataclass_name": "SequenceSimulation", **sim}
    scored = {
        ("sequence_simulation" if old else "simulation"): sim,
        "true_activations": [1.0, 0.0],
        "ev_correlation_score": None,
        "rsquared_score": rng.random(),
        "absolute_dev_explained_score": None,
    }
    if tag:
        scored = {"dataclass_name": "ScoredSequenceSimulation", **scored}
    return scored


def simulation_results(
    layer: int,
    neuron: int,
    seed: int,
    *,
    tag: bool = True,
    old_names: bool = False,
    null_scores: bool = False,
    n_explanations: int = 2,
) -> dict:
    """A NeuronSimulationResults dict, optionally with the old field names."""
    rng = random.Random(seed + 7)
    items = []
    for i in range(n_explanations):
        scored_sim = {
            "scored_sequence_simulations": [_seq_sim(rng, old_names, tag) for _ in range(2)],
            "ev_correlation_score": None if null_scores else rng.random(),
            "rsquared_score": None if null_scores else rng.gauss(0, 1),
            "absolute_dev_explained_score": None if null_scores else rng.random(),
        }
        if tag:
            scored_sim = {"dataclass_name": "ScoredSimulation", **scored_sim}
        text = f" words about neuron {layer}/{neuron} #{i} — naïve «ü»"
        item = {
            ("explanation_or_baseline" if old_names else "explanation"): text,
            "scored_simulation": scored_sim,
        }
        if tag:
            item = {"dataclass_name": "ScoredExplanation", **item}
        items.append(item)
    nid = {"layer_index": layer, "neuron_index": neuron}
    out = {
        "neuron_id": nid,
        ("scored_explanation_or_baseline_list" if old_names else "scored_explanations"): items,
    }
    if tag:
        out = {"dataclass_name": "NeuronSimulationResults", **out}
    return out


def _quirks(layer: int, neuron: int) -> tuple[dict, dict]:
    k = (layer * 7 + neuron) % 6
    rec_kw = {"tag": k != 1, "quantiles": k in (2, 5), "empty_random": k == 3, "null_stats": k == 4}
    res_kw = {"tag": k != 1, "old_names": k in (1, 4), "null_scores": k == 3}
    return rec_kw, res_kw


def write_source(
    root: Path,
    *,
    layout: str = "openai",
    n_layers: int = 2,
    n_neurons: int = 6,
    broken: bool = True,
    subfolder: str = "",
    nan_literal: bool = True,
    n_tokens: int = 8,
) -> Path:
    """Write a folder of neuron files; returns the folder to pass as SOURCE."""
    base = root / subfolder if subfolder else root
    acts_dir = "collated-activations" if layout == "openai" else "activations"
    for layer in range(n_layers):
        for neuron in range(n_neurons):
            rec_kw, res_kw = _quirks(layer, neuron)
            rec = neuron_record(
                layer, neuron, seed=layer * 1000 + neuron, n_tokens=n_tokens, **rec_kw
            )
            res = simulation_results(layer, neuron, seed=layer * 1000 + neuron, **res_kw)
            a = base / acts_dir / str(layer) / f"{neuron}.json"
            e = base / "explanations" / str(layer) / f"{neuron}.jsonl"
            a.parent.mkdir(parents=True, exist_ok=True)
            e.parent.mkdir(parents=True, exist_ok=True)
            rec_text = json.dumps(rec)
            if nan_literal and (layer, neuron) == (0, 0):
                # Python's json writes NaN bare: the importer must read it as null
                rec["mean"] = math.nan
                rec["most_positive_activation_records"][0]["activations"][0] = math.nan
                rec_text = json.dumps(rec)
            a.write_text(rec_text, encoding="utf-8")
            e.write_text(json.dumps(res, ensure_ascii=(neuron % 2 == 0)) + "\n", encoding="utf-8")
    if broken:
        cut = base / acts_dir / "1" / "1.json"
        cut.write_text(cut.read_text(encoding="utf-8")[:150], encoding="utf-8")
        bad = base / "explanations" / "1" / "2.jsonl"
        res = json.loads(bad.read_text(encoding="utf-8"))
        key = next(k for k in res if k.startswith("scored_expl"))
        first = res[key][0]
        first["explanation" if "explanation" in first else "explanation_or_baseline"] = 5
        bad.write_text(json.dumps(res) + "\n", encoding="utf-8")
        (base / acts_dir / "1" / "3.json").unlink()
    return root


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _source_records(folder: Path, acts_dir: str, skip: set[str]):
    """(id, layer, neuron, decoded NeuronRecord JSON) of every neuron file not in `skip`."""
    for path in sorted((folder / acts_dir).glob("*/*.json")):
        layer, neuron = int(path.parent.name), int(path.stem)
        nid = f"L{layer:02d}N{neuron:04d}"
        if nid not in skip:
            yield nid, layer, neuron, json.loads(path.read_text(encoding="utf-8"))


def expected_activations(folder: Path, acts_dir: str, skip: set[str]) -> list[tuple]:
    """The `activations` relation the source implies, as (id, category, tokens, values)."""
    rows = []
    for nid, _layer, _neuron, rec in _source_records(folder, acts_dir, skip):
        cats = {"top": rec["most_positive_activation_records"], "random": rec["random_sample"]}
        for i, bucket in enumerate(rec.get("random_sample_by_quantile") or []):
            cats[f"quantile_{i}"] = bucket
        for cat in sorted(cats):
            for r in cats[cat]:
                rows.append((nid, cat, r["tokens"], [_clean(a) for a in r["activations"]]))
    rows.sort(key=lambda r: (r[0], r[1]))  # stable: rank order kept within a category
    return rows


def expected_neurons(folder: Path, acts_dir: str, skip: set[str]) -> list[tuple]:
    """The `neurons` relation (without the embedding) the source implies, by id."""
    rows = []
    for nid, layer, neuron, rec in _source_records(folder, acts_dir, skip):
        exp_path = folder / "explanations" / str(layer) / f"{neuron}.jsonl"
        res = json.loads(exp_path.read_text(encoding="utf-8"))
        items = res.get("scored_explanations", res.get("scored_explanation_or_baseline_list"))
        first = items[0]
        text = first.get("explanation", first.get("explanation_or_baseline"))
        sim = first["scored_simulation"]
        rows.append(
            (
                nid,
                layer,
                neuron,
                text,
                _clean(sim["ev_correlation_score"]),
                _clean(sim["rsquared_score"]),
                _clean(sim["absolute_dev_explained_score"]),
                *(_clean(rec[k]) for k in ("mean", "variance", "skewness", "kurtosis")),
            )
        )
    rows.sort()
    return rows


def as_float32(rows: list[tuple]) -> list[tuple]:
    """(id, category, tokens, values) rows with each value rounded to float32: how values that
    are float32 compare when read as SQL text (their shortest float32 spellings)."""
    return [
        (
            *r[:3],
            [
                None if v is None else float(struct.unpack("f", struct.pack("f", v))[0])
                for v in r[3]
            ],
        )
        for r in rows
    ]
