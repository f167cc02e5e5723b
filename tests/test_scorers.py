"""Scorers on the tiny detector GPT-2's real activations: the embedding scorer with a cheap
lexical embedder, and the LLM scorers' mechanics against the loopback server."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from llm_fixtures import GUITAR, PARIS, LoopbackLLM, WordEmbedder, word_judge
from neuronatlas.cli import app
from neuronatlas.errors import ScoringFailed
from neuronatlas.explain.records import split_records
from neuronatlas.llm.http import OpenAICompatibleClient
from neuronatlas.score import get_scorer, score_neurons, score_text
from neuronatlas.score.classifiers import balanced_accuracy, parse_labels
from neuronatlas.score.embedding import EmbeddingScorer, auroc
from neuronatlas.store import AtlasWriter, open_reader, reader

RIGHT, WRONG = "the word Paris", "musical instruments"


def test_auroc_and_balanced_accuracy_by_hand():
    assert auroc([3, 2], [1, 0]) == 1.0
    assert auroc([1, 0], [3, 2]) == 0.0
    assert auroc([1, 2], [1, 2]) == 0.5
    assert balanced_accuracy([1, 1, 0, 0], [1, 0, 0, 0]) == 0.75
    assert parse_labels("Sure: [1, 0, 1]", 3) == [1, 0, 1]
    assert parse_labels("[1, 0]", 3) is None and parse_labels("[1, 2, 0]", 3) is None
    assert parse_labels("no list", 1) is None


def test_splits_keep_explainer_and_scorer_records_apart(paris_atlas):
    conn = open_reader(paris_atlas)
    s = split_records(reader.records(conn, PARIS))
    assert len(s.train) == 5 and len(s.positives) == 6
    assert not {e.text for e in s.train} & {e.text for e in s.positives}
    assert all(" Paris" in e.tokens for e in s.train + s.positives)
    assert s.negatives and all(" Paris" not in e.tokens for e in s.negatives)


def test_embedding_scorer_ranks_right_above_wrong(paris_atlas):
    scorer = EmbeddingScorer(WordEmbedder())
    right = score_text(paris_atlas, PARIS, RIGHT, scorer)
    wrong = score_text(paris_atlas, PARIS, WRONG, scorer)
    assert right["score"] > 0.9 and wrong["score"] == 0.5  # no shared word: chance
    assert right["details"]["positives"] == 6 and right["details"]["negatives"] >= 2


def test_embedding_scorer_refuses_without_quiet_records(paris_atlas):
    conn = open_reader(paris_atlas)
    recs = reader.records(conn, PARIS)
    recs["random"] = recs["top"][:3]  # every "random" record fires: no quiet ones
    with pytest.raises(ScoringFailed, match="quiet random"):
        EmbeddingScorer(WordEmbedder()).score(RIGHT, split_records(recs))


def test_a_dense_neuron_takes_its_quieter_random_half(paris_atlas):
    conn = open_reader(paris_atlas)
    recs = reader.records(conn, PARIS)
    recs["random"] = recs["top"]  # all fire: the quieter half stands in
    s = split_records(recs)
    assert s.negative_rule == "quieter half" and len(s.negatives) == 6
    assert max(e.peak for e in s.negatives) <= min(
        e.peak for e in s.randoms if e not in s.negatives
    )
    assert split_records(reader.records(conn, PARIS)).negative_rule == "below 0.3 of max"


def test_score_neurons_stores_and_ranks_primary(paris_atlas):
    with AtlasWriter(paris_atlas) as w:
        w.write_explanations(PARIS, "openai", [(WRONG, None, None, None)])
        w.write_explanations(PARIS, "top-tokens", [(RIGHT, None, None, None)])
    conn = open_reader(paris_atlas)
    assert reader.explanations(conn, PARIS)[0]["source"] == "openai"  # source order first
    conn.close()
    scorer = EmbeddingScorer(WordEmbedder())
    report = score_neurons(paris_atlas, scorer, [PARIS])
    assert {s for _, s, _ in report.scored} == {"openai", "top-tokens"} and not report.failed
    again = score_neurons(paris_atlas, scorer, [PARIS])
    assert again.already == 2 and not again.scored
    conn = open_reader(paris_atlas)
    ex = reader.explanations(conn, PARIS)
    assert ex[0]["text"] == RIGHT  # the best-scored explanation is now the primary one
    assert ex[0]["scores"][0]["scorer"] == "embedding"
    assert ex[0]["scores"][0]["judge"] == "test-word-hash"
    view = conn.execute("SELECT explanation_text FROM neurons WHERE id = ?", (PARIS,)).fetchone()[0]
    assert view == RIGHT
    conn.close()
    with AtlasWriter(paris_atlas) as w:  # a changed text drops its stale score
        w.write_explanations(PARIS, "top-tokens", [("something else", None, None, None)])
    conn = open_reader(paris_atlas)
    changed = next(e for e in reader.explanations(conn, PARIS) if e["source"] == "top-tokens")
    assert changed["scores"] == []


@pytest.mark.parametrize("name", ["simulation", "detection", "fuzzing"])
def test_llm_scorers_rank_right_above_wrong_with_a_judge_that_reads(paris_atlas, name):
    with LoopbackLLM(word_judge) as server:
        llm = OpenAICompatibleClient(server.base_url, server.model, backoff=0.01)
        scorer = get_scorer(name, llm=llm)
        right = score_text(paris_atlas, PARIS, RIGHT, scorer)
        wrong_guitar = score_text(paris_atlas, GUITAR, RIGHT, scorer)
    assert right["score"] > 0.9, right
    assert wrong_guitar["score"] < 0.6, wrong_guitar
    assert right["details"]["failed"] == 0


def test_malformed_answers_are_excluded_not_zeros(paris_atlas):
    with LoopbackLLM(lambda body: "I think so!") as server:
        llm = OpenAICompatibleClient(server.base_url, server.model, backoff=0.01)
        for name in ("simulation", "detection"):
            with pytest.raises(Exception, match=r"answer|answered"):
                score_text(paris_atlas, PARIS, RIGHT, get_scorer(name, llm=llm))


def test_score_cli_text_and_atlas(paris_atlas, monkeypatch):
    runner = CliRunner()
    with LoopbackLLM(word_judge) as server:
        res = runner.invoke(
            app,
            [
                "score",
                PARIS,
                RIGHT,
                "--db",
                str(paris_atlas),
                "--scorer",
                "detection",
                "--llm",
                server.spec,
                "--json",
            ],
        )
        assert res.exit_code == 0, res.output
        import json

        doc = json.loads(res.stdout)
        assert doc["score"] > 0.9 and doc["scorer"] == "detection"
        with AtlasWriter(paris_atlas) as w:
            w.write_explanations(PARIS, "top-tokens", [(RIGHT, None, None, None)])
            w.write_explanations(GUITAR, "top-tokens", [("the word guitar", None, None, None)])
        res = runner.invoke(
            app,
            [
                "score",
                "--db",
                str(paris_atlas),
                "--all",
                "--scorer",
                "detection",
                "--llm",
                server.spec,
                "--silent",
            ],
        )
    assert res.exit_code == 0, res.output
    conn = open_reader(paris_atlas)
    assert reader.explanations(conn, GUITAR)[0]["scores"][0]["score"] > 0.9
    show = runner.invoke(app, ["show", PARIS, "--db", str(paris_atlas)])
    assert "detection" in show.stdout and "loopback-model" in show.stdout
