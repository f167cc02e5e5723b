"""Any OpenAI-compatible chat endpoint over httpx: OpenAI, vLLM, llama.cpp server, Ollama,
OpenRouter.

Honest by construction: at most `concurrency` requests in flight; a 429, a 5xx, a timeout, a
dropped connection or a malformed 200 answer is retried with jittered exponential back-off
(1 s doubling to 10 s; a numeric Retry-After is obeyed); any other 4xx fails at once (retrying
a bad request only costs money). After the last try the call raises LLMError, which the
caller reports and never stores.

A request with `top_logprobs` asks for each generated token's likeliest alternatives
(`logprobs: true, top_logprobs: K`); an endpoint that answers without them gives
`logprobs=None`, and the caller decides what that means.
"""

from __future__ import annotations

import logging
import random
import threading
import time

import httpx

from neuronatlas.errors import LLMError, LLMRefused
from neuronatlas.llm.client import (
    Cache,
    ChatRequest,
    ChatResponse,
    LLMClient,
    TokenLogprobs,
    Usage,
)

log = logging.getLogger(__name__)


class OpenAICompatibleClient(LLMClient):
    """POST {base_url}/chat/completions with a bearer key (when given)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        cache: Cache | None = None,
        concurrency: int = 8,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 10.0,
        usd_per_mtok: tuple[float, float] | None = None,
    ):
        super().__init__(cache)
        self.model = model
        self.endpoint = base_url.rstrip("/")
        self.concurrency = max(1, concurrency)
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.usd_per_mtok = usd_per_mtok
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.endpoint,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=self.concurrency),
        )
        self._slots = threading.BoundedSemaphore(self.concurrency)

    def _body(self, request: ChatRequest) -> dict:
        body: dict = {
            "model": self.model,
            "messages": request.as_messages(),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
        }
        if request.json_mode:
            body["response_format"] = {"type": "json_object"}
        if request.alternatives:
            body["logprobs"] = True
            body["top_logprobs"] = request.alternatives
        return body

    def _chat(self, request: ChatRequest) -> ChatResponse:
        body = self._body(request)
        last = "no attempt made"
        for attempt in range(self.retries + 1):
            wait: float | None = None
            try:
                with self._slots:
                    resp = self._http.post("/chat/completions", json=body)
            except httpx.TimeoutException as exc:
                last = f"timed out ({type(exc).__name__})"
            except httpx.TransportError as exc:
                last = f"connection failed ({exc})"
            else:
                if resp.status_code == 429 or resp.status_code >= 500:
                    last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                    wait = _retry_after(resp)
                elif resp.status_code >= 400:
                    raise LLMRefused(
                        f"{self.endpoint} refused the request for {self.model!r}: "
                        f"HTTP {resp.status_code}: {resp.text[:300]}"
                    )
                else:
                    parsed = self._parse(resp)
                    if isinstance(parsed, ChatResponse):
                        return parsed
                    last = parsed
            if attempt < self.retries:
                delay = wait if wait is not None else self._delay(attempt)
                log.info("%s: %s; retry %d in %.1f s", self.endpoint, last, attempt + 1, delay)
                time.sleep(delay)
        raise LLMError(
            f"{self.endpoint} ({self.model}): no usable answer after {self.retries + 1} tries; "
            f"last: {last}"
        )

    def _delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * 2**attempt)
        return base * random.uniform(0.8, 1.2)

    def _parse(self, resp: httpx.Response) -> ChatResponse | str:
        """The answer, or a string saying why the 200 answer is unusable (then retried)."""
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return f"malformed answer ({type(exc).__name__}): {resp.text[:200]!r}"
        if not isinstance(text, str):
            return f"malformed answer (content is {type(text).__name__}): {resp.text[:200]!r}"
        raw = data.get("usage") or {}
        usage = Usage(
            prompt_tokens=int(raw.get("prompt_tokens") or 0),
            completion_tokens=int(raw.get("completion_tokens") or 0),
        )
        if isinstance(raw.get("cost"), int | float):  # OpenRouter reports the charge
            usage.cost = float(raw["cost"])
        elif self.usd_per_mtok is not None:
            usd_in, usd_out = self.usd_per_mtok
            usage.cost = (usage.prompt_tokens * usd_in + usage.completion_tokens * usd_out) / 1e6
        return ChatResponse(
            text=text,
            usage=usage,
            finish_reason=choice.get("finish_reason"),
            logprobs=_logprobs(choice.get("logprobs")),
        )

    def close(self) -> None:
        self._http.close()


def _logprobs(raw: object) -> list[TokenLogprobs] | None:
    """`choices[0].logprobs.content` as TokenLogprobs; None when absent, null or not the
    documented shape (an endpoint that ignores the request is no error: the caller falls back).
    """
    content = raw.get("content") if isinstance(raw, dict) else None
    if not isinstance(content, list):
        return None
    out = []
    try:
        for entry in content:
            top = [(str(t["token"]), float(t["logprob"])) for t in entry.get("top_logprobs") or ()]
            out.append(TokenLogprobs(str(entry["token"]), float(entry["logprob"]), top))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return out


def _retry_after(resp: httpx.Response) -> float | None:
    """A numeric Retry-After header, capped at a minute; None when absent or a date."""
    value = resp.headers.get("retry-after")
    try:
        return min(60.0, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None
