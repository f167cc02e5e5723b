"""`neuronatlas trace`: attribution graphs over a model's own neurons (neuronatlas.trace).

The claims tested, each on real computation with tiny models:
- completeness: in the linearised model, every computed row's edges plus its constant equal
  the node's value to float error (float64), for GPT-2 and gated Gemma-3 / Llama MLPs, for
  neuron and logit rows, with unselected neurons in rest buckets; the constants come from a
  separate forward with every source at 0, so the identity is not true by construction;
- the values are the real model's (neuron activations, demeaned logits);
- a planted circuit (tests/tiny_models.py:build_circuit_gpt2) is found in order with
  positive weights, and an equally active distractor circuit is left out;
- the Neuronpedia JSON validates against the schema shipped with the package;
- ablating a node in the real model moves the target logit as the graph predicts;
- bad input is a one-line typed error and writes nothing; the CLI runs end to end.
"""

from __future__ import annotations

import json

import jsonschema
import msgspec
import numpy as np
import pytest
from typer.testing import CliRunner

import tiny_models as tm
from neuronatlas.cli import app as cli_app
from neuronatlas.errors import BadInput, ModelUnavailable
from neuronatlas.ids import format_id
from neuronatlas.models import load_model, wrap_model
from neuronatlas.trace import (
    MAX_TOKENS,
    TraceGraph,
    attribute,
    check_interventions,
    schema,
    to_neuronpedia,
    trace,
)

torch = pytest.importorskip("torch")

FLOAT64_EXACT = 1e-10
pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPT = "The cat sat on the mat because the"


def _random_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = tm.gpt2_tokenizer()
    torch.manual_seed(1)
    config = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=3, n_head=2)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:  # LayerNorm gains/biases and linear biases: none trivial
                p.normal_(0.0, 0.3)
    return wrap_model(model.double(), tok, "random-gpt2")


@pytest.fixture(scope="module")
def gpt2():
    return _random_gpt2()


@pytest.fixture(scope="module", params=["gemma3", "llama"])
def gated(request):
    model, tok = tm.tiny_gated_model(request.param)
    return wrap_model(model, tok, f"tiny-{request.param}")


@pytest.fixture(scope="module")
def circuit():
    model, tok = tm.build_circuit_gpt2()
    return wrap_model(model, tok, "circuit-gpt2")


def _ids(model, text=PROMPT):
    return [model.bos_token_id, *model.tokenizer(text, add_special_tokens=False)["input_ids"]]


def _residuals(a) -> np.ndarray:
    r = a.computed
    return a.values[r] - a.adjacency[r].sum(axis=1) - a.constants[r]


# --- completeness ----------------------------------------------------------------------------


@pytest.mark.parametrize("max_nodes", [0, 7, 10_000])
def test_rows_sum_to_values_gpt2(gpt2, max_nodes):
    a = attribute(gpt2, _ids(gpt2), bos=True, max_nodes=max_nodes, candidates=100, batch_size=5)
    assert len(a.neurons) == min(max_nodes, 100)
    assert np.abs(_residuals(a)).max() < FLOAT64_EXACT
    # the identity is not vacuous: GPT-2's bias terms make real constants, the rest buckets
    # carry mass, and neuron as well as logit rows were checked
    assert np.abs(a.constants[a.computed]).max() > 0.01
    buckets = a.adjacency[:, a.rest_offset : a.embedding_offset]
    if max_nodes < 100:
        assert np.abs(buckets[a.computed]).max() > 1e-3
    assert a.computed[a.logit_offset :].all()
    assert a.computed[: a.rest_offset].all()


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_rows_sum_to_values_gated(gated, alpha):
    a = attribute(gated, _ids(gated), bos=True, max_nodes=30, candidates=200, alpha=alpha)
    assert len(a.neurons) == 30
    assert np.abs(_residuals(a)).max() < FLOAT64_EXACT
    # gated families have no biases: every constant is 0 and the edges carry everything
    assert np.abs(a.constants[a.computed]).max() < FLOAT64_EXACT
    assert np.abs(a.values[a.computed]).max() > 0.01


def test_batching_does_not_change_rows(gated):
    ids = _ids(gated)
    one = attribute(gated, ids, bos=True, max_nodes=12, candidates=60, batch_size=1)
    many = attribute(gated, ids, bos=True, max_nodes=12, candidates=60, batch_size=5)
    assert (one.neurons == many.neurons).all()
    assert np.abs(one.adjacency).max() > 0.01
    assert np.allclose(one.adjacency, many.adjacency, atol=1e-12)


def test_transposed_maps_give_the_autograd_rows_gpt2(gpt2):
    _same_rows_both_engines(gpt2, 1.0)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_transposed_maps_give_the_autograd_rows_gated(gated, alpha):
    _same_rows_both_engines(gated, alpha)


def _same_rows_both_engines(model, alpha: float) -> None:
    """The default engine (explicit transposed maps, truncated at each batch's last position
    and each target's layer) computes the same graph as backpropagating replays. The gated
    models differ at ~1e-8: the recorded patterns come from eager attention, whose softmax
    runs in float32 even for a float64 model."""
    ids = _ids(model)
    kw = {"bos": True, "max_nodes": 500, "candidates": 3000, "batch_size": 32, "alpha": alpha}
    fast = attribute(model, ids, **kw)
    ref = attribute(model, ids, engine="autograd", **kw)
    assert (fast.neurons == ref.neurons).all()
    # rows at several layers and positions, so the truncations were exercised
    assert len({int(x) for x in fast.neurons[:, 0]}) > 1
    assert len({int(x) for x in fast.neurons[:, 1]}) > 2
    scale = np.abs(ref.adjacency).max()
    assert scale > 1e-3
    assert np.abs(fast.adjacency - ref.adjacency).max() < 1e-6 * scale
    assert (
        np.abs(fast.total_effect - ref.total_effect).max() < 1e-6 * np.abs(ref.total_effect).max()
    )


def test_values_are_the_real_models(gpt2):
    ids = _ids(gpt2)
    a = attribute(gpt2, ids, bos=True, max_nodes=20, candidates=100)
    acts = gpt2.neuron_activations(ids)
    for j, (layer, pos, idx) in enumerate(a.neurons.tolist()):
        # the atlas reads activations in float32
        assert a.values[j] == pytest.approx(float(acts[layer][0, pos, idx]), abs=1e-6)
    with torch.no_grad():
        logits = gpt2.model(torch.tensor([ids])).logits[0, -1]
    demeaned = (logits - logits.mean()).numpy()
    assert np.allclose(a.values[a.logit_offset :], demeaned[a.logits.token_ids], atol=1e-9)
    # the default targets: the likeliest tokens, in order, weights summing to 1
    assert a.logits.token_ids[0] == int(logits.argmax())
    assert sum(a.logits.weights) == pytest.approx(1.0)


def test_no_neuron_at_bos_is_a_node(gpt2):
    a = attribute(gpt2, _ids(gpt2), bos=True, max_nodes=10_000, candidates=10_000)
    assert len(a.neurons) and (a.neurons[:, 1] > 0).all()


# --- the planted circuit ---------------------------------------------------------------------


def test_planted_circuit_is_found_in_order(circuit):
    g = trace(circuit, "I saw a cat", target=tm.CIRCUIT_TARGET, prepend_bos=True)
    last = len(g.tokens) - 1
    detector, writer = format_id(*tm.CIRCUIT_DETECTOR), format_id(*tm.CIRCUIT_WRITER)
    ranked = [n.neuron_id for n in g.neurons()]
    assert ranked == [writer, detector]  # the distractors are not in the graph at all
    ids = {n.neuron_id: n.node_id for n in g.neurons()}
    (logit,) = [n for n in g.nodes if n.kind == "logit"]
    assert logit.is_target and logit.token == tm.CIRCUIT_TARGET
    emb = f"E_{circuit.tokenizer.encode(tm.CIRCUIT_TOKEN)[0]}_{last}"
    weights = {(k.source, k.target): k.weight for k in g.links}
    chain = [(emb, ids[detector]), (ids[detector], ids[writer]), (ids[writer], logit.node_id)]
    for edge in chain:
        assert weights[edge] > 0.5, edge
    assert all(n.position == last for n in g.neurons())
    assert g.completeness_error < FLOAT64_EXACT


def test_distractor_has_no_influence(circuit):
    ids = _ids(circuit, "I saw a cat")
    (target,) = circuit.tokenizer.encode(tm.CIRCUIT_TARGET)
    a = attribute(circuit, ids, target=target, bos=True, max_nodes=100)
    acts = circuit.neuron_activations(ids)
    last = len(ids) - 1
    # the distractors fire as strongly as the circuit...
    for layer, n in (tm.DISTRACTOR, tm.DISTRACTOR_READER):
        assert float(acts[layer][0, last, n]) > 1.0
    # ...but no path of the graph leads from them to the target: no edge into the logit
    rows = {tuple(x): j for j, x in enumerate(a.neurons.tolist())}
    for layer, n in (tm.DISTRACTOR, tm.DISTRACTOR_READER):
        j = rows.get((layer, last, n))
        if j is not None:
            assert abs(a.adjacency[a.logit_offset, j]) < 1e-10
    # In the real model the distractor's large write still moves the logit, through the final
    # norm's scale only (removing it shrinks the residual, so the rest is scaled up), and the
    # intervention prediction, with norms live, says so; frozen norms predicted 0.
    from neuronatlas.trace.verify import ablated_at, demeaned_logit

    j = rows[(tm.DISTRACTOR[0], last, tm.DISTRACTOR[1])]
    base = demeaned_logit(circuit, ids, target)
    with ablated_at(circuit, *tm.DISTRACTOR, last):
        moved = demeaned_logit(circuit, ids, target) - base
    assert moved > 1.0 and -a.total_effect[j] > 1.0


# --- the Neuronpedia JSON --------------------------------------------------------------------


def test_neuronpedia_json_validates(gpt2):
    g = trace(gpt2, PROMPT, prepend_bos=True, max_nodes=40)
    doc = json.loads(msgspec.json.encode(to_neuronpedia(g, slug="t")))
    jsonschema.validate(doc, schema())
    ids = {n["node_id"] for n in doc["nodes"]}
    assert all(k["source"] in ids and k["target"] in ids for k in doc["links"])
    neurons = [n for n in doc["nodes"] if n["feature_type"] == "cross layer transcoder"]
    assert neurons and sorted(n["rank"] for n in neurons) == list(range(1, len(neurons) + 1))
    for n in neurons:
        layer, idx, pos = (int(x) for x in n["node_id"].split("_"))
        assert n["neuron_id"] == format_id(layer, idx) and n["ctx_idx"] == pos
        assert n["feature"] == (layer + idx) * (layer + idx + 1) // 2 + idx
    logits = [n for n in doc["nodes"] if n["feature_type"] == "logit"]
    assert sum(n["is_target_logit"] for n in logits) == 1
    assert doc["metadata"]["prompt_tokens"] == g.tokens
    # the schema is not vacuous
    broken = {**doc, "nodes": [{**doc["nodes"][0], "feature_type": "neuron"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in doc.items() if k != "links"}, schema())


def test_graph_round_trips_as_a_struct(gpt2):
    g = trace(gpt2, PROMPT, prepend_bos=True, max_nodes=10)
    assert msgspec.json.decode(msgspec.json.encode(g), type=TraceGraph) == g


# --- intervention check ----------------------------------------------------------------------


def test_ablation_matches_prediction_on_the_circuit(circuit):
    g = trace(circuit, "I saw a cat", target=tm.CIRCUIT_TARGET, prepend_bos=True)
    check = check_interventions(circuit, g, top=5)
    by_id = {a.neuron_id: a for a in check.ablations}
    writer = by_id[format_id(*tm.CIRCUIT_WRITER)]
    # the writer's effect on the logit is direct; the prediction is first order in the final
    # norm's scale, which this large ablation moves: within 5%
    assert writer.actual == pytest.approx(writer.predicted, rel=5e-2)
    assert writer.actual < -1.0
    assert check.sign_agreement == 1.0


def _real_grad_x_act(model, ids, token):
    """Per layer [P, d_mlp]: a * d(demeaned logit)/d(a) in the real model, by autograd
    (a zero leaf added to every MLP's neuron values)."""
    from neuronatlas.trace.family import family_of

    fam = family_of(model)
    leaves, values = {}, {}

    def hook(layer):
        def add(_m, args):
            values[layer] = args[0].detach()
            leaves[layer] = torch.zeros_like(args[0], requires_grad=True)
            return (args[0] + leaves[layer], *args[1:])

        return add

    downs = [m.down_proj if fam.gated else m.c_proj for m in fam.mlps]
    handles = [d.register_forward_pre_hook(hook(i)) for i, d in enumerate(downs)]
    try:
        with torch.enable_grad():
            hidden = model.model.base_model(input_ids=torch.tensor([ids])).last_hidden_state
            w_u = model.model.get_output_embeddings().weight
            logit = hidden[0, -1] @ (w_u[token] - w_u.mean(0))
            order = sorted(leaves)
            grads = torch.autograd.grad(logit, [leaves[i] for i in order])
    finally:
        for h in handles:
            h.remove()
    return {i: (g * values[i])[0] for i, g in zip(order, grads, strict=True)}


@pytest.mark.parametrize("family", ["gpt2", "gemma3", "llama"])
def test_total_effect_is_the_real_derivative_when_attention_cannot_move(family, gpt2):
    """With one position every attention pattern is the constant 1, so the graph's
    prediction (norms and activations by their derivatives) is the real model's own
    a * d(logit)/d(a), computed here by autograd through the unmodified model."""
    if family == "gpt2":
        model = gpt2
    else:
        hf, tok = tm.tiny_gated_model(family)
        model = wrap_model(hf, tok, family)
    g = trace(model, "cat", target=" the", max_nodes=30, node_threshold=1, edge_threshold=1)
    assert len(g.token_ids) == 1
    real = _real_grad_x_act(model, g.token_ids, g.target_id)
    nodes = g.neurons()
    assert len(nodes) >= 5 and len({n.layer for n in nodes}) > 1
    scale = max(abs(n.total_effect or 0.0) for n in nodes)
    assert scale > 0
    for node in nodes:
        expected = float(real[node.layer][node.position, node.neuron])
        # float64 models, but eager attention's softmax runs in float32
        assert node.total_effect == pytest.approx(expected, rel=1e-6, abs=1e-6 * scale)


def test_ablation_is_at_the_nodes_position_only(circuit):
    from neuronatlas.trace.verify import ablated_at

    ids = _ids(circuit, "a cat saw a cat")
    layer, n = tm.CIRCUIT_DETECTOR
    seen = []
    with ablated_at(circuit, layer, n, 2):
        acts = circuit.neuron_activations(ids, layers=[0, 1])
    seen = acts[1][0, :, tm.CIRCUIT_WRITER[1]]
    assert float(seen[2]) < 0.05  # its reader is off where the detector was zeroed...
    assert float(seen[5]) > 1.0  # ...and on at the other " cat"


def test_check_ranks_a_random_model(gpt2):
    g = trace(gpt2, PROMPT, target=" the", prepend_bos=True, max_nodes=60)
    check = check_interventions(gpt2, g, top=20)
    assert len(check.ablations) == min(20, len(g.neurons()))
    assert check.spearman is not None and check.spearman > 0.5
    assert check.sign_agreement is not None and check.sign_agreement >= 0.8


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "options", "says"),
    [
        ("   ", {}, "text is empty"),
        ("cat " * (MAX_TOKENS + 1), {}, f"at most {MAX_TOKENS}"),
        ("x" * 1001, {}, "characters"),
        (PROMPT, {"target": " Eiffel Tower"}, "not one"),
        (PROMPT, {"target": ""}, "empty"),
        (PROMPT, {"node_threshold": 0.0}, "node_threshold"),
        (PROMPT, {"edge_threshold": 1.5}, "edge_threshold"),
        (PROMPT, {"max_nodes": -1}, "max_nodes"),
        (PROMPT, {"alpha": 2.0}, "alpha"),
    ],
)
def test_bad_input(gpt2, text, options, says):
    with pytest.raises(BadInput, match=says):
        trace(gpt2, text, **options)


def test_unsupported_family_is_named():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    tok = tm.gpt2_tokenizer()
    config = GPTNeoXConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    model = wrap_model(GPTNeoXForCausalLM(config), tok, "neox")
    with pytest.raises(ModelUnavailable, match="gpt_neox"):
        trace(model, PROMPT)


# --- the atlas and the CLI -------------------------------------------------------------------


DETECTOR = "L00N0009"  # the steering model's " Paris" detector writing " France"
EXPLANATION = "the word Paris"
CLUSTER = "paris / france"


@pytest.fixture
def atlas_path(steer_atlas_path, tmp_path):
    """A private copy of the steering atlas (tests save graphs into it) whose detector has
    an explanation and sits in map cluster CLUSTER."""
    import shutil

    from neuronatlas.store import AtlasWriter, open_writer
    from neuronatlas.store.embed import write_map

    db = tmp_path / "atlas.db"
    shutil.copy(steer_atlas_path, db)
    with AtlasWriter(db) as w:
        w.write_explanations(DETECTOR, "openai", [(EXPLANATION, 0.9, None, None)])
    conn = open_writer(db)
    write_map(
        conn, [(DETECTOR, 1, 0.0, 0.0, 0)], [(0, CLUSTER, [("paris", 1.0)], 1, 0.0, 0.0)], "t", {}
    )
    conn.close()
    return db


def _cli(*args):
    return CliRunner().invoke(cli_app, ["trace", *args])


def test_cli_json_save_and_list(atlas_path):
    db = str(atlas_path)
    run = _cli("We flew from Rome to Paris", "--db", db, "--target", " France", "--json")
    assert run.exit_code == 0, run.output
    doc = json.loads(run.stdout)
    jsonschema.validate(doc, schema())
    top = next(n for n in doc["nodes"] if n.get("rank") == 1)
    assert top["neuron_id"] == DETECTOR and top["ctx_idx"] == 6  # BOS first, " Paris" last
    assert top["explanation"] == top["clerp"] == EXPLANATION  # from the atlas
    empty = _cli("--list", "--db", db, "--json")
    assert empty.exit_code == 0 and json.loads(empty.stdout) == []
    saved = _cli("to Paris", "--db", db, "--target", " France", "--save")
    assert saved.exit_code == 0, saved.output
    assert DETECTOR in saved.stdout and "completeness error" in saved.stdout
    listed = json.loads(_cli("--list", "--db", db, "--json").stdout)
    assert [(x["prompt"], x["target"]) for x in listed] == [("to Paris", " France")]
    from neuronatlas.atlas import Atlas

    with Atlas(atlas_path) as atlas:
        graph = atlas.saved_trace(listed[0]["id"])
        assert graph.neurons()[0].neuron_id == DETECTOR


@pytest.mark.parametrize(
    ("text", "options", "says"),
    [
        ("   ", [], "text is empty"),
        ("cat " * (MAX_TOKENS + 1), [], f"at most {MAX_TOKENS}"),
        ("to Paris", ["--target", " Eiffel Tower"], "not one"),
        ("to Paris", ["--alpha", "1.5"], "--alpha"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(atlas_path, tmp_path, text, options, says):
    out = tmp_path / "graph.json"
    db = str(atlas_path)
    before = json.loads(_cli("--list", "--db", db, "--json").stdout)
    run = _cli(text, "--db", db, *options, "--save", "--out", str(out))
    assert run.exit_code == 2, run.output
    assert says in run.output
    if says != "--alpha":  # Click's own usage errors draw a box; ours are one line
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not out.exists()
    assert json.loads(_cli("--list", "--db", db, "--json").stdout) == before


def test_cli_atlas_without_a_model_exits_2(synthetic_atlas):
    run = _cli("a cat", "--db", str(synthetic_atlas("trace_cli_no_model")))
    assert run.exit_code == 2, run.output
    assert "names no model" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_cli_alpha_reaches_the_graph(atlas_path):
    run = _cli("to Paris", "--db", str(atlas_path), "--json", "--alpha", "0.25")
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["metadata"]["linearisation"]["gated_alpha"] == 0.25


def test_cli_out_file_and_group(atlas_path, tmp_path):
    out = tmp_path / "graph.json"
    run = _cli(
        "From Paris to Paris",
        "--db",
        str(atlas_path),
        "--out",
        str(out),
        "--group",
        "cluster",
        "--target",
        " France",
        "--max-nodes",
        "20",
        "--node-threshold",
        "1",
        "--edge-threshold",
        "1",
    )
    assert run.exit_code == 0, run.output
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, schema())
    detector = sorted(n["node_id"] for n in doc["nodes"] if n.get("neuron_id") == DETECTOR)
    assert len(detector) == 2  # on both " Paris"
    assert all(n["cluster"] == CLUSTER for n in doc["nodes"] if n.get("neuron_id") == DETECTOR)
    (group,) = doc["qParams"]["supernodes"]
    assert group[0] == CLUSTER and sorted(group[1:]) == detector


def test_atlas_without_a_model_is_a_one_line_error(synthetic_atlas):
    from neuronatlas.atlas import Atlas

    with (
        Atlas(synthetic_atlas("trace_no_model")) as atlas,
        pytest.raises(ModelUnavailable, match="names no model"),
    ):
        atlas.trace("a cat")


def test_atlas_trace_is_the_library_trace(atlas_path, steer_gpt2_dir):
    from neuronatlas.atlas import Atlas

    model = load_model(str(steer_gpt2_dir))
    direct = trace(model, "to Paris", target=" France", prepend_bos=True)
    with Atlas(atlas_path) as atlas:
        annotated = atlas.trace("to Paris", " France")
    assert [n.node_id for n in annotated.nodes] == [n.node_id for n in direct.nodes]
    assert [n.value for n in annotated.nodes] == [n.value for n in direct.nodes]
    assert annotated.neurons()[0].explanation == EXPLANATION
