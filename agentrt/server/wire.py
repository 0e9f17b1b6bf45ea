"""Wire models of the OpenAI API: request bodies as clients send them, responses as they expect.

Requests follow the OpenAI reference field by field (chat completions, legacy completions).
Types are checked strictly (a string where a number belongs is a 400 naming the parameter), value
ranges are the reference's, and fields this server does not know are accepted and ignored.
Whether a known field is *supported* (penalties, logprobs, tool calls, audio) is the serving
layer's decision, not this module's: here a request is only well-formed or not. Bad text is
cleaned here, once, for every route: lone surrogates (which UTF-8 cannot encode) and NUL
characters in any string or key of a request become U+FFFD before it is validated, as the trace
store would store them, so what the model sees, what is echoed and what is stored agree.
Responses are built with the `*_response` and `*_chunk` helpers so every route emits the same
shapes; `dumps` serializes them (lone surrogates a backend produced become U+FFFD there).
This module knows nothing about backends, solving or HTTP.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from agentrt.server.schema_check import check_schema
from agentrt.store.jsonsafe import clean_text

__all__ = [
    "ChatMessage",
    "StreamOptions",
    "ResponseFormat",
    "ChatCompletionRequest",
    "CompletionRequest",
    "message_text",
    "FINGERPRINT",
    "usage_dict",
    "chat_response",
    "chat_chunk",
    "text_response",
    "text_chunk",
    "usage_chunk",
    "model_object",
    "clean_strings",
    "dumps",
]

_STRICT = ConfigDict(strict=True, extra="ignore")
_TEXT_PART_TYPES = {"text", "input_text", "refusal"}
# Parts the API defines but this server cannot read: refused as unsupported, not as malformed.
_MEDIA_PART_TYPES = {"image_url", "input_image", "input_audio", "file", "input_file"}
_INT64 = 2**63  # `seed` is a signed 64-bit integer, as in the OpenAI API


def _part_text(part: Any) -> str:
    if not isinstance(part, dict):
        raise ValueError("each content part must be an object with a 'type'")
    kind = part.get("type")
    if kind in _MEDIA_PART_TYPES:
        raise PydanticCustomError("unsupported_value", f"content parts of type {kind!r} are "
                                                       "not supported: the models read text only")
    if kind not in _TEXT_PART_TYPES:
        raise ValueError(f"content parts of type {kind!r} are not supported; send text parts")
    text = part.get("refusal") if kind == "refusal" else part.get("text")
    if not isinstance(text, str):
        raise ValueError(f"a {kind!r} content part needs a string '{'refusal' if kind == 'refusal' else 'text'}'")
    return text


def clean_strings(data: Any) -> Any:
    """`data` (parsed JSON) with every string and key passed through `clean_text`, in place.

    Iterative, so a deeply nested body cannot exhaust the stack.
    """
    pending = [data]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            for key in [k for k in node if isinstance(k, str) and clean_text(k) != k]:
                node[clean_text(key)] = node.pop(key)
            entries = node.items()
        elif isinstance(node, list):
            entries = enumerate(node)
        else:
            continue
        for key, value in list(entries):
            if isinstance(value, str):
                node[key] = clean_text(value)
            elif isinstance(value, (dict, list)):
                pending.append(value)
    return data


def message_text(content: str | list[dict[str, Any]] | None) -> str:
    """The text of a message's content: the string itself, or its text parts joined by newlines."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(_part_text(p) for p in content)


class ChatMessage(BaseModel):
    """One message of `messages`: system, developer, user, assistant, tool or (legacy) function."""

    model_config = _STRICT

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, Any] | None = None
    refusal: str | None = None

    @field_validator("content")
    @classmethod
    def _parts(cls, v: str | list[dict[str, Any]] | None) -> str | list[dict[str, Any]] | None:
        if isinstance(v, list):
            for part in v:
                _part_text(part)
        return v

    @model_validator(mode="after")
    def _per_role(self) -> "ChatMessage":
        if self.role == "assistant":
            if self.content is None and not (self.tool_calls or self.function_call or self.refusal):
                raise ValueError("an assistant message needs content, tool_calls or function_call")
        elif self.content is None:
            raise ValueError(f"a {self.role} message needs content")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.role == "function" and not self.name:
            raise ValueError("a function message needs name")
        return self

    @property
    def calls(self) -> list[dict[str, Any]]:
        """An assistant message's tool calls (a legacy `function_call` as one call)."""
        return self.tool_calls or ([self.function_call] if self.function_call else [])

    @property
    def text(self) -> str:
        """The message as plain text (assistant tool calls as JSON text after the content)."""
        text = message_text(self.content)
        if self.role == "assistant":
            calls = json.dumps(self.calls, ensure_ascii=False) if self.calls else ""
            text = "\n".join(t for t in (text or self.refusal or "", calls) if t)
        return text


class StreamOptions(BaseModel):
    """`stream_options`: only meaningful with `stream: true`."""

    model_config = _STRICT

    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class JSONSchemaFormat(BaseModel):
    """`response_format.json_schema`."""

    model_config = _STRICT

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None

    @field_validator("schema_")
    @classmethod
    def _well_formed(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            check_schema(v)
        return v


class ResponseFormat(BaseModel):
    """`response_format`: text, json_object, or json_schema with a schema."""

    model_config = _STRICT

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> "ResponseFormat":
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type json_schema needs a json_schema object")
        return self

    def schema_for_backend(self) -> dict[str, Any] | None:
        """The JSON schema to constrain decoding with, or None for plain text."""
        if self.type == "json_object":
            return {"type": "object"}
        if self.type == "json_schema" and self.json_schema is not None:
            return self.json_schema.schema_ or {"type": "object"}
        return None


Penalty = Field(None, ge=-2.0, le=2.0)


class _Sampling(BaseModel):
    """Fields shared by both endpoints."""

    model_config = _STRICT

    model: str = Field(min_length=1, max_length=256)
    frequency_penalty: float | None = Penalty
    presence_penalty: float | None = Penalty
    logit_bias: dict[str, int] | None = None
    n: int | None = Field(None, ge=1, le=128)
    seed: int | None = Field(None, ge=-_INT64, le=_INT64 - 1)
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    user: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _clean_text(cls, data: Any) -> Any:
        return clean_strings(data)

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("stop takes at most 4 sequences")
        return v

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, v: dict[str, int] | None) -> dict[str, int] | None:
        for key, value in (v or {}).items():
            if not key.isdigit() or not -100 <= value <= 100:
                raise ValueError("logit_bias maps token ids to values between -100 and 100")
        return v

    @field_validator("stream_options")
    @classmethod
    def _stream_options_need_stream(cls, v: StreamOptions | None,
                                    info: ValidationInfo) -> StreamOptions | None:
        if v is not None and not info.data.get("stream"):
            raise ValueError("stream_options is only allowed when stream is true")
        return v

    @property
    def stop_list(self) -> list[str]:
        """`stop` as a list (a single string is one sequence)."""
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Sampling):
    """`POST /v1/chat/completions` body."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs_need_logprobs(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v and not info.data.get("logprobs"):
            raise ValueError("top_logprobs requires logprobs to be true")
        return v

    @property
    def token_limit(self) -> int | None:
        """`max_completion_tokens`, else the deprecated `max_tokens`."""
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class CompletionRequest(_Sampling):
    """`POST /v1/completions` body (the legacy text completion API)."""

    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(None, ge=1)
    best_of: int | None = Field(None, ge=1, le=20)
    echo: bool | None = None
    logprobs: int | None = Field(None, ge=0, le=5)
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _nonempty(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("prompt must not be an empty list")
        return v


# ---- responses ------------------------------------------------------------------------------
# Plain dicts, serialized once: every route builds its bodies here so the shapes cannot drift.

FINGERPRINT = "agentrt-0.1"


def dumps(obj: Any) -> str:
    """A response body or event as compact JSON that always encodes as UTF-8."""
    # json.dumps escapes NUL, so clean_text only replaces lone surrogates here.
    return clean_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


def usage_dict(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """The `usage` object."""
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_response(rid: str, created: int, model: str, choices: list[dict[str, Any]],
                  usage: dict[str, int]) -> dict[str, Any]:
    """A `chat.completion` object; each choice dict has index, text, finish_reason, reasoning."""
    out = []
    for c in choices:
        message: dict[str, Any] = {"role": "assistant", "content": c["text"], "refusal": None}
        if c.get("reasoning"):
            message["reasoning_content"] = c["reasoning"]
        out.append({"index": c["index"], "message": message, "logprobs": None,
                    "finish_reason": c["finish_reason"]})
    return {"id": rid, "object": "chat.completion", "created": created, "model": model,
            "choices": out, "usage": usage, "system_fingerprint": FINGERPRINT}


def chat_chunk(rid: str, created: int, model: str, index: int, delta: dict[str, Any],
               finish_reason: str | None = None, with_usage_field: bool = False) -> dict[str, Any]:
    """One `chat.completion.chunk` with a single choice."""
    chunk = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
             "system_fingerprint": FINGERPRINT,
             "choices": [{"index": index, "delta": delta, "logprobs": None,
                          "finish_reason": finish_reason}]}
    if with_usage_field:
        chunk["usage"] = None
    return chunk


def text_response(rid: str, created: int, model: str, choices: list[dict[str, Any]],
                  usage: dict[str, int]) -> dict[str, Any]:
    """A legacy `text_completion` object."""
    out = [{"index": c["index"], "text": c["text"], "logprobs": None,
            "finish_reason": c["finish_reason"]} for c in choices]
    return {"id": rid, "object": "text_completion", "created": created, "model": model,
            "choices": out, "usage": usage, "system_fingerprint": FINGERPRINT}


def text_chunk(rid: str, created: int, model: str, index: int, text: str,
               finish_reason: str | None = None, with_usage_field: bool = False) -> dict[str, Any]:
    """One streamed legacy `text_completion` chunk."""
    chunk = {"id": rid, "object": "text_completion", "created": created, "model": model,
             "system_fingerprint": FINGERPRINT,
             "choices": [{"index": index, "text": text, "logprobs": None,
                          "finish_reason": finish_reason}]}
    if with_usage_field:
        chunk["usage"] = None
    return chunk


def usage_chunk(rid: str, created: int, model: str, obj: str, usage: dict[str, int]) -> dict[str, Any]:
    """The last chunk when `stream_options.include_usage` is set: no choices, the usage."""
    return {"id": rid, "object": obj, "created": created, "model": model,
            "system_fingerprint": FINGERPRINT, "choices": [], "usage": usage}


def model_object(model_id: str, created: int, owned_by: str) -> dict[str, Any]:
    """One entry of `GET /v1/models`."""
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}
