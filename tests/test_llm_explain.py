"""`neuronatlas explain` against the loopback server: prompt, storage, provenance, resume,
failures named and never stored (exit 3), budget."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from llm_fixtures import GUITAR, PARIS, LoopbackLLM, last_user
from neuronatlas.cli import app
from neuronatlas.explain.llm_explainer import ANSWER_PREFIX, parse_explanation
from neuronatlas.store import llm as store_llm
from neuronatlas.store import open_reader, reader

runner = CliRunner()


def by_strongest(body: dict) -> str:
    """Answers like a reader of the prompt: names the target's strongest token."""
    found = re.findall(r"Strongest tokens: “([^”]+)”", last_user(body))
    return f" the word {found[0].strip()}." if found else " nothing."


def run(*args):
    return runner.invoke(app, [*args, "--silent"])


def test_explain_writes_llm_explanations_with_provenance(paris_atlas):
    with LoopbackLLM(by_strongest) as server:
        res = run("explain", "--db", str(paris_atlas), "--llm", server.spec, "--all")
        assert res.exit_code == 0, res.output
        prompt = server.requests[0]["messages"]
        assert len(server.requests) == 3
        again = run("explain", "--db", str(paris_atlas), "--llm", server.spec, "--all")
        assert again.exit_code == 0
        assert len(server.requests) == 3  # already explained: nothing asked
    user = prompt[-1]["content"]
    assert user.endswith(ANSWER_PREFIX) and "<start>" in user and "\t10" in user
    assert prompt[0]["role"] == "system" and prompt[2]["role"] == "assistant"
    conn = open_reader(paris_atlas)
    ex = {e.source: e for e in reader.explanations(conn, PARIS)}
    assert ex["llm:loopback-model"].text == "the word Paris"
    guitar = [e for e in reader.explanations(conn, GUITAR) if e.source.startswith("llm")]
    assert guitar[0].text == "the word guitar"
    prov = store_llm.llm_provenance(conn, ex["llm:loopback-model"].id)
    assert prov.model == "loopback-model" and prov.endpoint == server.base_url
    assert len(prov.prompt_digest) == 32 and prov.settings["temperature"] == 0.0
    assert prov.usage["prompt_tokens"] > 100
    assert reader.last_run(conn, "llm").status == "done"


def test_failed_neuron_is_named_left_and_done_next_run(paris_atlas):
    broken = {"on": True}

    def flaky(body: dict) -> str:
        if broken["on"] and "Strongest tokens: “ guitar”" in last_user(body):
            return "   ."  # nothing usable in the answer
        return by_strongest(body)

    with LoopbackLLM(flaky) as server:
        res = run("explain", "--db", str(paris_atlas), "--llm", server.spec, "--all")
        assert res.exit_code == 3
        assert f"skipped {GUITAR}" in res.stderr
        conn = open_reader(paris_atlas)
        assert GUITAR not in reader.neurons_with_explanation(conn, "llm:loopback-model")
        assert PARIS in reader.neurons_with_explanation(conn, "llm:loopback-model")
        conn.close()
        broken["on"] = False
        asked = len(server.requests)
        res = run("explain", "--db", str(paris_atlas), "--llm", server.spec, "--all")
        assert len(server.requests) == asked + 1  # the unusable answer was not cached
    assert res.exit_code == 0, res.output
    conn = open_reader(paris_atlas)
    assert GUITAR in reader.neurons_with_explanation(conn, "llm:loopback-model")


def test_server_errors_are_not_stored(paris_atlas):
    with LoopbackLLM(by_strongest) as server:
        server.faults = ["500"] * 50
        res = run(
            "explain",
            "--db",
            str(paris_atlas),
            "--llm",
            server.spec,
            "--neurons",
            PARIS,
            "--concurrency",
            "1",
            "--timeout",
            "2",
            "--retries",
            "1",
        )
        assert res.exit_code == 3 and "HTTP 500" in res.stderr
        conn = open_reader(paris_atlas)
        assert not reader.neurons_with_explanation(conn, "llm:loopback-model")
        conn.close()
        server.faults = []
        res = run("explain", "--db", str(paris_atlas), "--llm", server.spec, "--neurons", PARIS)
    assert res.exit_code == 0
    conn = open_reader(paris_atlas)
    assert reader.neurons_with_explanation(conn, "llm:loopback-model") == {PARIS}


def test_budget_stops_new_calls(paris_atlas):
    with LoopbackLLM(by_strongest) as server:
        res = run(
            "explain",
            "--db",
            str(paris_atlas),
            "--llm",
            server.spec,
            "--all",
            "--concurrency",
            "1",
            "--max-cost",
            "0.0001",
            "--usd-per-mtok",
            "1000,1000",
        )
    assert res.exit_code == 3
    assert len(server.requests) == 1 and "2 neurons left" in res.stderr


def test_parse_explanation():
    assert parse_explanation(" the word Paris.") == "the word Paris"
    assert parse_explanation("The main thing this neuron does is find: cats. Also dogs.") == "cats"
    assert parse_explanation('"names of days"\nmore') == "names of days"
