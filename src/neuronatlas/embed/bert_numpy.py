"""A BERT sentence embedder in numpy, for the few texts of a query: no torch import.

`neuronatlas search` encodes one query per call. Through sentence-transformers that costs
importing torch and sentence-transformers (5–16 s on a busy 2-core machine) for a forward
pass of ~10 tokens that numpy does in milliseconds. A sentence-transformers folder holding a
BERT (all-MiniLM-L6-v2 is one) with mean pooling is computed here from the same
`model.safetensors` and `tokenizer.json`: token, position and type embeddings, post-LN
encoder layers (exact GELU), mean over tokens, unit length. The vectors equal
sentence-transformers' to float32 rounding (cosine ≥ 0.99999; tests/test_embed_bert_numpy.py
on a tiny BERT, and on MiniLM in the slow tier). Anything else (MPNet, CLS pooling, a
missing file) is not handled here and returns None from `load`, so the caller uses
sentence-transformers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_SQRT_HALF = 1.0 / math.sqrt(2.0)


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU: x · Φ(x) (scipy's erf: no torch import)."""
    from scipy.special import erf

    return (0.5 * x * (1.0 + erf(x * _SQRT_HALF))).astype(np.float32)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


@dataclass
class BertNumpy:
    """The weights, shape and tokenizer of one BERT sentence embedder."""

    weights: dict[str, np.ndarray]
    tokenizer: object  # tokenizers.Tokenizer
    n_layers: int
    n_heads: int
    eps: float
    dim: int

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.weights[name + ".weight"].T + self.weights[name + ".bias"]

    def _encode_one(self, ids: list[int]) -> np.ndarray:
        w = self.weights
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(
            x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps
        )
        h, d = self.n_heads, self.dim // self.n_heads
        for i in range(self.n_layers):
            p = f"encoder.layer.{i}."
            q, k, v = (
                self._linear(x, p + f"attention.self.{m}").reshape(n, h, d).transpose(1, 0, 2)
                for m in ("query", "key", "value")
            )
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            probs = scores / scores.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(1, 0, 2).reshape(n, self.dim)
            x = _layer_norm(
                x + self._linear(ctx, p + "attention.output.dense"),
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self.eps,
            )
            inner = _gelu(self._linear(x, p + "intermediate.dense"))
            x = _layer_norm(
                x + self._linear(inner, p + "output.dense"),
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
                self.eps,
            )
        return x.mean(0)

    def encode(self, texts: list[str]) -> np.ndarray:
        """One mean-pooled row per text (the caller normalises). BLAS runs on one thread:
        these matrices are tiny, and on a busy machine waking BLAS threads costs 5–15× the
        products themselves (0.25–0.75 s instead of 0.05 s per query, 2 cores)."""
        encodings = self.tokenizer.encode_batch(texts)  # type: ignore[attr-defined]
        with _one_blas_thread():
            rows = [self._encode_one(e.ids) for e in encodings]
        return np.stack(rows).astype(np.float32)


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # no limit: slower on a busy machine, same result
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(1, user_api="blas")


def load(folder: str | Path) -> BertNumpy | None:
    """The numpy embedder of a sentence-transformers folder, or None when the folder is not
    a BERT with mean pooling (the caller then uses sentence-transformers)."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text("utf-8"))
        modules = json.loads((folder / "modules.json").read_text("utf-8"))
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text("utf-8"))
        st_config = json.loads((folder / "sentence_bert_config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    mean_only = pooling.get("pooling_mode_mean_tokens") and not any(
        pooling.get(k)
        for k in (
            "pooling_mode_cls_token",
            "pooling_mode_max_tokens",
            "pooling_mode_mean_sqrt_len_tokens",
        )
    )
    if (
        config.get("model_type") != "bert"
        or config.get("hidden_act") != "gelu"
        or config.get("position_embedding_type", "absolute") != "absolute"
        or kinds[:2] != ["Transformer", "Pooling"]
        or not set(kinds[2:]) <= {"Normalize"}
        or not mean_only
        or st_config.get("do_lower_case")
        or not (folder / "model.safetensors").is_file()
        or not (folder / "tokenizer.json").is_file()
    ):
        return None
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    weights = {
        k.removeprefix("bert."): v.astype(np.float32)
        for k, v in load_file(str(folder / "model.safetensors")).items()
    }
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    limit = min(int(st_config.get("max_seq_length") or 512), int(config["max_position_embeddings"]))
    tokenizer.enable_truncation(max_length=limit)
    return BertNumpy(
        weights=weights,
        tokenizer=tokenizer,
        n_layers=int(config["num_hidden_layers"]),
        n_heads=int(config["num_attention_heads"]),
        eps=float(config.get("layer_norm_eps", 1e-12)),
        dim=int(config["hidden_size"]),
    )
