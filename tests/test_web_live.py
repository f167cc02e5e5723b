"""Live activations (`POST /api/activate`, `neuronatlas activate`) with a tiny GPT-2 whose
neurons L00N0003, L01N0005, L01N0007 detect " cat", " dog", " the"."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from neuronatlas.cli import app as cli_app
from neuronatlas.web import create_app


@pytest.fixture(scope="module")
def atlas_path(synthetic_atlas):
    # The tiny model has 2 layers × 256 neurons; the atlas stores the first 8 of each layer.
    return synthetic_atlas("live", layers=2, per_layer=8)


@pytest.fixture(scope="module")
def client(atlas_path, tiny_gpt2_dir):
    with TestClient(create_app(atlas_path, model=str(tiny_gpt2_dir))) as c:
        yield c


def peaks(tiny_dir) -> dict[str, float]:
    table = json.loads((tiny_dir / "detectors.json").read_text())
    return {nid: row["peak"] for nid, row in table.items()}


def test_strongest_neurons_per_token(client, tiny_gpt2_dir):
    r = client.post("/api/activate", json={"text": "A dog and the cat", "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tokens"] == ["A", " dog", " and", " the", " cat"] and body["truncated"] is False
    tops = {tok: top for tok, top in zip(body["tokens"], body["top"], strict=False)}
    want = peaks(tiny_gpt2_dir)
    for tok, nid in [(" dog", "L01N0005"), (" the", "L01N0007"), (" cat", "L00N0003")]:
        first = tops[tok][0]
        assert first["id"] == nid
        assert first["activation"] == pytest.approx(want[nid], rel=1e-3)
        assert first["explanation"].startswith("the word")  # stored in the atlas
    assert all(len(top) == 3 for top in body["top"])


def test_one_neuron_per_token(client, tiny_gpt2_dir):
    r = client.post("/api/activate", json={"text": "my cat, your cat", "neuron": "0:3"})
    body = r.json()
    assert body["neuron"] == "L00N0003"
    acts = dict(zip(range(len(body["tokens"])), body["activations"], strict=False))
    on_cat = [acts[i] for i, t in enumerate(body["tokens"]) if t == " cat"]
    off_cat = [acts[i] for i, t in enumerate(body["tokens"]) if t != " cat"]
    assert len(on_cat) == 2 and min(on_cat) > 5 and max(off_cat) < 0.5
    assert "n2g_prediction" in body


def test_neuron_outside_the_atlas_is_404(client):
    r = client.post("/api/activate", json={"text": "cat", "neuron": "L01N0200"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_neuron_page_offers_the_live_box(client):
    page = client.get("/neurons/L00N0003", headers={"accept": "text/html"}).text
    assert 'id="live-form"' in page and 'data-neuron="L00N0003"' in page


def test_cli_activate_json(atlas_path, tiny_gpt2_dir):
    result = CliRunner().invoke(
        cli_app,
        [
            "activate",
            " the dog",
            "--db",
            str(atlas_path),
            "--model",
            str(tiny_gpt2_dir),
            "--k",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["tokens"] == [" the", " dog"]
    assert [top[0]["id"] for top in body["top"]] == ["L01N0007", "L01N0005"]


def test_cli_activate_table_and_missing_model(atlas_path, tiny_gpt2_dir):
    result = CliRunner().invoke(
        cli_app,
        ["activate", "cat", "--db", str(atlas_path), "--model", str(tiny_gpt2_dir), "--k", "1"],
    )
    assert result.exit_code == 0 and "L00N0003" not in result.stdout  # "cat" ≠ " cat"
    assert "'cat'" in result.stdout
    missing = CliRunner().invoke(cli_app, ["activate", "cat", "--db", str(atlas_path)])
    assert missing.exit_code != 0
    assert "--model" in str(missing.exception)


def test_long_text_is_cut_at_the_token_cap_and_says_so(client):
    from neuronatlas.read.live import MAX_TOKENS

    body = client.post("/api/activate", json={"text": "1 " * 999, "neuron": "L00N0003"}).json()
    assert body["truncated"] is True and len(body["tokens"]) == MAX_TOKENS
    assert len(body["activations"]) == MAX_TOKENS
