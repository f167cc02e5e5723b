"""Steering and ablation (`neuronatlas.steer`, `neuronatlas steer`, `POST /api/steer`) on the
steering GPT-2 of tests/tiny_models.py: neuron L00N0009 fires only on " Paris" and writes the
unembedding of " France" into the residual stream; no other neuron writes anything; layer 1's
attention carries a change at one position to later ones (never to earlier ones).

So ablating L00N0009 must move the prediction where " Paris" is, leave every position before
the first " Paris" exactly as it was, and move later positions only a little (through
attention): the assertions below say exactly that and no more.
"""

from __future__ import annotations

import copy
import json

import msgspec
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from neuronatlas.cli import app as cli_app
from neuronatlas.errors import BadInput, BadNeuronId, NeuronNotFound
from neuronatlas.ids import parse_id
from neuronatlas.models import load_model, wrap_model
from neuronatlas.steer import MAX_TOKENS, SteerResult, json_schema, steer
from neuronatlas.web import create_app

torch = pytest.importorskip("torch")

DETECTOR = "L00N0009"
TEXT = "We flew from Rome to Paris and then Paris again."
EXACT = 1e-6  # an unchanged position: the same computation, KL 0 up to rounding
MOVED = 1.0  # nats: where the detector fires, ablating it swaps the likely next token


@pytest.fixture(scope="module")
def model(steer_gpt2_dir):
    return load_model(str(steer_gpt2_dir))


def paris_positions(result: SteerResult) -> list[int]:
    return [i for i, t in enumerate(result.tokens) if t == " Paris"]


def test_ablating_the_paris_detector_moves_predictions_where_paris_is(model):
    r = steer(model, TEXT, DETECTOR, "ablate", prepend_bos=True)
    n = len(r.tokens)
    assert r.tokens[0] == "We" and n == len(r.kl) == len(r.top) == len(r.activations)
    paris = paris_positions(r)
    assert len(paris) == 2
    assert all(r.activations[i] > 5 for i in paris)
    assert all(abs(r.activations[i]) < 1e-3 for i in range(n) if i not in paris)
    # where " Paris" is: the detector's " France" is gone
    for i in paris:
        assert r.kl[i] > MOVED
        france = next(c for c in r.top[i] if c.token == " France")
        assert france.before > 0.5 and france.after < 0.01
        assert france.change == pytest.approx(france.after - france.before, abs=1e-5)
    # before the first " Paris" nothing can change: causal attention, the neuron ≈ 0 there
    assert all(kl < EXACT for kl in r.kl[: paris[0]])
    assert all(c.change == 0 for top in r.top[: paris[0]] for c in top)
    # after it, attention carries a trace of the change: far smaller than where Paris is
    others = [r.kl[i] for i in range(n) if i not in paris]
    assert max(others) < 0.1 * min(r.kl[i] for i in paris)


def test_text_without_paris_is_unchanged_and_so_is_its_continuation(model):
    r = steer(model, "A cat sat on the mat", DETECTOR, "ablate", prepend_bos=True)
    assert max(r.kl) < EXACT
    assert r.continuation.before == r.continuation.after
    assert len(r.continuation.before.tokens) == 20


def test_continuation_after_paris_loses_france(model):
    r = steer(model, "We flew from Rome to Paris", DETECTOR, "ablate", prepend_bos=True)
    assert r.continuation.before.tokens[0] == " France"
    assert " France" not in r.continuation.after.tokens
    assert r.continuation.before.text == "".join(r.continuation.before.tokens)


def _generate(hf_model, ids, n):
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=n, do_sample=False, num_beams=1, eos_token_id=None)
    batch = torch.tensor([ids])
    with torch.inference_mode():
        out = hf_model.generate(
            input_ids=batch, attention_mask=torch.ones_like(batch), generation_config=config
        )
    return out[0, len(ids) :].tolist()


def test_continuations_are_what_generate_gives(model):
    """The greedy loop on the comparison pass's cache decodes what `generate` decodes, with
    and without the edit (the edit as weights: row 9 of c_proj zeroed)."""
    ids = [model.bos_token_id, *model.tokenizer("We flew from Rome to Paris")["input_ids"]]
    r = steer(model, "We flew from Rome to Paris", DETECTOR, "ablate", prepend_bos=True)
    m = copy.deepcopy(model.model)
    with torch.no_grad():
        m.transformer.h[0].mlp.c_proj.weight[9] = 0
    for got, hf in [(r.continuation.before, model.model), (r.continuation.after, m)]:
        assert got.tokens == model.token_strings(_generate(hf, ids, 20))


def _log_probs(hf_model, ids):
    with torch.inference_mode():
        return hf_model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)


def test_modes_match_edited_output_weights_gpt2(model):
    """GPT-2's neuron is the input of mlp.c_proj (x @ W + b): ablate ≡ row n of W zeroed,
    scale s ≡ row n times s, clamp v ≡ row n zeroed and v·W[n] added to the bias."""
    ids = [model.bos_token_id, *model.tokenizer(TEXT)["input_ids"]]
    base = _log_probs(model.model, ids)[1:]
    n = 9

    def edited(fn):
        m = copy.deepcopy(model.model)
        with torch.no_grad():
            fn(m.transformer.h[0].mlp.c_proj)
        return _log_probs(m, ids)[1:]

    def zero(p):
        p.weight[n] = 0

    def times3(p):
        p.weight[n] *= 3

    def clamp2(p):
        p.bias += 2.0 * p.weight[n]
        p.weight[n] = 0

    for (mode, value), fn in [
        (("ablate", None), zero),
        (("scale", 3.0), times3),
        (("clamp", 2.0), clamp2),
    ]:
        r = steer(model, TEXT, DETECTOR, mode, value, prepend_bos=True, new_tokens=0)
        after = edited(fn)
        assert_matches(r, base, after)


def assert_matches(r: SteerResult, before, after) -> None:
    for pos, top in enumerate(r.top):
        for c in top:
            assert c.before == pytest.approx(float(before[pos, c.token_id].exp()), abs=2e-6)
            assert c.after == pytest.approx(float(after[pos, c.token_id].exp()), abs=2e-6)
    kl = (before.exp() * (before - after)).sum(-1).clamp(min=0)
    assert r.kl == pytest.approx(kl.tolist(), abs=2e-5)


@pytest.fixture(scope="module")
def llama():
    """A tiny Llama-style model (gated MLP, random weights: every neuron writes something)
    as (the transformers model, its LoadedModel)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from tiny_models import gpt2_tokenizer

    config = AutoConfig.for_model(
        "llama",
        vocab_size=512,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
    )
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # sharp predictions and neurons that matter, so edits show
        hf.lm_head.weight *= 20
        hf.model.layers[1].mlp.down_proj.weight[:, 7] *= 100
        hf.model.layers[1].mlp.down_proj.weight[:, 11] *= 100
        hf.model.layers[0].mlp.down_proj.weight[:, 3] *= 100
    return hf, wrap_model(hf, gpt2_tokenizer(), "tiny-llama")


LLAMA_TEXT = "a b c d e"  # GPT-2 ids of these stay below the tiny vocabulary's 512


def _down_proj_times(hf, columns: dict[tuple[int, int], float]):
    """A copy of the Llama with column n of layer l's down_proj multiplied by each factor:
    what editing neuron (l, n) by that factor means, done on the weights, not by a hook."""
    m = copy.deepcopy(hf)
    with torch.no_grad():
        for (layer, n), factor in columns.items():
            m.model.layers[layer].mlp.down_proj.weight[:, n] *= factor
    return m


def test_gated_mlp_edits_the_input_of_down_proj(llama):
    """Llama-style MLP: the neuron is act(gate x) · up x, the input of down_proj (no bias):
    scale s ≡ column n of down_proj's weight times s, ablate ≡ that column zeroed."""
    hf, loaded = llama
    ids = loaded.tokenizer(LLAMA_TEXT)["input_ids"]
    assert max(ids) < 512
    base = _log_probs(hf, ids)
    for mode, value, factor in [("scale", 4.0, 4.0), ("ablate", None, 0.0)]:
        r = steer(loaded, LLAMA_TEXT, "L01N0007", mode, value, new_tokens=3)
        m = _down_proj_times(hf, {(1, 7): factor})
        assert_matches(r, base, _log_probs(m, ids))
        assert max(abs(c.change) for top in r.top for c in top) > 0.01
        assert len(r.continuation.after.tokens) == 3
        assert r.continuation.after.tokens == loaded.token_strings(_generate(m, ids, 3))


# --- groups: several neurons changed together ------------------------------------------------

GROUP = ["L01N0007", "L00N0003", "L01N0011"]  # two in layer 1, one in layer 0


@pytest.mark.parametrize(("mode", "value", "factor"), [("ablate", None, 0.0), ("scale", 3.0, 3.0)])
def test_group_edit_is_every_column_edited_at_once(llama, mode, value, factor):
    """A group is its edits applied together: the same predictions and continuation as the
    model with each neuron's down_proj column edited, and not what any one edit alone does
    (each neuron moves the prediction, so dropping one from the group would show)."""
    hf, loaded = llama
    ids = loaded.tokenizer(LLAMA_TEXT)["input_ids"]
    base = _log_probs(hf, ids)
    r = steer(loaded, LLAMA_TEXT, GROUP, mode, value, new_tokens=3)
    m = _down_proj_times(hf, {parse_id(i): factor for i in GROUP})
    assert_matches(r, base, _log_probs(m, ids))
    assert r.continuation.after.tokens == loaded.token_strings(_generate(m, ids, 3))
    assert r.neurons == GROUP and r.neuron == GROUP[0] and r.mode == mode
    for alone in GROUP:
        single = steer(loaded, LLAMA_TEXT, alone, mode, value, new_tokens=0)
        assert max(abs(a - b) for a, b in zip(single.kl, r.kl, strict=True)) > 1e-3
    for others in ([GROUP[0], GROUP[1]], [GROUP[1], GROUP[2]]):
        pair = steer(loaded, LLAMA_TEXT, others, mode, value, new_tokens=0)
        assert max(abs(a - b) for a, b in zip(pair.kl, r.kl, strict=True)) > 1e-3


def test_group_activations_are_each_neurons_own(llama):
    """`group_activations[j]` is what a single-neuron run reports for `neurons[j]` (recorded
    before any edit); `activations` is the first neuron's; a repeated neuron counts once."""
    _, loaded = llama
    r = steer(loaded, LLAMA_TEXT, "L1N7, 0:3,L01N0011,L01N0007", "ablate", new_tokens=0)
    assert r.neurons == GROUP
    assert len(r.group_activations) == 3 and r.activations == r.group_activations[0]
    for nid, acts in zip(r.neurons, r.group_activations, strict=True):
        assert acts == steer(loaded, LLAMA_TEXT, nid, "ablate", new_tokens=0).activations
        assert len(acts) == len(r.tokens) and max(map(abs, acts)) > 0


def test_a_group_is_one_hook_per_layer(llama):
    from neuronatlas.steer import make_edits
    from neuronatlas.steer.edit import applied

    _, loaded = llama
    many = [f"L00N{n:04d}" for n in range(20)] + [f"L01N{n:04d}" for n in range(30, 48)]
    edits = make_edits(loaded, many, "scale", 0.5)
    hooks = [loaded.projection(layer)._forward_pre_hooks for layer in (0, 1)]
    assert [len(h) for h in hooks] == [0, 0]
    with applied(loaded, edits):
        assert [len(h) for h in hooks] == [1, 1]
    assert [len(h) for h in hooks] == [0, 0]
    with applied(loaded, edits[:3]):  # layer 0 only
        assert [len(h) for h in hooks] == [1, 0]


def test_target_reports_the_answers_probability_before_and_after(model):
    """Ablating the Paris detector takes " France" after "... Paris" from the likeliest next
    token to an unlikely one; the target's numbers are the last position's own."""
    r = steer(
        model,
        "We flew from Rome to Paris",
        DETECTOR,
        "ablate",
        prepend_bos=True,
        k=20,
        target=" France",
    )
    t = r.target
    assert t is not None and t.token == " France"
    assert (t.token_id,) == tuple(model.tokenizer(" France")["input_ids"])
    assert t.before > 0.5 and t.rank_before == 1
    assert t.after < 0.01 and t.rank_after > 1
    assert t.change == pytest.approx(t.after - t.before, abs=1e-5)
    last = next(c for c in r.top[-1] if c.token == " France")
    assert (t.before, t.after) == (last.before, last.after)
    # the rank is the token's place in the whole distribution after the edit
    ids = [model.bos_token_id, *model.tokenizer("We flew from Rome to Paris")["input_ids"]]
    m = copy.deepcopy(model.model)
    with torch.no_grad():
        m.transformer.h[0].mlp.c_proj.weight[9] = 0
    after = _log_probs(m, ids)[-1]
    assert t.rank_after == 1 + int((after > after[t.token_id]).sum())
    assert steer(model, "Rome", DETECTOR, "ablate").target is None


@pytest.mark.parametrize(
    ("target", "says"),
    [(" Francexyz", r"is \d tokens \(' France', "), ("", "target is empty")],
)
def test_target_must_be_one_token(model, target, says):
    with pytest.raises(BadInput, match=says):
        steer(model, TEXT, DETECTOR, "ablate", target=target)


@pytest.mark.parametrize(
    ("neurons", "error", "says"),
    [
        ([DETECTOR, "L05N0001"], BadInput, r"L05N0001 is outside the model: layers 0-1, neurons"),
        ([DETECTOR, "L00N0256"], BadInput, "neurons 0-255"),
        ([], BadInput, "no neuron given"),
        ("", BadInput, "no neuron given"),
        ([f"L00N{n:04d}" for n in range(257)], BadInput, "257 neurons: steering takes at most 256"),
        (f"{DETECTOR},nope", BadNeuronId, "'nope' is not a neuron id"),
        (f"{DETECTOR},", BadNeuronId, "is not a neuron id"),
        ([DETECTOR, 5], BadInput, "5 is not a neuron id"),
    ],
)
def test_bad_groups_are_typed_errors(model, neurons, error, says):
    with pytest.raises(error, match=says):
        steer(model, TEXT, neurons, "ablate")


def test_identity_edits_change_nothing(model):
    same = steer(model, TEXT, DETECTOR, "scale", 1.0, prepend_bos=True)
    assert max(same.kl) < EXACT and same.continuation.before == same.continuation.after
    zero = steer(model, TEXT, DETECTOR, "clamp", 0.0, prepend_bos=True)
    ablate = steer(model, TEXT, DETECTOR, "ablate", prepend_bos=True)
    assert zero.kl == ablate.kl and zero.top == ablate.top


def test_clamping_everywhere_writes_france_everywhere(model):
    r = steer(model, "A cat sat on the mat", DETECTOR, "clamp", 7.5, prepend_bos=True)
    for top in r.top:
        assert top[0].token == " France" and top[0].after > 0.5
    assert min(r.kl) > MOVED
    assert r.continuation.after.tokens == [" France"] * 20
    assert r.value == 7.5 and r.mode == "clamp"


def test_scaling_orders_the_prediction(model):
    """ " France" after " Paris" grows with the factor: ablated < scaled down < as is < scaled
    up (the final LayerNorm saturates the growth above 1)."""

    def france(result: SteerResult) -> list[float]:
        return [
            next(c.after for c in result.top[i] if c.token == " France")
            for i in paris_positions(result)
        ]

    runs = {
        s: france(steer(model, TEXT, DETECTOR, "scale", s, prepend_bos=True, k=20, new_tokens=0))
        for s in (0.0, 0.02, 1.0, 2.0)
    }
    for i in range(2):
        ablated, down, same, up = (runs[s][i] for s in (0.0, 0.02, 1.0, 2.0))
        assert ablated < 0.01 < down < same - 0.5 < same < up


@pytest.mark.parametrize(
    ("neuron", "mode", "value", "text", "error", "says"),
    [
        ("L0N", "ablate", None, TEXT, BadNeuronId, "not a neuron id"),
        ("L05N0001", "ablate", None, TEXT, BadInput, "outside the model"),
        ("L00N0999", "ablate", None, TEXT, BadInput, "outside the model"),
        (DETECTOR, "boost", None, TEXT, BadInput, "choose one of ablate, clamp, scale"),
        (DETECTOR, "clamp", None, TEXT, BadInput, "needs a value"),
        (DETECTOR, "scale", float("nan"), TEXT, BadInput, "finite"),
        (DETECTOR, "clamp", float("inf"), TEXT, BadInput, "finite"),
        (DETECTOR, "clamp", 1e6, TEXT, BadInput, "within"),
        (DETECTOR, "ablate", 1.0, TEXT, BadInput, "takes no value"),
        (DETECTOR, "ablate", None, "  \n ", BadInput, "empty"),
        (DETECTOR, "ablate", None, "x" * 1001, BadInput, "at most 1000"),
        (DETECTOR, "ablate", None, "1 " * 200, BadInput, f"at most {MAX_TOKENS}"),
    ],
)
def test_bad_input_is_a_typed_error(model, neuron, mode, value, text, error, says):
    with pytest.raises(error, match=says):
        steer(model, text, neuron, mode, value)


def test_bad_counts(model):
    with pytest.raises(BadInput, match="k=0"):
        steer(model, TEXT, DETECTOR, "ablate", k=0)
    with pytest.raises(BadInput, match="new_tokens=65"):
        steer(model, TEXT, DETECTOR, "ablate", new_tokens=65)


# --- the CLI and the HTTP API over a real atlas whose meta names the model -----------------


def test_cli_json_aligns_tokens_and_kl(steer_atlas_path):
    result = CliRunner().invoke(
        cli_app,
        ["steer", DETECTOR, "We flew from Rome to Paris", "--db", str(steer_atlas_path), "--json"],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["tokens"] == ["We", " flew", " from", " Rome", " to", " Paris"]
    assert len(body["kl"]) == len(body["tokens"]) == len(body["top"])
    assert body["kl"][-1] > MOVED and max(body["kl"][:-1]) < EXACT
    assert body["mode"] == "ablate" and body["value"] is None
    msgspec.json.decode(result.stdout, type=SteerResult)  # the document is the typed record


def test_cli_table_and_flags(steer_atlas_path):
    run = CliRunner().invoke(
        cli_app,
        ["steer", "0:9", "to Paris", "--db", str(steer_atlas_path), "--scale", "0", "--k", "2"],
    )
    assert run.exit_code == 0, run.output
    assert "L00N0009 scale 0" in run.stdout and "' France'" in run.stdout
    assert "with the edit" in run.stdout
    both = CliRunner().invoke(
        cli_app,
        ["steer", DETECTOR, "Paris", "--db", str(steer_atlas_path), "--clamp", "1", "--ablate"],
    )
    assert both.exit_code != 0 and "choose one of" in str(both.exception)
    stranger = CliRunner().invoke(
        cli_app, ["steer", "L00N0100", "Paris", "--db", str(steer_atlas_path)]
    )
    assert isinstance(stranger.exception, NeuronNotFound)


def test_cli_group_with_target(steer_atlas_path):
    """A comma-separated group and --target: the JSON names both neurons, a column per
    neuron in the table, and the answer's probability falls with the detector ablated."""
    args = ["steer", "L00N0009,0:1", "We flew from Rome to Paris", "--db", str(steer_atlas_path)]
    run = CliRunner().invoke(cli_app, [*args, "--target", " France", "--json"])
    assert run.exit_code == 0, run.output
    body = msgspec.json.decode(run.stdout, type=SteerResult)
    assert body.neurons == [DETECTOR, "L00N0001"] and body.neuron == DETECTOR
    assert body.target is not None and body.target.before > 0.5 > 0.01 > body.target.after
    table = CliRunner().invoke(cli_app, [*args, "--target", " France"])
    assert table.exit_code == 0, table.output
    assert "L00N0009, L00N0001 ablate" in table.stdout and "target ' France'" in table.stdout
    header = next(line for line in table.stdout.splitlines() if "KL" in line)
    assert "L00N0009" in header and "L00N0001" in header  # one activation column each
    bad = CliRunner().invoke(cli_app, [*args, "--target", "France and more"])
    assert isinstance(bad.exception, BadInput) and "not one" in str(bad.exception)
    stranger = CliRunner().invoke(
        cli_app, ["steer", "L00N0009,L01N0100", "Paris", "--db", str(steer_atlas_path)]
    )
    assert isinstance(stranger.exception, NeuronNotFound) and "L01N0100" in str(stranger.exception)


def test_atlas_steer_takes_a_list_or_one_id(steer_atlas_path):
    from neuronatlas import Atlas

    with Atlas(steer_atlas_path) as atlas:
        group = atlas.steer(["0:9", "L01N0002"], "to Paris", new_tokens=0)
        one = atlas.steer("L0N9", "to Paris", new_tokens=0)
    assert group.neurons == [DETECTOR, "L01N0002"] and one.neurons == [DETECTOR]
    assert one.kl[-1] > MOVED and group.kl == pytest.approx(one.kl, abs=1e-6)  # L01N0002 writes 0


@pytest.fixture(scope="module")
def client(steer_atlas_path):
    with TestClient(create_app(steer_atlas_path)) as c:  # the model the atlas names
        yield c


def test_api_steer_matches_the_library(client, model):
    r = client.post(
        "/api/steer", json={"text": TEXT, "neuron": "0:9", "mode": "scale", "value": 0.5, "k": 3}
    )
    assert r.status_code == 200, r.text
    got = msgspec.json.decode(r.content, type=SteerResult)
    want = steer(model, TEXT, DETECTOR, "scale", 0.5, prepend_bos=True, k=3)
    assert got.neuron == DETECTOR and got.tokens == want.tokens
    assert got.kl == pytest.approx(want.kl, abs=1e-6)
    assert got.continuation == want.continuation


def test_api_response_follows_its_declared_schema(client):
    import jsonschema

    spec = client.get("/openapi.json").json()["paths"]["/api/steer"]["post"]
    declared = spec["responses"]["200"]["content"]["application/json"]["schema"]
    assert declared == json_schema(SteerResult)
    assert {"tokens", "kl", "top", "continuation"} <= set(declared["required"])
    assert "503" in spec["responses"]
    body = client.post(
        "/api/steer", json={"text": TEXT, "neuron": DETECTOR, "mode": "ablate"}
    ).json()
    jsonschema.validate(body, declared)


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"text": TEXT, "neuron": DETECTOR, "mode": "clamp"}, 422, "invalid"),
        ({"text": TEXT, "neuron": DETECTOR, "mode": "boost", "value": 1}, 422, "invalid"),
        ({"text": "", "neuron": DETECTOR, "mode": "ablate"}, 422, "invalid"),
        ({"text": TEXT, "neuron": DETECTOR, "mode": "scale", "value": 1e9}, 422, "invalid"),
        ({"text": TEXT, "neuron": "L00N0100", "mode": "ablate"}, 404, "not_found"),
        ({"text": TEXT, "neuron": "nope", "mode": "ablate"}, 422, "invalid"),  # not an id pattern
        ({"text": "1 " * 200, "neuron": DETECTOR, "mode": "ablate"}, 400, "bad_input"),
    ],
)
def test_api_bad_requests(client, payload, status, code):
    r = client.post("/api/steer", json=payload)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_api_group_and_target_match_the_library(client, model):
    r = client.post(
        "/api/steer",
        json={
            "text": "We flew from Rome to Paris",
            "neurons": ["L0N1", "0:9", "L00N0001"],
            "mode": "ablate",
            "target": " France",
            "new_tokens": 3,
        },
    )
    assert r.status_code == 200, r.text
    got = msgspec.json.decode(r.content, type=SteerResult)
    want = steer(
        model,
        "We flew from Rome to Paris",
        ["L00N0001", DETECTOR],
        "ablate",
        prepend_bos=True,
        new_tokens=3,
        target=" France",
    )
    assert got.neurons == ["L00N0001", DETECTOR] and got.neuron == "L00N0001"
    assert got.target == want.target and got.target is not None and got.target.rank_before == 1
    assert got.kl == pytest.approx(want.kl, abs=1e-6)
    assert got.group_activations == want.group_activations
    assert got.continuation == want.continuation
    old = client.post("/api/steer", json={"text": "to Paris", "neuron": "0:9", "mode": "ablate"})
    assert old.json()["neurons"] == [DETECTOR] and old.json()["target"] is None


@pytest.mark.parametrize(
    ("payload", "status", "code", "says"),
    [
        ({"text": TEXT, "mode": "ablate"}, 422, "invalid", "exactly one of `neuron`"),
        (
            {"text": TEXT, "neuron": DETECTOR, "neurons": [DETECTOR], "mode": "ablate"},
            422,
            "invalid",
            "exactly one of `neuron`",
        ),
        ({"text": TEXT, "neuron": None, "mode": "ablate"}, 422, "invalid", "exactly one"),
        ({"text": TEXT, "neurons": [], "mode": "ablate"}, 422, "invalid", "at least 1 item"),
        (
            {"text": TEXT, "neurons": [DETECTOR] * 257, "mode": "ablate"},
            422,
            "invalid",
            "at most 256 items",
        ),
        ({"text": TEXT, "neurons": DETECTOR, "mode": "ablate"}, 422, "invalid", "valid list"),
        ({"text": TEXT, "neurons": [DETECTOR, "x"], "mode": "ablate"}, 422, "invalid", "neurons.1"),
        (
            {"text": TEXT, "neurons": [DETECTOR, "L01N0100"], "mode": "ablate"},
            404,
            "not_found",
            "L01N0100 is not in this atlas",
        ),
        (
            {"text": TEXT, "neuron": DETECTOR, "mode": "ablate", "target": "France and more"},
            400,
            "bad_input",
            "not one",
        ),
        (
            {"text": TEXT, "neuron": DETECTOR, "mode": "ablate", "target": ""},
            422,
            "invalid",
            "target",
        ),
    ],
)
def test_api_bad_groups(client, payload, status, code, says):
    r = client.post("/api/steer", json=payload)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and says in error["message"], error


def test_api_without_a_model_is_503(steer_atlas_path, tmp_path):
    app = create_app(steer_atlas_path, model=str(tmp_path / "no-such-model"))
    with TestClient(app) as c:
        r = c.post("/api/steer", json={"text": TEXT, "neuron": DETECTOR, "mode": "ablate"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "model_unavailable"


def test_neuron_page_offers_the_steering_panel(client):
    page = client.get(f"/neurons/{DETECTOR}", headers={"accept": "text/html"}).text
    assert 'id="steer-form"' in page and f'data-neuron="{DETECTOR}"' in page
    assert "/static/steer.js" in page
    assert client.get("/static/steer.js").status_code == 200


@pytest.mark.slow
def test_default_gemma_ablation_is_the_down_proj_column_removed():
    """On the offline default Gemma-3-270M (gated MLP): ablating L05N0100 predicts exactly
    what the model predicts with column 100 of layer 5's down_proj zeroed."""
    m = load_model("default")
    text = "The Eiffel Tower is in Paris, the capital of France."
    r = steer(m, text, "L05N0100", "ablate", prepend_bos=True, new_tokens=4)
    ids = [m.bos_token_id, *m.tokenizer(text, add_special_tokens=False)["input_ids"]]
    assert len(r.tokens) == len(r.kl) == len(ids) - 1
    before = _log_probs(m.model, ids)[1:]
    weight = m.model.model.layers[5].mlp.down_proj.weight
    saved = weight[:, 100].clone()
    try:
        with torch.no_grad():
            weight[:, 100] = 0
        after = _log_probs(m.model, ids)[1:]
    finally:
        with torch.no_grad():
            weight[:, 100] = saved
    assert_matches(r, before, after)
    assert max(r.kl) > 0 and len(r.continuation.before.tokens) == 4
