"""The interface every LLM backend offers: chat with a response cache and usage accounting.

A request's digest (model, endpoint, messages, parameters) keys the cache in the atlas, so a
rerun asks nothing twice. Usage (tokens, seconds, USD where known) is summed per client, for
budgets and for the cost-per-neuron figures.
"""

from __future__ import annotations

import hashlib
import threading
import time
from abc import ABC, abstractmethod
from typing import Protocol

import msgspec


class Usage(msgspec.Struct):
    """What calls cost: tokens as the endpoint counted them, wall seconds, USD when known."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cost: float | None = None
    calls: int = 0
    cached_calls: int = 0

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.seconds += other.seconds
        if other.cost is not None:
            self.cost = (self.cost or 0.0) + other.cost
        self.calls += other.calls
        self.cached_calls += other.cached_calls


class ChatRequest(msgspec.Struct, frozen=True):
    """One chat completion. temperature 0 = greedy; json_mode asks for a JSON object;
    top_logprobs > 0 asks for that many likeliest alternatives of every generated token."""

    messages: tuple[tuple[str, str], ...]
    """(role, content) pairs."""
    max_tokens: int = 60
    temperature: float = 0.0
    json_mode: bool = False
    seed: int = 0
    top_logprobs: int | msgspec.UnsetType = msgspec.UNSET
    """UNSET (or 0, stored as UNSET): not asked. msgspec leaves an UNSET field out of the
    encoding, so a request without logprobs encodes, and keys the cache, exactly as before the
    field existed (`omit_defaults` would not do: it would also drop max_tokens=60 and the
    other defaults from every key)."""

    def __post_init__(self) -> None:
        if self.top_logprobs == 0:  # one spelling of "not asked", one cache key
            msgspec.structs.force_setattr(self, "top_logprobs", msgspec.UNSET)
        elif isinstance(self.top_logprobs, int) and self.top_logprobs < 0:
            raise ValueError(f"top_logprobs must be >= 0, not {self.top_logprobs}")

    @property
    def alternatives(self) -> int:
        """How many alternatives per generated token are asked for (0: no logprobs)."""
        return self.top_logprobs if isinstance(self.top_logprobs, int) else 0

    def as_messages(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]


class TokenLogprobs(msgspec.Struct, array_like=True):
    """One generated token and the endpoint's likeliest alternatives at its position.

    Array-like (["5", -0.01, [["5", -0.01], ["4", -4.6]]] in the cache): a simulation answer
    has a few hundred tokens, each with its alternatives, and the cache keeps them all."""

    token: str
    logprob: float
    top: list[tuple[str, float]] = []
    """(token, logprob) pairs, likeliest first, as the endpoint listed them."""


class ChatResponse(msgspec.Struct):
    text: str
    usage: Usage
    finish_reason: str | None = None
    cached: bool = False
    logprobs: list[TokenLogprobs] | None = None
    """The generated tokens with their alternatives, when asked for and the endpoint gave
    them; None otherwise (an answer cached before the field existed decodes to None too)."""


class Cache(Protocol):
    """Where answers are kept between runs (`store.llm.ResponseCache` in the atlas)."""

    def get(self, digest: str) -> bytes | None: ...

    def put(self, digest: str, model: str, response: bytes) -> None: ...

    def delete(self, digest: str) -> None: ...


_encode = msgspec.json.Encoder(order="deterministic").encode


def digest_of(*parts: object) -> str:
    """A stable hex digest of JSON-encodable parts (prompts, settings)."""
    return hashlib.blake2b(_encode(list(parts)), digest_size=16).hexdigest()


class LLMClient(ABC):
    """A chat model. Subclasses implement `_chat`; callers use `chat` (cached, counted).

    `chat` is safe to call from several threads: HTTP clients bound their own concurrency,
    the local model serialises on a lock.
    """

    #: The model's id, used in explanation sources ('llm:<model>') and as the scores' judge.
    model: str
    #: 'local' or the endpoint's base URL (never a key): stored with every result.
    endpoint: str
    #: How many requests are worth running at once.
    concurrency: int = 1

    def __init__(self, cache: Cache | None = None):
        self.cache = cache
        self.usage = Usage()
        self._usage_lock = threading.Lock()

    def digest(self, request: ChatRequest) -> str:
        return digest_of(self.model, self.endpoint, request)

    def chat(self, request: ChatRequest) -> ChatResponse:
        """The answer to `request`: from the cache when asked before, else from the model."""
        key = self.digest(request)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                resp = msgspec.json.decode(hit, type=ChatResponse)
                resp.cached = True
                self._count(Usage(calls=1, cached_calls=1))
                return resp
        started = time.monotonic()
        resp = self._chat(request)
        resp.usage.seconds = time.monotonic() - started
        resp.usage.calls = 1
        self._count(resp.usage)
        if self.cache is not None:
            self.cache.put(key, self.model, msgspec.json.encode(resp))
        return resp

    def forget(self, request: ChatRequest) -> None:
        """Drop a cached answer that turned out unusable, so the next run asks again."""
        if self.cache is not None:
            self.cache.delete(self.digest(request))

    def _count(self, usage: Usage) -> None:
        with self._usage_lock:
            self.usage.add(usage)

    @abstractmethod
    def _chat(self, request: ChatRequest) -> ChatResponse:
        """Ask the model (no cache); raise LLMError when it cannot answer."""

    def close(self) -> None:  # noqa: B027 - a backend with nothing to release keeps this
        """Release connections or memory."""
