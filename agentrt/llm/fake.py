"""A scripted chat backend that ships in the package, for tests and examples.

Replies come from, in order of precedence: `rules` (first regex that matches the last user
message, or the whole conversation, wins), then the `script` queue, then `default`. A reply may be
a string or a callable taking the request. Token usage counts whitespace-separated words, so it
is real arithmetic on real text, not a constant. Thread-safe; `delay_s` sleeps per call so tests
can observe concurrency. It never pretends to enforce a JSON schema.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from agentrt.core.errors import BackendError
from agentrt.core.types import ChatRequest, ChatResponse, Choice, Usage

__all__ = ["FakeBackend"]

Reply = str | Callable[[ChatRequest], str]


def _count(text: str) -> int:
    return len(text.split())


class FakeBackend:
    """Scripted backend. See the module docstring for how replies are chosen.

    Args:
        script: replies consumed one per call, in order.
        rules: (regex, reply) pairs matched against the conversation text.
        default: reply when no rule matches and the script is empty; None raises BackendError.
        delay_s: seconds to sleep per call (or per request in a batch).
        model_id: name reported in responses.
    """

    name = "fake"

    def __init__(
        self,
        script: Iterable[Reply] = (),
        rules: Iterable[tuple[str, Reply]] = (),
        default: Reply | None = "42",
        delay_s: float = 0.0,
        model_id: str = "fake",
        supports_json_schema: bool = False,
    ):
        self._script: deque[Reply] = deque(script)
        self._rules = [(re.compile(p, re.S), r) for p, r in rules]
        self._default = default
        self._lock = threading.Lock()
        self.delay_s = delay_s
        self.model_id = model_id
        self.supports_json_schema = supports_json_schema
        self.requests: list[ChatRequest] = []

    @classmethod
    def from_options(cls, model: str = "fake", **options: Any) -> "FakeBackend":
        return cls(model_id=model or "fake")

    def _reply_for(self, request: ChatRequest) -> str:
        convo = "\n".join(m.content for m in request.messages)
        last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        with self._lock:
            self.requests.append(request)
            reply: Reply | None = None
            for pattern, r in self._rules:
                if pattern.search(last_user) or pattern.search(convo):
                    reply = r
                    break
            if reply is None and self._script:
                reply = self._script.popleft()
            if reply is None:
                reply = self._default
        if reply is None:
            raise BackendError("fake backend has no scripted reply left")
        return reply(request) if callable(reply) else reply

    def chat(self, request: ChatRequest) -> ChatResponse:
        start = time.perf_counter()
        if self.delay_s:
            time.sleep(self.delay_s)
        choices, completion = [], 0
        for i in range(request.params.n):
            text = self._reply_for(request)
            finish = "stop"
            for s in request.params.stop:
                if s in text:
                    text = text[: text.index(s)]
            words = text.split()
            if len(words) > request.params.max_tokens:
                text, finish = " ".join(words[: request.params.max_tokens]), "length"
            completion += _count(text)
            choices.append(Choice(index=i, text=text, finish_reason=finish))
        prompt = sum(_count(m.content) + 1 for m in request.messages)
        return ChatResponse(
            choices=choices,
            usage=Usage(prompt_tokens=prompt, completion_tokens=completion),
            model=self.model_id,
            latency_s=time.perf_counter() - start,
        )

    def chat_batch(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        return [self.chat(r) for r in requests]

    def stream(self, request: ChatRequest) -> Iterator[str]:
        response = self.chat(request)
        for i, word in enumerate(response.text.split(" ")):
            yield word if i == 0 else " " + word
        return response  # finish reason and usage, as `StopIteration.value`

    def count_tokens(self, text: str) -> int:
        return _count(text)

    def close(self) -> None:
        pass
