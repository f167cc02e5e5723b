"""The OpenAI-compatible client against a real loopback HTTP server: retries, timeouts,
malformed answers, concurrency bound, usage and the response cache in the atlas."""

from __future__ import annotations

import math
import threading

import msgspec
import pytest

from llm_fixtures import LoopbackLLM, answer_logprobs, last_user
from neuronatlas.errors import BadInput, LLMError
from neuronatlas.llm import ChatRequest, open_client
from neuronatlas.llm.client import ChatResponse, TokenLogprobs, Usage, digest_of
from neuronatlas.llm.http import OpenAICompatibleClient
from neuronatlas.store.llm import ResponseCache


def echo(body: dict) -> str:
    return "echo: " + last_user(body)


def ask(text: str, **kw) -> ChatRequest:
    return ChatRequest(messages=(("system", "s"), ("user", text)), **kw)


def client_for(server: LoopbackLLM, **kw) -> OpenAICompatibleClient:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5.0)
    return OpenAICompatibleClient(server.base_url, server.model, api_key="k-123", **kw)


def test_answer_usage_and_key():
    with LoopbackLLM(echo) as server:
        client = client_for(server)
        resp = client.chat(ask("hello there"))
    assert resp.text == "echo: hello there"
    assert resp.usage.prompt_tokens == 3 and resp.usage.completion_tokens == 3
    assert client.usage.calls == 1 and client.usage.prompt_tokens == 3
    assert server.headers[0]["Authorization"] == "Bearer k-123"
    assert server.requests[0]["model"] == "loopback-model"
    assert server.requests[0]["messages"][1] == {"role": "user", "content": "hello there"}


def test_429_and_500_are_retried_then_answered():
    with LoopbackLLM(echo) as server:
        server.faults = ["429", "500", "500"]
        resp = client_for(server, retries=3).chat(ask("x"))
    assert resp.text == "echo: x"
    assert len(server.requests) == 4


def test_gives_up_after_its_retries():
    with LoopbackLLM(echo) as server:
        server.faults = ["500"] * 10
        with pytest.raises(LLMError, match=r"after 3 tries.*HTTP 500"):
            client_for(server, retries=2).chat(ask("x"))
    assert len(server.requests) == 3


def test_a_bad_request_is_not_retried():
    with LoopbackLLM(echo) as server:
        server.faults = ["400"]
        with pytest.raises(LLMError, match="HTTP 400"):
            client_for(server, retries=5).chat(ask("x"))
    assert len(server.requests) == 1


def test_slow_answer_times_out_and_is_retried():
    with LoopbackLLM(echo) as server:
        server.faults = ["slow"]
        server.slow_seconds = 1.5
        resp = client_for(server, timeout=0.3, retries=2).chat(ask("y"))
    assert resp.text == "echo: y"
    assert len(server.requests) == 2


def test_malformed_answer_is_retried_and_never_returned():
    with LoopbackLLM(echo) as server:
        server.faults = ["malformed"]
        assert client_for(server, retries=1).chat(ask("z")).text == "echo: z"
        server.faults = ["malformed"] * 3
        with pytest.raises(LLMError, match="malformed"):
            client_for(server, retries=1).chat(ask("z"))


def test_concurrency_is_bounded():
    with LoopbackLLM(echo) as server:
        server.delay = 0.15
        client = client_for(server, concurrency=2)
        threads = [threading.Thread(target=client.chat, args=(ask(f"q{i}"),)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(server.requests) == 8
    assert server.max_in_flight == 2


def test_cache_in_the_atlas_answers_a_rerun(db_path):
    from neuronatlas.store import AtlasWriter

    AtlasWriter(db_path).close()
    with LoopbackLLM(echo) as server:
        first = client_for(server, cache=ResponseCache(db_path))
        a = first.chat(ask("same"))
        b = first.chat(ask("other", max_tokens=5))
        again = client_for(server, cache=ResponseCache(db_path))
        c = again.chat(ask("same"))
    assert len(server.requests) == 2  # the second client asked nothing
    assert c.text == a.text and c.cached and not a.cached
    assert b.text == "echo: other"
    assert again.usage.cached_calls == 1


def test_specs(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(BadInput, match="OPENAI_API_KEY"):
        open_client("openai:gpt-4o-mini")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    c = open_client("openai:gpt-4o-mini")
    assert (c.endpoint, c.model) == ("https://api.openai.com/v1", "gpt-4o-mini")
    c = open_client("http://127.0.0.1:8080/v1:qwen2.5:7b")
    assert (c.endpoint, c.model) == ("http://127.0.0.1:8080/v1", "qwen2.5:7b")
    with pytest.raises(BadInput, match="expected openai:MODEL"):
        open_client("gpt-4")
    with pytest.raises(BadInput, match="no such folder"):
        open_client("local:./no/such/model")


def test_a_request_without_logprobs_keys_the_cache_as_before():
    """Digests computed by the client before `top_logprobs` existed: the answers cached under
    them must still be found."""
    plain = ask("hello")
    tuned = ChatRequest(
        messages=(("user", "x"),), max_tokens=5, temperature=0.5, json_mode=True, seed=3
    )
    assert msgspec.json.encode(plain) == (
        b'{"messages":[["system","s"],["user","hello"]],"max_tokens":60,"temperature":0.0,'
        b'"json_mode":false,"seed":0}'
    )
    assert digest_of("m", "http://h/v1", plain) == "6f9fbfb7bcf1d6423b1e2b171a629683"
    assert digest_of("m", "http://h/v1", tuned) == "389ed239bbffd3cae0181ea7bd340290"
    assert ask("hello", top_logprobs=0) == plain  # 0 is "not asked", the same key
    assert digest_of("m", "http://h/v1", ask("hello", top_logprobs=0)) == digest_of(
        "m", "http://h/v1", plain
    )
    asked = ask("hello", top_logprobs=5)
    assert asked.alternatives == 5 and plain.alternatives == 0
    assert digest_of("m", "http://h/v1", asked) != digest_of("m", "http://h/v1", plain)
    with pytest.raises(ValueError, match="top_logprobs"):
        ask("hello", top_logprobs=-1)


def _top3(k: int, token: str) -> list[tuple[str, float]]:
    return [(token, 0.5), ("7", 0.3), ("x", 0.2)]


def test_logprobs_are_asked_for_parsed_and_cached(db_path):
    from neuronatlas.store import AtlasWriter

    AtlasWriter(db_path).close()

    def numbers(body: dict) -> str:
        return '{"records": [[1, 10]]}'

    with LoopbackLLM(numbers, logprober=lambda body, text: answer_logprobs(text, _top3)) as srv:
        first = client_for(srv, cache=ResponseCache(db_path))
        plain = first.chat(ask("no logprobs"))
        a = first.chat(ask("with", top_logprobs=3))
        again = client_for(srv, cache=ResponseCache(db_path))
        b = again.chat(ask("with", top_logprobs=3))
    assert "logprobs" not in srv.requests[0] and "top_logprobs" not in srv.requests[0]
    assert srv.requests[1]["logprobs"] is True and srv.requests[1]["top_logprobs"] == 3
    assert plain.logprobs is None  # not asked: the endpoint's "logprobs": null
    assert a.logprobs is not None
    assert "".join(t.token for t in a.logprobs) == a.text
    one = next(t for t in a.logprobs if t.token == " 10")
    assert [t for t, _ in one.top] == [" 10", "7", "x"]
    assert [lp for _, lp in one.top] == pytest.approx([math.log(0.5), math.log(0.3), math.log(0.2)])
    assert len(srv.requests) == 2 and b.cached  # the rerun asked nothing
    assert b.logprobs == a.logprobs and b.text == a.text


def test_malformed_logprobs_are_none_not_an_error():
    def bad(body: dict, text: str) -> list:
        return [{"token": "x"}]  # no logprob

    with LoopbackLLM(echo, logprober=bad) as server:
        resp = client_for(server, retries=0).chat(ask("hi", top_logprobs=2))
    assert resp.text == "echo: hi" and resp.logprobs is None


def test_a_response_cached_before_logprobs_existed_still_decodes():
    old = b'{"text":"hi","usage":{"prompt_tokens":1},"finish_reason":"stop","cached":false}'
    resp = msgspec.json.decode(old, type=ChatResponse)
    assert resp.text == "hi" and resp.logprobs is None
    new = ChatResponse("5", Usage(), logprobs=[TokenLogprobs("5", -0.1, [("5", -0.1)])])
    assert msgspec.json.decode(msgspec.json.encode(new), type=ChatResponse) == new
