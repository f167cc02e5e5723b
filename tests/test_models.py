"""neuronatlas.models: hook points per architecture, early stop, token strings, the default."""

from __future__ import annotations

import json

import pytest
import torch

from neuronatlas.errors import ModelUnavailable
from neuronatlas.models import ARCHITECTURES, architecture_for, load_model


@pytest.fixture(scope="module")
def tiny(tiny_gpt2_dir):
    return load_model(str(tiny_gpt2_dir))


def test_loads_local_gpt2_with_shape(tiny, tiny_gpt2_dir):
    assert tiny.architecture == "gpt2"
    assert (tiny.n_layers, tiny.d_mlp) == (2, 256)
    assert tiny.bos_token_id == 50256
    assert tiny.hook_name(1) == "blocks.1.mlp.hook_post"
    assert tiny.name == str(tiny_gpt2_dir.resolve())


def test_detectors_fire_on_their_token_only(tiny, tiny_gpt2_dir):
    table = json.loads((tiny_gpt2_dir / "detectors.json").read_text())
    ids = tiny.tokenizer("A cat and a dog met the other cat.", return_tensors="pt").input_ids
    strings = tiny.token_strings(ids[0])
    acts = tiny.neuron_activations(ids)
    for nid, info in table.items():
        layer, neuron = int(nid[1:3]), int(nid[4:])
        column = acts[layer][0, :, neuron]
        for pos, s in enumerate(strings):
            if s == info["token"]:
                assert column[pos].item() == pytest.approx(info["peak"], rel=1e-5)
            else:
                assert abs(column[pos].item()) < 0.2


def test_gpt2_hook_is_mlp_activation_output(tiny):
    ids = torch.tensor([[464, 3797, 3332, 319, 262, 2603]])
    acts = tiny.neuron_activations(ids)
    with torch.no_grad():
        hidden = tiny.model(ids, output_hidden_states=True).hidden_states
    for layer, block in enumerate(tiny.model.transformer.h):
        h = hidden[layer]
        h = h + block.attn(block.ln_1(h))[0]
        expected = block.mlp.act(block.mlp.c_fc(block.ln_2(h)))
        torch.testing.assert_close(acts[layer], expected)


def test_forward_stops_after_last_requested_layer(tiny):
    calls = {"block1": 0, "lm_head": 0}
    h1 = tiny.model.transformer.h[1].register_forward_hook(
        lambda *a: calls.__setitem__("block1", calls["block1"] + 1)
    )
    h2 = tiny.model.lm_head.register_forward_hook(
        lambda *a: calls.__setitem__("lm_head", calls["lm_head"] + 1)
    )
    try:
        out = tiny.neuron_activations(torch.tensor([[1, 2, 3]]), layers=[0])
        assert list(out) == [0] and calls == {"block1": 0, "lm_head": 0}
        tiny.neuron_activations(torch.tensor([[1, 2, 3]]))
        assert calls["lm_head"] == 0
    finally:
        h1.remove()
        h2.remove()
    # hooks are removed after each call
    assert not tiny.projection(0)._forward_pre_hooks


def test_layers_out_of_range(tiny):
    with pytest.raises(ValueError):
        tiny.neuron_activations(torch.tensor([[1, 2]]), layers=[2])


def test_token_strings_keep_spaces_and_bytes(tiny):
    ids = tiny.tokenizer.encode(" the café\n")
    strings = tiny.token_strings(ids)
    assert strings[0] == " the"
    assert "".join(strings) == " the café\n"
    assert tiny.token_strings([50256]) == ["<|endoftext|>"]


def _save_tiny(tmp_path, config):
    from transformers import AutoModelForCausalLM

    from tiny_models import gpt2_tokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(str(tmp_path))
    gpt2_tokenizer().save_pretrained(str(tmp_path))
    return tmp_path


def _gated_expected(mlp, x):
    return mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)


def _neox_expected(mlp, x):
    return mlp.act(mlp.dense_h_to_4h(x))


@pytest.mark.parametrize("kind", ["llama", "gpt_neox", "gemma3_text", "qwen2"])
def test_hook_point_per_architecture(tmp_path, kind):
    from transformers import AutoConfig

    common = {
        "vocab_size": 512,
        "hidden_size": 32,
        "intermediate_size": 48,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    if kind != "gpt_neox":
        common.update(num_key_value_heads=1, head_dim=16)
    config = AutoConfig.for_model(kind, **common)
    m = load_model(str(_save_tiny(tmp_path, config)))
    assert m.d_mlp == 48 and m.n_layers == 2
    arch = architecture_for(kind)
    expected_fn = _neox_expected if kind == "gpt_neox" else _gated_expected
    seen: dict[int, torch.Tensor] = {}
    blocks = m.model.gpt_neox.layers if kind == "gpt_neox" else m.model.model.layers
    handles = [
        b.mlp.register_forward_pre_hook(
            lambda mod, args, L=L: seen.__setitem__(L, expected_fn(mod, args[0]))
        )
        for L, b in enumerate(blocks)
    ]
    ids = torch.tensor([[5, 17, 200, 3, 99]])
    try:
        acts = m.neuron_activations(ids)
    finally:
        for h in handles:
            h.remove()
    assert arch.name in m.architecture
    for layer in (0, 1):
        assert acts[layer].shape == (1, 5, 48)
        torch.testing.assert_close(acts[layer], seen[layer])


def test_unknown_architecture_lists_supported():
    with pytest.raises(ModelUnavailable, match="gpt2"):
        architecture_for("no_such_family")
    assert {"gpt2", "gpt_neox", "llama", "gemma3_text"} <= set(ARCHITECTURES)


def test_missing_folder_is_bad_input(tmp_path):
    from neuronatlas.errors import BadInput

    with pytest.raises(BadInput):
        load_model(str(tmp_path / "nope"))


def test_bfloat16_returns_float32(tiny_gpt2_dir):
    m = load_model(str(tiny_gpt2_dir), dtype="bfloat16")
    out = m.neuron_activations(torch.tensor([[3797, 262]]))
    assert out[0].dtype == torch.float32
    assert out[0][0, 0, 3].item() == pytest.approx(7.47, abs=0.1)


@pytest.mark.slow
def test_default_gemma_loads_from_cache():
    import time

    from neuronatlas.models.default import ensure_default_model

    ensure_default_model()
    t = time.perf_counter()
    m = load_model("default")
    assert time.perf_counter() - t < 60
    assert (m.architecture, m.n_layers, m.d_mlp) == ("gemma3", 18, 2048)
    assert m.revision and m.revision.startswith("gguf-sha256:")
    ids = m.tokenizer("The cat sat on the mat.", return_tensors="pt").input_ids
    assert ids[0, 0].item() == m.bos_token_id
    strings = m.token_strings(ids[0])
    assert strings[1:3] == ["The", " cat"]
    acts = m.neuron_activations(ids, layers=[0, 5])
    assert acts[5].shape == (1, ids.shape[1], 2048)
    assert torch.isfinite(acts[5]).all()
