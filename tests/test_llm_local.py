"""End to end with the offline instruct model (SmolLM2-135M-Instruct, `local:smollm2`) and the
offline MiniLM embedder on the tiny GPT-2's planted detectors: L00N0003 fires on " Paris",
L01N0005 on " guitar"."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from llm_fixtures import GUITAR, PARIS
from neuronatlas.cli import app
from neuronatlas.score import get_scorer, score_text
from neuronatlas.store import llm as store_llm
from neuronatlas.store import open_reader, reader

pytestmark = pytest.mark.slow

RIGHT, WRONG = "the word Paris", "musical instruments"
SOURCE = "llm:smollm2-135m-instruct"


@pytest.fixture(scope="module")
def smollm2():
    from neuronatlas.llm import open_client

    return open_client("local:smollm2")


def test_value_distributions_match_a_direct_forward_pass(smollm2):
    """The one-pass 4-D-mask reading of P(10) = P(1)·P(0 | 1) equals running each prefix."""
    import torch

    msgs = [{"role": "user", "content": "Rate each token from 0 to 10."}]
    answer = "<start>\n Paris\tunknown\n is\tunknown\n<end>"
    slots = [i for i in range(len(answer)) if answer.startswith("unknown", i)]
    fast = smollm2.value_distributions(msgs, answer, slots)
    tok, lm = smollm2._load()
    text = tok.apply_chat_template(
        [*msgs, {"role": "assistant", "content": answer}], tokenize=False
    )
    base = text.rfind(answer)
    digits = [tok.encode(str(v), add_special_tokens=False)[0] for v in range(10)]
    for slot, got in zip(slots, fast, strict=True):
        ids = tok(text[: base + slot], return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            p = torch.softmax(lm(ids).logits[0, -1], -1)
            q = torch.softmax(
                lm(torch.cat([ids, torch.tensor([[digits[1]]])], 1)).logits[0, -1], -1
            )
        want = [float(p[d]) for d in digits]
        one = want[1]
        want[1] = one * (1 - float(q[digits].sum()))
        want.append(one * float(q[digits[0]]))
        total = sum(want)
        assert got == pytest.approx([w / total for w in want], abs=1e-4)


def test_explain_and_score_the_planted_neurons(paris_atlas):
    runner = CliRunner()
    ids = f"{PARIS},{GUITAR}"
    res = runner.invoke(
        app,
        [
            "explain",
            "--db",
            str(paris_atlas),
            "--llm",
            "local:smollm2",
            "--neurons",
            ids,
            "--silent",
        ],
    )
    assert res.exit_code == 0, res.output
    conn = open_reader(paris_atlas)
    for nid in (PARIS, GUITAR):
        ex = next(e for e in reader.explanations(conn, nid) if e.source == SOURCE)
        assert len(ex.text) >= 3
        prov = store_llm.llm_provenance(conn, ex.id)
        assert prov.endpoint == "local" and prov.usage["completion_tokens"] > 0
    conn.close()
    for scorer in ("embedding", "simulation"):
        res = runner.invoke(
            app,
            [
                "score",
                "--db",
                str(paris_atlas),
                "--neurons",
                ids,
                "--scorer",
                scorer,
                "--llm",
                "local:smollm2",
                "--embedder",
                "all-MiniLM-L6-v2",
                "--silent",
            ],
        )
        assert res.exit_code == 0, res.output
    conn = open_reader(paris_atlas)
    ex = next(e for e in reader.explanations(conn, PARIS) if e.source == SOURCE)
    assert {s.scorer for s in ex.scores} == {"embedding", "simulation"}


def test_minilm_embedding_scorer_ranks_right_above_wrong(paris_atlas):
    scorer = get_scorer("embedding", embedder="all-MiniLM-L6-v2")
    for nid, right, wrong in ((PARIS, RIGHT, WRONG), (GUITAR, WRONG, RIGHT)):
        good = score_text(paris_atlas, nid, right, scorer)["score"]
        bad = score_text(paris_atlas, nid, wrong, scorer)["score"]
        assert good > bad and good > 0.9, (nid, good, bad)


def test_smollm2_simulation_ranks_right_above_wrong(paris_atlas, smollm2):
    scorer = get_scorer("simulation", llm=smollm2)
    for nid, right, wrong in ((PARIS, RIGHT, WRONG), (GUITAR, WRONG, RIGHT)):
        good = score_text(paris_atlas, nid, right, scorer)
        bad = score_text(paris_atlas, nid, wrong, scorer)
        assert good["details"]["method"] == "logits" and good["details"]["failed"] == 0
        assert good["score"] > bad["score"], (nid, good["score"], bad["score"])


def test_build_with_llm_ranks_each_neurons_explanations(tmp_path, paris_atlas_master):
    from llm_fixtures import PARIS_WORDS
    from n2g_atlas import sentences
    from neuronatlas.pipeline import BuildSettings, build_atlas

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(sentences(300, 1, PARIS_WORDS), encoding="utf-8")
    db = tmp_path / "built.db"
    settings = BuildSettings(
        model=str(paris_atlas_master[1]),
        corpus=str(corpus),
        tokens=2048,
        context=16,
        embedder="all-MiniLM-L6-v2",
        llm="local:smollm2",
        llm_per_layer=1,
        stages=("scrape", "index", "explain", "llm", "score"),
    )
    results = {r.stage: r for r in build_atlas(db, settings)}
    assert "2 written" in results["llm"].detail, results["llm"].detail
    conn = open_reader(db)
    checked = 0
    for nid in reader.strongest_neurons(conn, 1):
        ex = reader.explanations(conn, nid)
        assert {e.source for e in ex} >= {SOURCE, "top-tokens"}
        scored = [e for e in ex if e.scores]
        if scored:  # a neuron with no quiet random records gets no embedding score
            best = max(scored, key=lambda e: e.scores[0].score)
            assert ex[0].id == best.id  # the best-scored explanation leads
            checked += 1
    assert checked >= 1
    conn.close()
    again = {r.stage: r for r in build_atlas(db, settings)}
    assert again["llm"].skipped and again["score"].skipped
