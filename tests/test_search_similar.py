"""Weight-based related neurons and logit effects on tiny random models built here."""

from __future__ import annotations

import pytest
import torch
import transformers

from embed_fixtures import build_atlas
from neuronatlas.relations import weights as W
from neuronatlas.relations.similar import similar_neurons
from neuronatlas.store import AtlasWriter, open_reader
from neuronatlas.store.search import rebuild_search_indexes


def _gpt2():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=50, n_positions=16, n_embd=16, n_layer=3, n_head=2, n_inner=24
    )
    model = transformers.GPT2LMHeadModel(cfg).eval().requires_grad_(False)
    with torch.no_grad():
        for block in model.transformer.h:  # non-trivial LayerNorm scales
            block.ln_2.weight.uniform_(0.5, 1.5)
    return model


def _llama():
    torch.manual_seed(1)
    cfg = transformers.LlamaConfig(
        vocab_size=40,
        hidden_size=16,
        intermediate_size=20,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    model = transformers.LlamaForCausalLM(cfg).eval().requires_grad_(False)
    with torch.no_grad():
        for block in model.model.layers:
            block.post_attention_layernorm.weight.uniform_(0.5, 1.5)
    return model


def test_gpt2_connections_follow_openai_definition():
    model = _gpt2()
    weights = W.neuron_weights(model)
    h = model.transformer.h
    layer, neuron = 0, 5
    w_out = h[layer].mlp.c_proj.weight[neuron]
    got = W.connections(weights, layer, neuron, k=200)
    expected = {}
    for b in (1, 2):
        for j in range(24):
            w_in = h[b].mlp.c_fc.weight[:, j]
            expected[(b, j)] = float((w_out * h[b].ln_2.weight * w_in).sum())
    assert len(got["downstream"]) == 48 and got["upstream"] == []
    for b, j, w in got["downstream"]:
        assert w == pytest.approx(expected[(b, j)], rel=1e-4, abs=1e-6)
    mags = [abs(w) for _, _, w in got["downstream"]]
    assert mags == sorted(mags, reverse=True)
    up = W.connections(weights, 2, 3, k=5)["upstream"]
    b, j, w = up[0]
    manual = float(
        (h[b].mlp.c_proj.weight[j] * h[2].ln_2.weight * h[2].mlp.c_fc.weight[:, 3]).sum()
    )
    assert w == pytest.approx(manual, rel=1e-4, abs=1e-6) and b < 2


def test_logit_effect_is_w_out_times_unembedding():
    model = _gpt2()
    weights = W.neuron_weights(model)
    promoted, suppressed = W.logit_effect(weights, 1, 7, k=3)
    effect = model.lm_head.weight @ model.transformer.h[1].mlp.c_proj.weight[7]
    assert [i for i, _ in promoted] == torch.topk(effect, 3).indices.tolist()
    assert [i for i, _ in suppressed] == torch.topk(-effect, 3).indices.tolist()
    assert promoted[0][1] == pytest.approx(float(effect.max()), rel=1e-5)


def test_gated_models_use_gate_proj_and_down_proj():
    model = _llama()
    weights = W.neuron_weights(model)
    layers = model.model.layers
    got = W.connections(weights, 0, 2, k=1)["downstream"][0]
    b, j, w = got
    manual = float(
        (
            layers[0].mlp.down_proj.weight[:, 2]
            * layers[b].post_attention_layernorm.weight
            * layers[b].mlp.gate_proj.weight[j]
        ).sum()
    )
    assert w == pytest.approx(manual, rel=1e-4, abs=1e-6)


def test_similar_neurons_with_a_model(db_path):
    build_atlas(db_path)
    with AtlasWriter(db_path) as w:
        rebuild_search_indexes(w.conn)
    data = similar_neurons(open_reader(db_path), "L0N1", k=4, model=_gpt2())
    assert set(data) == {"id", "by_embedding", "by_tokens", "by_weights", "logit_effects"}
    assert data["by_embedding"] == []  # nothing embedded in this atlas
    down = data["by_weights"]["downstream"]
    assert len(down) == 4 and all(r["layer"] > 0 for r in down)
    assert {"id", "layer", "neuron", "explanation", "score", "similarity"} <= set(down[0])
    assert len(data["logit_effects"]["promoted"]) == 4


def test_similar_is_typed_for_the_library_and_the_cli(db_path):
    """The read model's SimilarNeurons carries every kind (with a model: by weights and the
    logit effect); `similar --json` prints exactly that document."""
    import msgspec
    from typer.testing import CliRunner

    from neuronatlas.cli import app
    from neuronatlas.read.relations import similar_neurons as typed
    from neuronatlas.read.views import SimilarNeurons

    build_atlas(db_path)
    with AtlasWriter(db_path) as w:
        rebuild_search_indexes(w.conn)
    full = typed(open_reader(db_path), "L0N1", k=4, model=_gpt2())
    assert full.id == "L00N0001" and full.by_weights is not None
    assert all(h.layer > 0 for h in full.by_weights.downstream)
    assert full.logit_effects is not None and full.logit_effects.id == "L00N0001"
    assert len(full.logit_effects.promoted) == 4
    printed = CliRunner().invoke(app, ["similar", "L0N1", "--db", str(db_path), "--json"])
    assert printed.exit_code == 0, printed.output
    got = msgspec.json.decode(printed.stdout, type=SimilarNeurons, strict=True)
    assert got == typed(open_reader(db_path), "L0N1", k=10)
    assert got.by_weights is None and '"by_weights"' not in printed.stdout
