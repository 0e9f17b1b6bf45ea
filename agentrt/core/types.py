"""Plain typed data shared by every layer: chat messages, requests, responses, usage, solutions.

These are pydantic models because they cross process and storage boundaries (HTTP, database
JSON columns, datasets); `Outcome`, which never leaves the process, is a frozen dataclass.
This module knows nothing about backends, graphs or storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Role",
    "Message",
    "SamplingParams",
    "ChatRequest",
    "Usage",
    "Choice",
    "ChatResponse",
    "Mode",
    "Verdict",
    "Solution",
    "Outcome",
    "Problem",
    "MAX_TOKENS",
    "TOOL_MAX_TIMEOUT_S",
    "TOOL_MAX_MEMORY_MB",
]

Role = Literal["system", "user", "assistant", "tool"]
Mode = Literal["fast", "slow", "auto", "team"]
Verdict = Literal["yes", "no", "unknown"]
#: The most output tokens one call may ask for (`SamplingParams.max_tokens`).
MAX_TOKENS = 32_768
#: The most a python tool run may ask for by default (`PythonTool`'s caps; `Limits` stays within).
TOOL_MAX_TIMEOUT_S, TOOL_MAX_MEMORY_MB = 60.0, 4096


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str
    name: str | None = None


class SamplingParams(BaseModel):
    """Decoding parameters, OpenAI-shaped. Temperature 0 means greedy."""

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1, le=MAX_TOKENS)
    stop: list[str] = Field(default_factory=list, max_length=4)
    n: int = Field(1, ge=1, le=16)
    seed: int | None = None

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, v: list[str]) -> list[str]:
        if any(s == "" for s in v):
            raise ValueError("stop sequences must be non-empty strings")
        return v


class ChatRequest(BaseModel):
    """A chat call: messages, sampling parameters and an optional JSON-schema constraint.

    When `json_schema` is set, backends that support constrained decoding force the output
    to match it; others pass it on as a hint and the caller validates the result.
    """

    messages: list[Message] = Field(min_length=1)
    params: SamplingParams = Field(default_factory=SamplingParams)
    json_schema: dict[str, Any] | None = None

    @classmethod
    def of(cls, prompt: str, system: str | None = None, **params: Any) -> "ChatRequest":
        """Build a request from a user prompt and optional system prompt."""
        msgs = [Message(role="system", content=system)] if system else []
        msgs.append(Message(role="user", content=prompt))
        return cls(messages=msgs, params=SamplingParams(**params))


class Usage(BaseModel):
    """Token counts as the backend's tokenizer measured them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


class Choice(BaseModel):
    """One generated completion."""

    index: int = 0
    text: str
    finish_reason: Literal["stop", "length"] = "stop"


class ChatResponse(BaseModel):
    """The result of one chat call (n choices)."""

    choices: list[Choice] = Field(min_length=1)
    usage: Usage = Field(default_factory=Usage)
    model: str = ""
    latency_s: float = 0.0

    @property
    def text(self) -> str:
        """Text of the first choice."""
        return self.choices[0].text


class Solution(BaseModel):
    """What `solve()` returns."""

    answer: str
    mode: Literal["fast", "slow"]
    requested_mode: Mode = "fast"
    trace_id: str
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    verdict: Verdict = "unknown"
    status: str = "ok"
    route_reason: str = ""
    llm_calls: int = 0
    tool_runs: int = 0

    @model_validator(mode="after")
    def _check(self) -> "Solution":
        if self.latency_s < 0:
            raise ValueError("latency_s must be >= 0")
        return self


@dataclass(frozen=True)
class Outcome:
    """What a thinking path (fast, slow, or auto choosing between them) hands the runtime.

    The runtime turns it into a `Solution` (adding the trace id, usage and latency). A spent
    budget carries the best outcome so far on `LimitExceededError.partial`.

    Attributes:
        mode: the path that produced the answer.
        answer: the final answer ("" when there is none yet).
        verdict: the self-check's or judge's verdict; None when no check ran.
        route_reason: why this path answered ("" when a budget cut the path short).
        check_reason: the fast self-check's reason (fast path only).
        finish_reason: how the fast answer's generation ended ("stop", "length"; fast only).
        rounds: slow-thinking rounds run (slow path only).
        selected_round: the round whose answer was selected (slow path only).
    """

    mode: Literal["fast", "slow"]
    answer: str = ""
    verdict: Verdict | None = None
    route_reason: str = ""
    check_reason: str = ""
    finish_reason: str | None = None
    rounds: int = 0
    selected_round: int = 0


class Problem(BaseModel):
    """A problem with a reference answer and the name of the grader that checks answers to it.

    Used by benchmark loaders, problem generators, evaluation and data synthesis alike.
    """

    id: str
    text: str = Field(min_length=1)
    answer: str
    grader: str
    family: str = ""
    difficulty: int = 1
    seed: int | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
