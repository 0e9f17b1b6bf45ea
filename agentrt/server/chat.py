"""`POST /v1/chat/completions`: the request as a `Job`, and the job's results as chat objects.

Solver models (`agentrt-auto`, `-fast`, `-slow`) solve the last user message with the earlier
messages as context; their progress is `reasoning_content` (streamed as it happens, and also on
the non-streamed message) and their answer is `content`. The backend's own model id is a plain
chat with the OpenAI sampling parameters and `response_format` as a JSON-schema constraint.
The served models do not call tools, so a tool-using history reaches the backend as text: an
assistant's tool calls as their JSON, each tool result as a user message that names its call
(an OpenAI-compatible server refuses a `tool` message without the structured call before it).
This module knows the wire models and the job; running it and HTTP are elsewhere.
"""

from __future__ import annotations

import uuid
from typing import Any

from agentrt.server.config import ServerConfig
from agentrt.server.errors import APIError
from agentrt.server.jobs import ChoiceResult, Job, Unit
from agentrt.server.params import (Catalog, check_common, check_problem, sampling,
                                   solver_options, token_limit, unsupported)
from agentrt.server.wire import (ChatCompletionRequest, ChatMessage, chat_chunk, chat_response,
                                 usage_chunk)
from agentrt.core.types import ChatRequest, Message

__all__ = ["build_chat_job", "ChatFormat"]

_ROLES = {"developer": "system"}
_RESULT_ROLES = {"tool", "function"}


def _call_names(messages: list[ChatMessage]) -> dict[str, str]:
    """Tool call id -> function name, from the assistants' tool calls."""
    names = {}
    for m in messages:
        for call in m.calls if m.role == "assistant" else []:
            function, call_id = call.get("function"), call.get("id")
            if isinstance(function, dict) and isinstance(call_id, str):
                names[call_id] = str(function.get("name") or "")
    return names


def _backend_messages(messages: list[ChatMessage], texts: list[str]) -> list[Message]:
    """The conversation in the backend's roles, tool results as user text naming their call.

    Results that follow each other (parallel tool calls) share one user message, so templates
    that want user and assistant turns to alternate accept them.
    """
    names, out, results = _call_names(messages), [], False
    for m, text in zip(messages, texts):
        if m.role not in _RESULT_ROLES:
            out.append(Message(role=_ROLES.get(m.role, m.role), content=text, name=m.name))
            results = False
            continue
        name = (names.get(m.tool_call_id or "") or m.name) if m.role == "tool" else m.name
        label = ", ".join(x for x in (m.tool_call_id, name) if x)
        content = f"Tool result ({label}): {text}"
        if results:
            content = f"{out.pop().content}\n\n{content}"
        out.append(Message(role="user", content=content))
        results = True
    return out


def _check_support(req: ChatCompletionRequest, solver: bool) -> None:
    if req.logprobs:
        raise unsupported("logprobs", "'logprobs' is not supported by this server.")
    if req.audio is not None or (req.modalities and set(req.modalities) - {"text"}):
        raise unsupported("modalities", "Only text output is supported.", value=True)
    if req.web_search_options is not None:
        raise unsupported("web_search_options", "Web search is not supported by this server.")
    for name in ("tool_choice", "function_call"):
        choice = getattr(req, name)
        if choice is not None and choice not in ("none", "auto"):
            raise unsupported(name, f"'{name}' can only be 'auto' or 'none': the served models "
                                    "do not call tools.", value=True)
    fmt = req.response_format
    if solver and fmt is not None and fmt.type != "text":
        raise unsupported("response_format", "The solver models answer in text; use the "
                                             "backend model for structured output.", value=True)


def _check_sizes(messages: list[ChatMessage], config: ServerConfig) -> list[str]:
    if len(messages) > config.max_messages:
        raise APIError(400, f"Too many messages: {len(messages)}; the limit is "
                            f"{config.max_messages}.", param="messages", code="array_above_max_length")
    texts = []
    for i, m in enumerate(messages):
        text = m.text
        if len(text) > config.max_message_chars:
            raise APIError(400, f"Message {i} is {len(text)} characters; the limit is "
                                f"{config.max_message_chars}.", param=f"messages[{i}].content",
                           code="string_above_max_length")
        texts.append(text)
    return texts


def _split(messages: list[ChatMessage], texts: list[str]) -> tuple[str, str | None, int]:
    """The last user message (the problem), the conversation before it, and its index."""
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if last is None:
        raise APIError(400, "The solver models need a user message to solve.",
                       param="messages", code="invalid_value")
    earlier = [f"{messages[i].role}: {texts[i]}" for i in range(len(messages)) if i != last]
    return texts[last], ("\n\n".join(earlier) or None), last


def build_chat_job(req: ChatCompletionRequest, catalog: Catalog, config: ServerConfig,
                   max_problem_chars: int) -> Job:
    """Validate a chat request against what this server serves and turn it into a `Job`.

    Raises:
        APIError: 404 for an unknown model, 400 for unsupported or out-of-limit parameters.
    """
    mode = catalog.mode(req.model)
    check_common(req, config)
    _check_support(req, solver=mode is not None)
    texts = _check_sizes(req.messages, config)
    param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
    common = dict(model=req.model, mode=mode, n=req.n or 1, stop=req.stop_list,
                  stream=bool(req.stream), include_usage=req.include_usage)
    if mode is None:
        messages = _backend_messages(req.messages, texts)
        params = sampling(req, token_limit(req.token_limit, param, config.default_max_tokens, config))
        schema = req.response_format.schema_for_backend() if req.response_format else None
        unit = Unit(request=ChatRequest(messages=messages, params=params, json_schema=schema))
        return Job(units=[unit], **common)
    problem, context, last = _split(req.messages, texts)
    check_problem(problem, max_problem_chars, f"messages[{last}].content")
    limit = None if req.token_limit is None else token_limit(req.token_limit, param, 0, config)
    n = req.n or 1
    return Job(units=[Unit(problem=problem, context=context)], solve_options=solver_options(req),
               max_tokens=limit, tags={"source": "api", "api_model": req.model},
               trace_ids=[uuid.uuid4().hex for _ in range(n)], **common)


class ChatFormat:
    """Chat completion objects and chunks for one job."""

    prefix = "chatcmpl-"
    chunk_object = "chat.completion.chunk"

    def body(self, rid: str, created: int, job: Job, choices: list[ChoiceResult],
             usage: dict[str, int]) -> dict[str, Any]:
        return chat_response(rid, created, job.model, [vars(c) for c in choices], usage)

    def opening(self, rid: str, created: int, job: Job) -> list[dict[str, Any]]:
        """The first chunk of every choice: the role."""
        return [chat_chunk(rid, created, job.model, i, {"role": "assistant", "content": ""},
                           with_usage_field=job.include_usage) for i in range(job.choices)]

    def text(self, rid: str, created: int, job: Job, index: int, field: str,
             text: str) -> dict[str, Any] | None:
        return chat_chunk(rid, created, job.model, index, {field: text},
                          with_usage_field=job.include_usage)

    def finish(self, rid: str, created: int, job: Job, choice: ChoiceResult) -> dict[str, Any]:
        return chat_chunk(rid, created, job.model, choice.index, {}, choice.finish_reason,
                          with_usage_field=job.include_usage)

    def usage(self, rid: str, created: int, job: Job, usage: dict[str, int]) -> dict[str, Any]:
        return usage_chunk(rid, created, job.model, self.chunk_object, usage)

    def replay(self, body: dict[str, Any], job: Job) -> list[dict[str, Any]]:
        """A stored chat.completion as the chunks a stream of it would have had."""
        rid, created = body["id"], body["created"]
        chunks = self.opening(rid, created, job)
        for c in body["choices"]:
            msg = c["message"]
            for field in ("reasoning_content", "content"):
                if msg.get(field):
                    chunks.append(self.text(rid, created, job, c["index"], field, msg[field]))
            chunks.append(chat_chunk(rid, created, job.model, c["index"], {}, c["finish_reason"],
                                     with_usage_field=job.include_usage))
        if job.include_usage:
            chunks.append(self.usage(rid, created, job, body["usage"]))
        return chunks
