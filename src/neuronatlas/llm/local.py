"""A Hugging Face instruct model run in-process with transformers, behind `LLMClient`.

Beyond chat it offers what hosted endpoints rarely do: exact distributions over the values
0–10 at chosen places of an assistant answer, read from the model's logits in one forward
pass (the simulator's `logits` method). Where the tokenizer splits "10" into "1" "0", the
probability of "0" after "1" is read in the same pass: each slot gets an extra "1" token that
sees only the text before that slot (a 4-D attention mask), so P(10) = P(1)·P(0 | 1) and
P(value 1) = P(1)·P(no digit follows | 1).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from neuronatlas.errors import LLMError, ModelUnavailable
from neuronatlas.llm.client import Cache, ChatRequest, ChatResponse, LLMClient, Usage

log = logging.getLogger(__name__)

VALUES = tuple(range(11))


class LocalClient(LLMClient):
    """A causal LM with a chat template, from a folder or hub id, on CPU (or CUDA if present)."""

    endpoint = "local"

    def __init__(self, source: str | Path, model: str, cache: Cache | None = None):
        super().__init__(cache)
        self.source = str(source)
        self.model = model
        self._lock = threading.Lock()
        self._tok: Any = None
        self._lm: Any = None
        self._digits: dict[int, int] | None = None

    def _load(self):
        if self._lm is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            try:
                self._tok = AutoTokenizer.from_pretrained(self.source)
                self._lm = AutoModelForCausalLM.from_pretrained(
                    self.source, dtype=torch.float32
                ).eval()
            except OSError as exc:
                raise ModelUnavailable(f"local:{self.source}: cannot load ({exc})") from exc
            if not getattr(self._tok, "chat_template", None):
                raise ModelUnavailable(
                    f"local:{self.source} has no chat template: use an instruct model"
                )
            if torch.cuda.is_available():
                self._lm = self._lm.to("cuda")
        return self._tok, self._lm

    def _prompt_ids(self, messages: list[dict[str, str]], generation: bool):
        tok, lm = self._load()
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
        enc = tok(text, return_tensors="pt", add_special_tokens=False)
        return text, enc["input_ids"].to(lm.device)

    def _chat(self, request: ChatRequest) -> ChatResponse:
        import torch

        with self._lock:
            tok, lm = self._load()
            _, ids = self._prompt_ids(request.as_messages(), generation=True)
            torch.manual_seed(request.seed)
            sample = request.temperature > 0
            with torch.inference_mode():
                out = lm.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=request.max_tokens,
                    do_sample=sample,
                    temperature=request.temperature if sample else None,
                    top_p=1.0 if sample else None,
                    top_k=None,
                    pad_token_id=tok.pad_token_id or tok.eos_token_id,
                )
            new = out[0, ids.shape[1] :]
            text = tok.decode(new, skip_special_tokens=True)
            finish = "stop" if int(new[-1]) == tok.eos_token_id else "length"
        usage = Usage(prompt_tokens=int(ids.shape[1]), completion_tokens=int(new.shape[0]))
        return ChatResponse(text=text, usage=usage, finish_reason=finish)

    def _digit_ids(self) -> dict[int, int]:
        """value → token id for the values that are one token ("0"…"9"; "10" when it is)."""
        if self._digits is None:
            tok, _ = self._load()
            found = {}
            for v in VALUES:
                ids = tok.encode(str(v), add_special_tokens=False)
                if len(ids) == 1:
                    found[v] = ids[0]
            if any(v not in found for v in range(10)):
                raise ModelUnavailable(
                    f"local:{self.source}: the digits 0-9 are not single tokens; "
                    "the logits simulator cannot read values from this tokenizer"
                )
            self._digits = found
        return self._digits

    def value_distributions(
        self, messages: list[dict[str, str]], answer: str, slots: list[int]
    ) -> list[list[float] | None]:
        """P(value) for values 0–10 at each character offset `slots` of the assistant `answer`
        (where the answer writes a placeholder); None where a token straddles the slot."""
        import torch

        with self._lock:
            tok, lm = self._load()
            digits = self._digit_ids()
            full = [*messages, {"role": "assistant", "content": answer}]
            text = tok.apply_chat_template(full, tokenize=False, add_generation_prompt=False)
            base = text.rfind(answer)
            if base < 0:
                raise LLMError(f"local:{self.source}: the chat template rewrote the answer")
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            starts = {s: i for i, (s, e) in enumerate(enc["offset_mapping"]) if e > s}
            where = [starts.get(base + c) for c in slots]
            found = [k for k in where if k is not None and k > 0]
            ids = torch.tensor([enc["input_ids"]], device=lm.device)
            split_ten = 10 not in digits
            logits = self._forward(ids, found if split_ten else [], digits[1])
        n = ids.shape[1]
        probs = torch.softmax(logits.float(), dim=-1)
        digit_list = [digits[v] for v in range(10)]
        out: list[list[float] | None] = []
        extra = {k: n + j for j, k in enumerate(found)}
        for k in where:
            if k is None or k == 0:
                out.append(None)
                continue
            p = probs[k - 1]
            dist = [float(p[digits[v]]) for v in range(10)]
            if split_ten:
                q = probs[extra[k]]
                p_one = dist[1]
                p_then_zero = float(q[digits[0]])
                p_then_digit = float(q[digit_list].sum())
                dist[1] = p_one * max(0.0, 1.0 - p_then_digit)
                dist.append(p_one * p_then_zero)
            else:
                dist.append(float(p[digits[10]]))
            total = sum(dist)
            out.append(None if total <= 0 else [d / total for d in dist])
        return out

    def _forward(self, ids, slot_tokens: list[int], one_id: int):
        """Logits of `ids` plus, per slot k, one extra "1" token placed at position k that
        attends only to tokens before k (so it reads P(next | text before k, "1"))."""
        import torch

        _, lm = self._load()
        n = ids.shape[1]
        s = len(slot_tokens)
        with torch.inference_mode():
            if s == 0:
                return lm(ids).logits[0]
            total = n + s
            allowed = torch.tril(torch.ones(total, total, dtype=torch.bool, device=ids.device))
            allowed[n:, :] = False
            for j, k in enumerate(slot_tokens):
                allowed[n + j, :k] = True
                allowed[n + j, n + j] = True
            extra = torch.full((1, s), one_id, dtype=ids.dtype, device=ids.device)
            positions = torch.cat(
                [
                    torch.arange(n, device=ids.device),
                    torch.tensor(slot_tokens, device=ids.device),
                ]
            ).unsqueeze(0)
            mask = torch.zeros(total, total, device=ids.device)
            mask.masked_fill_(~allowed, torch.finfo(mask.dtype).min)
            out = lm(
                torch.cat([ids, extra], dim=1),
                attention_mask=mask[None, None],
                position_ids=positions,
            )
            return out.logits[0]
