"""LLM test helpers: a loopback OpenAI-compatible server and a tiny atlas with a Paris detector.

`LoopbackLLM` is a real HTTP server on 127.0.0.1 speaking the chat-completions JSON of OpenAI's
API. Its answers come from a `responder(body) -> str` function; `faults` (a list consumed one
request at a time) injects "429", "500", "slow" (sleeps past the client's timeout), "malformed"
(a 200 whose body is not the API's JSON) or "400". With a `logprober(body, text)` it returns
`choices[0].logprobs.content` when a request asks for logprobs (`answer_logprobs` builds one),
`"logprobs": null` otherwise, as OpenAI does.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

#: The planted neurons of the Paris atlas and the token each one detects.
PARIS_DETECTORS: dict[tuple[int, int], str] = {
    (0, 3): " Paris",
    (1, 5): " guitar",
    (1, 7): " the",
}
PARIS = "L00N0003"
GUITAR = "L01N0005"
PARIS_WORDS = [
    "Paris",
    "guitar",
    "the",
    "a",
    "city",
    "river",
    "house",
    "tree",
    "dog",
    "road",
    "green",
    "old",
    "new",
    "small",
    "runs",
    "sees",
    "near",
    "with",
    "from",
    "bread",
    "water",
    "stone",
]


def build_paris_atlas(folder: Path) -> tuple[Path, Path]:
    """(atlas path, model folder): the tiny detector GPT-2 with PARIS_DETECTORS and an atlas of
    its true activations over sentences drawn from PARIS_WORDS."""
    from n2g_atlas import build_atlas
    from tiny_models import build_token_detector_gpt2

    model = build_token_detector_gpt2(folder / "model", PARIS_DETECTORS)
    db = build_atlas(
        folder / "atlas.db",
        model,
        list(PARIS_DETECTORS),
        n_sentences=400,
        top_k=12,
        random_k=16,
        words=PARIS_WORDS,
    )
    return db, model


class LoopbackLLM:
    """An OpenAI-compatible chat server on 127.0.0.1 in a background thread."""

    def __init__(
        self,
        responder: Callable[[dict], str],
        model: str = "loopback-model",
        logprober: Callable[[dict, str], list[dict]] | None = None,
    ):
        self.responder = responder
        self.model = model
        self.logprober = logprober
        self.faults: list[str] = []
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.slow_seconds = 2.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )  # a short poll: shutdown() waits up to one poll interval (0.5 s by default)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def spec(self) -> str:
        return f"{self.base_url}:{self.model}"

    def __enter__(self) -> LoopbackLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_fault(self) -> str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                with server._lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                self._counted = True
                try:
                    self._answer(body)
                finally:
                    self._done()

            def _done(self) -> None:
                """Leave the in-flight count before the answer is written: once the client
                has read it, it may send its next request before this handler returns."""
                if getattr(self, "_counted", False):
                    self._counted = False
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, body: dict) -> None:
                if self.path != "/v1/chat/completions":
                    return self._send(404, b'{"error": "not found"}')
                fault = server._next_fault()
                if fault == "429":
                    return self._send(429, b'{"error": "rate limited"}', {"Retry-After": "0"})
                if fault == "500":
                    return self._send(500, b'{"error": "server fell over"}')
                if fault == "400":
                    return self._send(400, b'{"error": "bad request"}')
                if fault == "malformed":
                    return self._send(200, b'{"choices": [{"message": {"no": "content"}}]')
                if fault == "slow":
                    time.sleep(server.slow_seconds)
                if server.delay:
                    time.sleep(server.delay)
                text = server.responder(body)
                logprobs = None
                if server.logprober is not None and body.get("logprobs"):
                    logprobs = {"content": server.logprober(body, text)}
                prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
                answer = {
                    "id": "chatcmpl-loopback",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "logprobs": logprobs,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": len(text.split()),
                        "total_tokens": prompt_tokens + len(text.split()),
                    },
                }
                self._send(200, json.dumps(answer).encode())

            def _send(self, status: int, payload: bytes, headers: dict | None = None) -> None:
                self._done()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to tell it

        return Handler


#: How `answer_logprobs` cuts an answer: a number with the space before it is one token (as
#: SentencePiece writes "▁5"), any other character is a token of its own.
_TOKEN = re.compile(r" ?[0-9]+|[^0-9]")


def answer_logprobs(
    text: str, alternatives: Callable[[int, str], list[tuple[str, float]]]
) -> list[dict]:
    """`text` as OpenAI's `logprobs.content`, cut by `_TOKEN`: the k-th number token's
    top_logprobs are `alternatives(k, token)` as (token, probability) pairs; every other token
    is certain. The tokens spell `text` exactly, as an endpoint's do."""
    content, k = [], 0
    for token in _TOKEN.findall(text):
        if token.strip().isdigit():
            top = [(t, math.log(p)) for t, p in alternatives(k, token)]
            k += 1
        else:
            top = [(token, 0.0)]
        chosen = next((lp for t, lp in top if t == token), math.log(0.5))
        content.append(
            {
                "token": token,
                "logprob": chosen,
                "bytes": list(token.encode()),
                "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top],
            }
        )
    return content


def last_user(body: dict) -> str:
    return body["messages"][-1]["content"]


class WordEmbedder:
    """A cheap, real lexical embedder for unit tests: each lowercase word is hashed into one of
    `dim` buckets (a bag of words), so texts sharing words are similar and others are not."""

    def __new__(cls, dim: int = 512):
        import hashlib
        import re

        import numpy as np

        from neuronatlas.embed.embedders import Embedder

        class _Words(Embedder):
            name = "test-word-hash"
            spec = "test-word-hash"

            @property
            def dim(self) -> int:
                return dim

            def _encode(self, texts: list[str], batch_size: int):
                out = np.zeros((len(texts), dim), dtype=np.float32)
                for i, text in enumerate(texts):
                    for word in re.findall(r"[a-z]+", text.lower()):
                        h = hashlib.blake2b(word.encode(), digest_size=4).digest()
                        out[i, int.from_bytes(h, "little") % dim] += 1.0
                return out

        return _Words()


def word_judge(body: dict) -> str:
    """A loopback LLM that answers the scorers' prompts by word overlap with the explanation:
    it simulates 10 on tokens named in the explanation, and says 1 for examples (detection) or
    marked tokens (fuzzing) that contain a word of it."""
    import json as _json
    import re

    text = last_user(body)
    m = re.search(r"does is find (.*?)(?:\.\n|\n)", text)
    words = {w for w in re.findall(r"[a-z]+", (m.group(1) if m else "").lower()) if len(w) > 3}
    if "Records, each a JSON list of tokens" in text:
        lists = [_json.loads(r) for r in re.findall(r"^Record \d+: (.*)$", text, re.M)]
        values = [[10 if t.strip().lower() in words else 0 for t in toks] for toks in lists]
        return _json.dumps({"records": values})
    examples = re.findall(r"^Example \d+: (.*)$", text, re.M)
    answers = []
    for ex in examples:
        marked = re.findall(r"«([^»]*)»", ex)
        seen = marked if marked else re.findall(r"[A-Za-z]+", ex)
        hits = [w for w in seen if w.strip().lower() in words]
        answers.append(1 if hits and (not marked or len(hits) == len(marked)) else 0)
    return _json.dumps(answers)
