"""Chat backend for any OpenAI-compatible server: `vllm serve`, OpenAI, llama.cpp, Ollama.

Talks `/v1/chat/completions` through the official `openai` client and relies on its retries:
429, 408, 409 and 5xx answers and connection failures are retried `max_retries` times with
exponential backoff (0.5 s doubling to 8 s, with jitter, honouring `Retry-After`). What still
fails is mapped onto the project's error tree in `_map_error`. `chat_batch` sends requests
concurrently from a thread pool bounded by `concurrency`; the server does the batching.

Token usage comes from the server's `usage` field. When a server sends none, usage is estimated
from text length (`count_tokens`, about four characters a token) and `estimated_usage` counts how
often that happened; the response itself carries no flag because `Usage` has no field for it.

Several base URLs (replicas of one model, e.g. `vllm serve` on several machines) make a fleet:
each request goes to one replica chosen by `agentrt.llm.fleet.ReplicaSet`, and the official
client's own retries are off. What is resent to the next replica, each replica at most once
per request (docs/SCALING.md):

- a connection failure (refused, reset, closed before or during a non-streamed answer) and a
  502, 503 or 504: the replica is marked down and the request goes to the next one;
- a 429: the next replica is tried, the busy one is not marked down;
- a stream only while none of its text has been delivered; after that its failure is raised;
- never: other 4xx, a 500 or other 5xx (the replica is marked down), a timeout (the replica is
  marked down; the request may still be running there, and resending it would double the load).

A resent request may have been partly or wholly computed on the failed replica: chat completions
have no side effects, so this costs tokens, not correctness.

This module knows nothing about the model behind the server: no tokenizer, no chat template.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agentrt.core.config import split_base_urls
from agentrt.core.errors import (
    BackendError,
    BackendRequestError,
    BackendUnavailableError,
    ConfigError,
    ModelNotFoundError,
)
from agentrt.core.types import ChatRequest, ChatResponse, Choice, Usage
from agentrt.llm.fleet import Replica, ReplicaSet, prefix_key

__all__ = ["OpenAIBackend", "request_to_params"]

OPENAI_URL = "https://api.openai.com/v1"
_CONTEXT = "context_length_exceeded"  # OpenAI's code (vLLM words the message the same way)


def _schema_name(schema: dict[str, Any]) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title") or "response"))[:64]
    return name or "response"


def request_to_params(request: ChatRequest, model: str, stream: bool = False) -> dict[str, Any]:
    """The keyword arguments of `client.chat.completions.create` for `request`."""
    p = request.params
    messages = []
    for m in request.messages:
        if m.role == "tool":  # a `Message` has no tool_call_id, which the API needs: send text
            msg = {"role": "user", "content": f"Tool result: {m.content}"}
        else:
            msg = {"role": m.role, "content": m.content}
        if m.name:
            msg["name"] = m.name
        messages.append(msg)
    params: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "temperature": p.temperature,
        "top_p": p.top_p,
        "max_tokens": p.max_tokens,
        "n": p.n,
    }
    if p.stop:
        params["stop"] = list(p.stop)
    if p.seed is not None:
        params["seed"] = p.seed
    if request.json_schema is not None:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": _schema_name(request.json_schema), "schema": request.json_schema, "strict": True},
        }
    if stream:
        params["stream"] = True
    return params


def _server_message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(getattr(e, "message", "") or e)


class OpenAIBackend:
    """Backend for an OpenAI-compatible HTTP server.

    Args:
        model: the model name the server knows.
        base_url: server URL ending in `/v1`; defaults to `$OPENAI_BASE_URL`, then OpenAI's.
            Several (comma-separated or a list) are replicas of one model (the module docstring).
        api_key: defaults to `$OPENAI_API_KEY`; local servers that need none get a placeholder.
        timeout_s: per-request timeout.
        max_retries: retries of the official client (see the module docstring).
        concurrency: most requests in flight from one `chat_batch`.
        replica_policy: with several URLs, `least-busy`, `round-robin` or `prefix` (affinity).
        replica_backoff_s: with several URLs, how long a failed replica is first left out.

    Example:
        >>> b = OpenAIBackend("Qwen/Qwen2.5-7B-Instruct", base_url="http://127.0.0.1:8000/v1")  # doctest: +SKIP
        >>> b.chat(ChatRequest.of("What is 2+3?")).text  # doctest: +SKIP
    """

    name = "openai"
    supports_json_schema = True

    def __init__(
        self,
        model: str,
        base_url: str | Sequence[str] | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        concurrency: int = 8,
        replica_policy: str = "least-busy",
        replica_backoff_s: float = 2.0,
    ):
        import openai  # heavy: openai

        if not model or not model.strip():
            raise ConfigError("the openai backend needs a model name")
        if timeout_s <= 0 or max_retries < 0 or concurrency < 1:
            raise ConfigError("timeout_s must be > 0, max_retries >= 0 and concurrency >= 1")
        url = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL
        urls = [url] if isinstance(url, str) and "," not in url else _urls(url)
        url = urls[0]
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if url.rstrip("/") == OPENAI_URL:
                raise ConfigError("the OpenAI API needs an api_key (or OPENAI_API_KEY)")
            key = "not-needed"  # local servers (vllm serve, llama.cpp, Ollama) ignore it
        self.model_id = model
        self.base_url = url.rstrip("/")
        self.concurrency = concurrency
        self.estimated_usage = 0
        self._openai = openai
        self._fleet: ReplicaSet | None = None
        if len(urls) > 1:
            self.base_url = ",".join(urls)
            clients = [openai.OpenAI(base_url=u, api_key=key, timeout=timeout_s, max_retries=0) for u in urls]
            self._fleet = ReplicaSet(urls, clients, policy=replica_policy, backoff_s=replica_backoff_s)
            self._client = clients[0]
        else:
            self._client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=timeout_s, max_retries=max_retries)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_options(
        cls,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        concurrency: int = 8,
        replica_policy: str = "least-busy",
        replica_backoff_s: float = 2.0,
        **ignored: Any,
    ) -> "OpenAIBackend":
        """Build from registry options; unknown options are ignored."""
        return cls(model, base_url, api_key, timeout_s=timeout_s, max_retries=max_retries, concurrency=concurrency,
                   replica_policy=replica_policy, replica_backoff_s=replica_backoff_s)

    @property
    def replicas(self) -> ReplicaSet | None:
        """The replica set when there are several base URLs, else None."""
        return self._fleet

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Send one request; its `n` choices come back in index order."""
        start = time.perf_counter()
        params = request_to_params(request, self.model_id)
        if self._fleet is not None:
            resp, url = self._fleet_call(request, params)
        else:
            url = self.base_url
            try:
                resp = self._client.chat.completions.create(**params)
            except self._openai.OpenAIError as e:
                raise self._map_error(e) from None
        choices = [
            Choice(
                index=i,
                text=c.message.content or "",
                finish_reason="length" if c.finish_reason == "length" else "stop",
            )
            for i, c in enumerate(sorted(resp.choices, key=lambda c: c.index))
        ]
        if not choices:
            raise BackendError(f"{url} answered with no choices")
        if resp.usage is not None:
            usage = Usage(prompt_tokens=resp.usage.prompt_tokens or 0, completion_tokens=resp.usage.completion_tokens or 0)
        else:
            usage = self._estimate(request, choices)
        return ChatResponse(
            choices=choices, usage=usage, model=resp.model or self.model_id, latency_s=time.perf_counter() - start
        )

    def chat_batch(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """Send requests concurrently (at most `concurrency` at once); results in input order."""
        if len(requests) <= 1:
            return [self.chat(r) for r in requests]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="openai-backend")
        return list(self._pool.map(self.chat, requests))

    def stream(self, request: ChatRequest) -> Iterator[str]:
        """Yield content deltas as the server streams them (n must be 1).

        Read to the end, the iterator returns the `ChatResponse` (`StopIteration.value`) with the
        finish reason and the usage the server reports in its last chunk (asked for with
        `stream_options.include_usage`), estimated when it sends none.
        """
        if request.params.n != 1:
            raise BackendRequestError("stream needs n == 1", status=400)
        params = request_to_params(request, self.model_id, stream=True)
        params["stream_options"] = {"include_usage": True}
        if self._fleet is not None:
            return self._fleet_stream(request, params)
        try:
            events = self._client.chat.completions.create(**params)
        except self._openai.OpenAIError as e:
            raise self._map_error(e) from None
        return self._pieces(request, events)

    def _pieces(self, request: ChatRequest, events: Any) -> Iterator[str]:
        start, parts, state = time.perf_counter(), [], {"finish": "stop", "usage": None}
        try:
            for piece in _read(events, state):
                parts.append(piece)
                yield piece
        except self._openai.OpenAIError as e:
            raise self._map_error(e) from None
        finally:
            events.close()
        return self._streamed(request, parts, state, start)

    def _streamed(self, request: ChatRequest, parts: list[str], state: dict[str, Any], start: float) -> ChatResponse:
        finish, usage = state["finish"], state["usage"]
        choices = [Choice(index=0, text="".join(parts), finish_reason=finish)]
        return ChatResponse(
            choices=choices,
            usage=usage or self._estimate(request, choices),
            model=self.model_id,
            latency_s=time.perf_counter() - start,
        )

    def count_tokens(self, text: str) -> int:
        """Best-effort estimate (about four characters a token): the server's tokenizer is remote."""
        return math.ceil(len(text) / 4) if text else 0

    def close(self) -> None:
        """Close the HTTP client and the thread pool."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._client.close()

    def _estimate(self, request: ChatRequest, choices: list[Choice]) -> Usage:
        with self._lock:
            self.estimated_usage += 1
        prompt = sum(self.count_tokens(m.content) + 4 for m in request.messages)
        return Usage(prompt_tokens=prompt, completion_tokens=sum(self.count_tokens(c.text) for c in choices))

    def _map_error(self, e: Exception, url: str | None = None) -> Exception:
        o, url = self._openai, url or self.base_url
        if isinstance(e, o.APITimeoutError):
            return BackendUnavailableError(f"{url} did not answer in time", url=url)
        if isinstance(e, o.APIConnectionError):
            return BackendUnavailableError(f"cannot reach {url}: {e.__cause__ or e}", url=url)
        if not isinstance(e, o.APIStatusError):
            return BackendError(f"{url}: {e}", url=url)
        status, msg = e.status_code, _server_message(e)
        where = f"{url} answered {status}: {msg}"
        if status == 404:
            return ModelNotFoundError(f"{where} (model {self.model_id!r})", status=status, model=self.model_id)
        if status in (502, 503, 504):
            return BackendUnavailableError(where, status=status, url=url)
        if status >= 500:
            return BackendError(where, status=status, url=url)
        if getattr(e, "code", None) == _CONTEXT or "maximum context length" in msg:
            return BackendRequestError(where, status=status, url=url, reason=_CONTEXT)
        return BackendRequestError(where, status=status, url=url)

    # -- a fleet of replicas -------------------------------------------------------------------

    def _verdict(self, e: Exception) -> tuple[bool, bool]:
        """(resend to the next replica, mark this one down) for a failed request."""
        o = self._openai
        if isinstance(e, o.APITimeoutError):
            return False, True
        if isinstance(e, o.APIConnectionError):
            return True, True
        if isinstance(e, o.APIStatusError):
            status = e.status_code
            return status in (429, 502, 503, 504), status >= 500
        return False, False

    def _try(self, replica: Replica, params: dict[str, Any], failures: list[Exception]) -> Any:
        """One attempt on `replica`: the answer, or None after a failure worth resending (kept in
        `failures`); any other failure is raised. The replica stays in flight on success."""
        self._fleet.start(replica)
        try:
            return replica.client.chat.completions.create(**params)
        except self._openai.OpenAIError as e:
            error = self._map_error(e, replica.url)
            resend, down = self._verdict(e)
            self._fleet.finish(replica, str(error), down=down)
            if not resend:
                raise error from None
            failures.append(error)
            return None
        except BaseException:
            self._fleet.finish(replica, "interrupted")
            raise

    def _all_failed(self, failures: list[Exception]) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"all {len(self._fleet)} replicas failed: " + "; ".join(str(e) for e in failures),
            url=self.base_url)

    def _key(self, request: ChatRequest) -> str | None:
        return prefix_key(request.messages) if self._fleet.policy == "prefix" else None

    def _fleet_call(self, request: ChatRequest, params: dict[str, Any]) -> tuple[Any, str]:
        failures: list[Exception] = []
        for replica in self._fleet.plan(self._key(request)):
            resp = self._try(replica, params, failures)
            if resp is not None:
                self._fleet.finish(replica)
                return resp, replica.url
        raise self._all_failed(failures)

    def _fleet_stream(self, request: ChatRequest, params: dict[str, Any]) -> Iterator[str]:
        plan, failures = iter(self._fleet.plan(self._key(request))), []
        opened = self._open_next(plan, params, failures)  # connection errors surface here, as without a fleet
        return self._fleet_pieces(request, params, plan, failures, opened)

    def _open_next(self, plan: Iterator[Replica], params: dict[str, Any], failures: list[Exception]) -> tuple[Replica, Any]:
        for replica in plan:
            events = self._try(replica, params, failures)
            if events is not None:
                return replica, events
        raise self._all_failed(failures)

    def _fleet_pieces(self, request: ChatRequest, params: dict[str, Any], plan: Iterator[Replica],
                      failures: list[Exception], opened: tuple[Replica, Any]) -> Iterator[str]:
        start, parts = time.perf_counter(), []
        replica, events = opened
        while True:
            state: dict[str, Any] = {"finish": "stop", "usage": None}
            try:
                for piece in _read(events, state):
                    parts.append(piece)
                    yield piece
            except self._openai.OpenAIError as e:
                events.close()
                mapped = self._map_error(e, replica.url)
                resend, down = self._verdict(e)
                self._fleet.finish(replica, str(mapped), down=down)
                if parts or not resend:  # text already delivered cannot be taken back
                    raise mapped from None
                failures.append(mapped)
                replica, events = self._open_next(plan, params, failures)
                continue
            except BaseException:  # the reader stopped early (GeneratorExit) or was interrupted
                events.close()
                self._fleet.finish(replica, "stream not read to the end")
                raise
            events.close()
            self._fleet.finish(replica)
            return self._streamed(request, parts, state, start)


def _urls(value: str | Sequence[str]) -> list[str]:
    try:
        return split_base_urls(value)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _read(events: Any, state: dict[str, Any]) -> Iterator[str]:
    """Content deltas of a chat completion stream; the finish reason and usage go to `state`."""
    for chunk in events:
        if getattr(chunk, "usage", None) is not None:
            state["usage"] = Usage(
                prompt_tokens=chunk.usage.prompt_tokens or 0,
                completion_tokens=chunk.usage.completion_tokens or 0,
            )
        for choice in chunk.choices or []:
            if choice.finish_reason == "length":
                state["finish"] = "length"
            if choice.delta is not None and choice.delta.content:
                yield choice.delta.content
