"""Typed records that cross the store boundary: steps, traces and trained model versions.

`StepRecord` is what the runtime hands to `TraceStore.add_step`; `TraceRecord` is what
`get_trace` and `list_traces` give back; `ModelVersion` and `Promotion` are what the model
registry's queries (`agentrt.store.model_versions`) give back, to training and serving alike. Both are plain pydantic models and import nothing from
SQLAlchemy, so code that only builds steps stays free of the database layer. This module does
not know how records are stored, nor what the runtime puts into `inputs`, `outputs` or `meta`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from agentrt.core.types import Usage

__all__ = ["StepKind", "StepStatus", "StepRecord", "TraceRecord", "ModelVersion", "Promotion",
           "RUNNING", "INTERRUPTED", "utcnow", "as_utc"]

StepKind = Literal["llm", "tool", "decision", "stage", "error"]
StepStatus = Literal["ok", "error", "failed"]

#: Status of a trace between `start_trace` and `finish_trace`.
RUNNING = "running"
#: Status of a trace whose solve stopped without an outcome: stored by a process that was
#: interrupted, or read for a running trace whose owner is gone (`TraceRecord.orphaned`).
INTERRUPTED = "interrupted"


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """Return `value` in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class StepRecord(BaseModel):
    """One LLM call, tool run, decision, stage boundary or error inside a trace.

    `inputs` and `outputs` take any values: the store converts what JSON cannot hold
    (see `agentrt.store.jsonsafe`), so a step is never lost to one odd value. `id` is None
    until the store has written the step. `task` names the graph task that recorded it;
    `superseded` is set when a resumed solve ran that task again, so the step no longer counts
    (the store leaves such steps out unless asked for them).
    """

    kind: StepKind
    name: str = Field(min_length=1, max_length=255)
    node: str | None = Field(None, max_length=255)
    round: int = Field(0, ge=0)
    status: StepStatus = "ok"
    inputs: dict[Any, Any] = Field(default_factory=dict)
    outputs: dict[Any, Any] = Field(default_factory=dict)
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)
    latency_s: float = Field(0.0, ge=0.0)
    error: str | None = None
    template: str | None = Field(None, max_length=255)
    template_hash: str | None = Field(None, max_length=64)
    started_at: datetime = Field(default_factory=utcnow)
    task: str | None = Field(None, max_length=512)
    superseded: bool = False
    id: int | None = None

    @field_validator("started_at")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return as_utc(v)


class TraceRecord(BaseModel):
    """One solve as stored: the problem, the outcome, totals, tags and (optionally) its steps.

    `mode`, `answer`, `verdict` and `finished_at` stay None while the trace is running.
    `status` is "running", "ok", "error", "interrupted", "budget_exceeded:<which>" or any
    other string a caller chose. A trace stored as running whose owner is gone (its lease ran
    out, or its process died on this host) reads as "interrupted" with `orphaned` set.
    `owner` and `heartbeat_at` are its lease (see `agentrt.store.lease`).
    """

    id: str
    problem: str
    requested_mode: str
    mode: str | None = None
    answer: str | None = None
    status: str = RUNNING
    verdict: str | None = None
    model_id: str
    backend: str
    usage: Usage = Field(default_factory=Usage)
    llm_calls: int = 0
    tool_runs: int = 0
    latency_s: float = 0.0
    error: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    finished_at: datetime | None = None
    owner: str | None = None
    heartbeat_at: datetime | None = None
    orphaned: bool = False
    steps: list[StepRecord] = Field(default_factory=list)


class ModelVersion(BaseModel):
    """A registered checkpoint: lineage, config, scores and whether it is promoted now.

    `path` is the model directory a backend loads; `promoted` says whether the `promoted`
    pointer named it when the record was read.
    """

    id: str
    number: int
    parent_id: str | None = None
    base_model: str
    path: str
    datasets: list[dict[str, Any]] = Field(default_factory=list)
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    gate: dict[str, Any] = Field(default_factory=dict)
    note: str = ""
    created_at: datetime
    promoted_at: datetime | None = None
    promoted: bool = False

    @property
    def label(self) -> str:
        return f"v{self.number}"


class Promotion(BaseModel):
    """One move of the promoted pointer."""

    id: int
    version_id: str | None
    previous_id: str | None
    action: str
    reason: str
    at: datetime
