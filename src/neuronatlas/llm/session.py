"""An LLM client wired to the atlas's response cache, opened and closed as one.

The explain and score stages (and their CLI commands) all talk to an LLM the same way: answers
are cached in the atlas, so a rerun costs nothing. This is that wiring, written once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from neuronatlas.llm.client import LLMClient
from neuronatlas.llm.spec import open_client


@contextmanager
def llm_session(
    db: str | Path,
    spec: str,
    concurrency: int = 8,
    timeout: float = 60.0,
    usd_per_mtok: tuple[float, float] | None = None,
    retries: int = 5,
) -> Iterator[LLMClient]:
    """The client SPEC names, answering from (and filling) `db`'s response cache; the cache
    opens first, so a file that is not an atlas is refused before any LLM call."""
    from neuronatlas.store.llm import ResponseCache

    cache = ResponseCache(db)
    try:
        client = open_client(spec, cache, concurrency, timeout, usd_per_mtok, retries)
        try:
            yield client
        finally:
            client.close()
    finally:
        cache.close()
