"""`--llm SPEC` → a client.

- `openai:MODEL`: api.openai.com with the key in OPENAI_API_KEY;
- `http(s)://HOST[:PORT]/v1:MODEL`: any OpenAI-compatible server (vLLM, llama.cpp server,
  Ollama, OpenRouter); the key, if the server wants one, in NEURONATLAS_LLM_API_KEY (or
  OPENAI_API_KEY);
- `local:smollm2`: the offline SmolLM2-135M-Instruct package; `local:FOLDER_OR_HUB_ID`: any
  Hugging Face instruct model, run in-process.
"""

from __future__ import annotations

import os
import re

from neuronatlas.errors import BadInput
from neuronatlas.llm.client import Cache, LLMClient

OPENAI_BASE = "https://api.openai.com/v1"
_HTTP = re.compile(r"^(https?://.+?/v\d+[^:]*?):(.+)$")


def open_client(
    spec: str,
    cache: Cache | None = None,
    concurrency: int = 8,
    timeout: float = 60.0,
    usd_per_mtok: tuple[float, float] | None = None,
    retries: int = 5,
) -> LLMClient:
    """The client a SPEC names (nothing is loaded or contacted yet)."""
    from neuronatlas.llm.http import OpenAICompatibleClient

    spec = spec.strip()
    if spec.startswith("openai:"):
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            raise BadInput(f"--llm {spec}: set OPENAI_API_KEY to use OpenAI's API")
        return OpenAICompatibleClient(
            OPENAI_BASE,
            spec.split(":", 1)[1],
            key,
            cache,
            concurrency,
            timeout,
            retries,
            usd_per_mtok=usd_per_mtok,
        )
    m = _HTTP.match(spec)
    if m:
        key = os.environ.get("NEURONATLAS_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        return OpenAICompatibleClient(
            m.group(1),
            m.group(2),
            key,
            cache,
            concurrency,
            timeout,
            retries,
            usd_per_mtok=usd_per_mtok,
        )
    if spec.startswith("local:"):
        return _local(spec.split(":", 1)[1], cache)
    raise BadInput(
        f"--llm {spec!r}: expected openai:MODEL, http(s)://HOST/v1:MODEL, local:smollm2 "
        "or local:FOLDER_OR_HUB_ID"
    )


def _local(name: str, cache: Cache | None) -> LLMClient:
    from pathlib import Path

    from neuronatlas.llm.local import LocalClient

    if name.lower() in ("smollm2", "smollm2-135m-instruct"):
        from neuronatlas.llm.smollm2 import NAME, ensure_smollm2

        return LocalClient(ensure_smollm2(), NAME, cache)
    folder = Path(name).expanduser()
    if folder.is_dir():
        return LocalClient(folder.resolve(), folder.name, cache)
    if name.startswith((".", "/", "~")):
        raise BadInput(f"--llm local:{name}: no such folder")
    return LocalClient(name, name.rsplit("/", 1)[-1], cache)
