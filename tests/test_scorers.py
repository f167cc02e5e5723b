"""Scorers on the tiny detector GPT-2's real activations: the embedding scorer with a cheap
lexical embedder, and the LLM scorers' mechanics against the loopback server."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from llm_fixtures import (
    GUITAR,
    PARIS,
    LoopbackLLM,
    WordEmbedder,
    answer_logprobs,
    word_judge,
)
from neuronatlas.cli import app
from neuronatlas.errors import ScoringFailed
from neuronatlas.explain.records import split_records
from neuronatlas.llm.client import ChatResponse, TokenLogprobs, Usage
from neuronatlas.llm.http import OpenAICompatibleClient
from neuronatlas.openai_scores import ev_correlation_score
from neuronatlas.score import get_scorer, score_neurons, score_text
from neuronatlas.score.classifiers import balanced_accuracy, parse_labels
from neuronatlas.score.embedding import EmbeddingScorer, auroc
from neuronatlas.score.simulation import (
    TOP_LOGPROBS,
    SimulationScorer,
    _LogprobReader,
    _record_spans,
    expected_value,
    number_spans,
    simulation_records,
)
from neuronatlas.store import AtlasWriter, open_reader, reader
from neuronatlas.store.llm import ResponseCache

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
    assert reader.explanations(conn, PARIS)[0].source == "openai"  # source order first
    conn.close()
    scorer = EmbeddingScorer(WordEmbedder())
    report = score_neurons(paris_atlas, scorer, [PARIS])
    assert {s for _, s, _ in report.scored} == {"openai", "top-tokens"} and not report.failed
    again = score_neurons(paris_atlas, scorer, [PARIS])
    assert again.already == 2 and not again.scored
    conn = open_reader(paris_atlas)
    ex = reader.explanations(conn, PARIS)
    assert ex[0].text == RIGHT  # the best-scored explanation is now the primary one
    assert ex[0].scores[0].scorer == "embedding"
    assert ex[0].scores[0].judge == "test-word-hash"
    view = conn.execute("SELECT explanation_text FROM neurons WHERE id = ?", (PARIS,)).fetchone()[0]
    assert view == RIGHT
    conn.close()
    with AtlasWriter(paris_atlas) as w:  # a changed text drops its stale score
        w.write_explanations(PARIS, "top-tokens", [("something else", None, None, None)])
    conn = open_reader(paris_atlas)
    changed = next(e for e in reader.explanations(conn, PARIS) if e.source == "top-tokens")
    assert changed.scores == []


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
    if name == "simulation":  # the loopback answers no logprobs: the integers themselves
        assert right["details"]["method"] == "json"


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
    assert reader.explanations(conn, GUITAR)[0].scores[0].score > 0.9
    show = runner.invoke(app, ["show", PARIS, "--db", str(paris_atlas)])
    assert "detection" in show.stdout and "loopback-model" in show.stdout


def leaning(k: int, token: str) -> list[tuple[str, float]]:
    """The loopback judge's alternatives for its k-th integer: none numeric for the first one
    (a fallback); a 0 leans towards 5 by k % 4 tenths; a 10 towards 7. Non-numeric
    alternatives carry mass the scorer must renormalise away."""
    if k == 0:
        return [("x", 0.9), (",", 0.1)]
    if token.strip() == "0":
        alts = [(token, 0.6), ("?", 0.1)]
        return [*alts, (token.replace("0", "5"), 0.1 * (k % 4))] if k % 4 else alts
    return [(token, 0.5), (token.replace("10", "7"), 0.3), ("]", 0.2)]


def leaning_ev(k: int, value: int) -> float:
    """The expected value `leaning` implies, worked out by hand."""
    if k == 0:
        return float(value)  # the fallback: the integer itself
    if value == 0:
        p5 = 0.1 * (k % 4)
        return 5 * p5 / (0.6 + p5)
    return (10 * 0.5 + 7 * 0.3) / 0.8


def lean(body: dict, text: str) -> list[dict]:
    return answer_logprobs(text, leaning)


def truth_and_answer(db, neuron: str, body: dict) -> tuple[list[list[float]], list[list[int]]]:
    """The records the simulation scorer sent and the integers the word judge answered."""
    conn = open_reader(db)
    records = simulation_records(split_records(reader.records(conn, neuron)))
    conn.close()
    return [r.activations for r in records], json.loads(word_judge(body))["records"]


def test_simulation_by_logprobs_scores_the_expected_values(paris_atlas):
    with LoopbackLLM(word_judge, logprober=lean) as server:
        llm = OpenAICompatibleClient(server.base_url, server.model, backoff=0.01)
        res = score_text(paris_atlas, PARIS, RIGHT, get_scorer("simulation", llm=llm))
    body = server.requests[0]
    assert body["logprobs"] is True and body["top_logprobs"] == TOP_LOGPROBS
    truth, answer = truth_and_answer(paris_atlas, PARIS, body)
    flat = [v for rec in answer for v in rec]
    assert 10 in flat and flat.count(0) > 10  # both kinds of slot are exercised
    evs, k = [], 0
    for rec in answer:
        evs.append([leaning_ev(k + j, v) for j, v in enumerate(rec)])
        k += len(rec)
    by_hand = ev_correlation_score(truth, evs)
    assert by_hand is not None
    assert res["score"] == pytest.approx(by_hand, abs=1e-9)
    as_json = ev_correlation_score(truth, [[float(v) for v in rec] for rec in answer])
    assert as_json is not None and abs(by_hand - as_json) > 0.01  # the logprobs mattered
    d = res["details"]
    assert d["method"] == "logprobs" and d["logprob_fallbacks"] == 1 and d["failed"] == 0
    assert d["tokens_scored"] == d["tokens_requested"] == len(flat)


def test_simulation_without_logprobs_from_the_endpoint_is_json(paris_atlas):
    with LoopbackLLM(word_judge) as server:  # asked for logprobs, answers "logprobs": null
        llm = OpenAICompatibleClient(server.base_url, server.model, backoff=0.01)
        res = score_text(paris_atlas, PARIS, RIGHT, get_scorer("simulation", llm=llm))
    assert server.requests[0]["top_logprobs"] == TOP_LOGPROBS
    truth, answer = truth_and_answer(paris_atlas, PARIS, server.requests[0])
    as_json = ev_correlation_score(truth, [[float(v) for v in rec] for rec in answer])
    assert res["score"] == pytest.approx(as_json, abs=1e-12)
    assert res["details"]["method"] == "json" and "logprob_fallbacks" not in res["details"]


def test_simulation_tokens_without_numeric_alternatives_fall_back(paris_atlas):
    def nothing_numeric(body: dict, text: str) -> list[dict]:
        return answer_logprobs(text, lambda k, token: [("x", 0.7), (",", 0.3)])

    with LoopbackLLM(word_judge, logprober=nothing_numeric) as server:
        llm = OpenAICompatibleClient(server.base_url, server.model, backoff=0.01)
        res = score_text(paris_atlas, PARIS, RIGHT, get_scorer("simulation", llm=llm))
    truth, answer = truth_and_answer(paris_atlas, PARIS, server.requests[0])
    n = sum(len(rec) for rec in answer)
    assert res["details"]["method"] == "logprobs" and res["details"]["logprob_fallbacks"] == n
    as_json = ev_correlation_score(truth, [[float(v) for v in rec] for rec in answer])
    assert res["score"] == pytest.approx(as_json, abs=1e-12)  # every slot kept its integer


def test_simulation_logprobs_answer_is_cached(paris_atlas):
    with LoopbackLLM(word_judge, logprober=lean) as server:
        scores = []
        for _ in range(2):
            llm = OpenAICompatibleClient(
                server.base_url, server.model, backoff=0.01, cache=ResponseCache(paris_atlas)
            )
            scores.append(score_text(paris_atlas, PARIS, RIGHT, get_scorer("simulation", llm=llm)))
    assert len(server.requests) == 1  # the second run asked nothing
    assert llm.usage.cached_calls == 1
    assert scores[1] == scores[0] and scores[1]["details"]["method"] == "logprobs"


def test_simulation_asks_again_without_logprobs_when_refused(paris_atlas):
    with LoopbackLLM(word_judge, logprober=lean) as server:
        server.faults = ["400"]  # e.g. a model that does not support logprobs
        llm = OpenAICompatibleClient(server.base_url, server.model, backoff=0.01)
        scorer = SimulationScorer(llm)
        first = score_text(paris_atlas, PARIS, RIGHT, scorer)
        second = score_text(paris_atlas, GUITAR, RIGHT, scorer)
    assert [r.get("top_logprobs") for r in server.requests] == [TOP_LOGPROBS, None, None]
    assert first["details"]["method"] == second["details"]["method"] == "json"
    assert scorer.refuses_logprobs and scorer.method == "json"


def test_number_spans_skip_strings_and_line_up_with_each_record():
    text = '{"x": "a]1,[2", "records": [[10, 0,5],\n  [ 7 ],[], [[3]], [true, null]],"n": -1.5}'
    assert [text[a:b] for a, b in number_spans(text)] == ["10", "0", "5", "7", "3", "-1.5"]
    escaped = '{"re\\u0063ords": [[1, "\\"9"]]}'  # an escaped quote inside a string
    assert [escaped[a:b] for a, b in number_spans(escaped)] == ["1"]
    spans = _record_spans(text)
    assert spans is not None
    assert [[text[a:b] for a, b in rec] for rec in spans] == [["10", "0", "5"], ["7"], [], [], []]
    assert _record_spans('{"records": [[1, 2]], "note": "x"}') is not None
    # a repeated key: the decoder keeps the last, the text has more numbers: nothing trusted
    assert _record_spans('{"records": [[1]], "records": [[2, 3]]}') is None


def test_expected_value_over_numeric_alternatives():
    def tok(token: str, *top: tuple[str, float]) -> TokenLogprobs:
        return TokenLogprobs(token, math.log(top[0][1]), [(t, math.log(p)) for t, p in top])

    assert expected_value(tok("3", ("3", 0.5), (" 6", 0.25), ("x", 0.25)), 3) == pytest.approx(4)
    # the generated "1" began "10" and counts 10; the alternative "0" counts 0
    assert expected_value(tok("1", ("1", 0.5), ("0", 0.3), (",", 0.2)), 10) == pytest.approx(6.25)
    assert expected_value(tok("1", ("1", 0.5), ("0", 0.3)), 1) == pytest.approx(0.625)
    # another alternative "1" counts 1, though the model may have gone on to "10"
    assert expected_value(tok("0", ("0", 0.5), ("1", 0.5)), 0) == pytest.approx(0.5)
    assert expected_value(tok("7", ("11", 0.5), ("07", 0.3), ("-1", 0.2)), 7) is None
    assert expected_value(TokenLogprobs("7", 0.0, []), 7) is None


def test_logprob_reader_needs_the_token_that_starts_at_the_digit():
    text = '{"records": [[5, 10]]}'

    def reader_for(*tokens: str) -> _LogprobReader:
        tops = [TokenLogprobs(t, 0.0, [(t, math.log(0.5)), ("2", math.log(0.5))]) for t in tokens]
        got = _LogprobReader.of(ChatResponse(text, Usage(), logprobs=tops))
        assert got is not None
        return got

    good = reader_for('{"records": [[', "5", ",", " 1", "0", "]]}")
    assert good.record(0, [5, 10]) == [pytest.approx(3.5), pytest.approx(6)]
    assert good.fallbacks == 0
    merged = reader_for('{"records": [', "[5", ", 1", "0]]}")  # no token starts at a digit
    assert merged.record(0, [5, 10]) == [5.0, 10.0] and merged.fallbacks == 2
    wrong = [TokenLogprobs("{}", 0.0, [])]  # tokens that do not spell the answer: unusable
    assert _LogprobReader.of(ChatResponse(text, Usage(), logprobs=wrong)) is None
    assert _LogprobReader.of(ChatResponse(text, Usage())) is None
