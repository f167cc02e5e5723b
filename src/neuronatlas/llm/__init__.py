"""LLM clients for the explainer and the scorers: any OpenAI-compatible endpoint over HTTP,
or a Hugging Face instruct model run in-process, behind one interface (`LLMClient`).

`open_client("openai:gpt-4o-mini")`, `open_client("http://localhost:8080/v1:qwen")` or
`open_client("local:smollm2")` (the offline SmolLM2-135M-Instruct package).
"""

from neuronatlas.llm.client import ChatRequest, ChatResponse, LLMClient, Usage
from neuronatlas.llm.session import llm_session
from neuronatlas.llm.spec import open_client

__all__ = ["ChatRequest", "ChatResponse", "LLMClient", "Usage", "llm_session", "open_client"]
