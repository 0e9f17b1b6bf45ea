"""The recorder: every LLM call, tool run and decision of one solve becomes a trace step.

Graph nodes never call a backend or a tool directly; they go through `Recorder`, which enforces
the solve's budgets (LLM calls, tokens, tool runs, wall time) before each call, measures latency,
adds up usage, and writes the step to the store as soon as it happens (so a killed solve keeps
every finished step). Thread-safe: parallel nodes share one recorder. A step recorded inside a
checkpointed graph names its task (the task's checkpoint namespace), so that a resumed solve can
tell which steps belong to tasks it runs again.

A call that fails (an agentrt error or any other exception) is recorded as a failed step and its
exception re-raised as it is; when the store cannot take that step, the failure to record it is
logged and the call's own exception is still the one raised.

It knows the store's step API and the backend protocol, nothing about graphs or prompts beyond
the `RenderedPrompt` it is handed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from agentrt.core.cancel import cancel_on
from agentrt.core.config import Limits
from agentrt.core.errors import AgentrtError, CancelledError, LimitExceededError
from agentrt.core.types import ChatRequest, ChatResponse, SamplingParams, Usage
from agentrt.llm.base import ChatBackend
from agentrt.store import StepRecord, TraceStore
from agentrt.workflows.prompts import RenderedPrompt

__all__ = ["Recorder"]

log = logging.getLogger(__name__)


def _task_path() -> str | None:
    """The checkpoint namespace of the graph task running this code ("execute:<id>|n_calc:<id>"),
    when it runs in a checkpointed graph; else None."""
    try:
        from langgraph.config import get_config  # heavy: langgraph

        conf = get_config().get("configurable") or {}
    except (ImportError, RuntimeError):  # not inside a graph task
        return None
    ns = conf.get("checkpoint_ns")
    if not conf.get("thread_id") or not isinstance(ns, str) or not 0 < len(ns) <= 512:
        return None
    return ns


class Recorder:
    """Budgeted, recorded access to the backend and tools for one trace.

    Args:
        store: where steps are written.
        trace_id: the trace the steps belong to.
        limits: budgets for this solve.
        on_step: optional callback receiving each recorded step (used for streaming progress).
        cancel: when set (e.g. the HTTP client went away), the next budget check raises
            `CancelledError` and no further LLM or tool call starts.
    """

    def __init__(
        self,
        store: TraceStore,
        trace_id: str,
        limits: Limits,
        on_step: Callable[[StepRecord], None] | None = None,
        cancel: threading.Event | None = None,
    ):
        self.store = store
        self.trace_id = trace_id
        self.limits = limits
        self.on_step = on_step
        self.usage = Usage()
        self.llm_calls = 0
        self.tool_runs = 0
        self.started = time.perf_counter()
        self.exceeded: str | None = None
        self.cancel = cancel or threading.Event()
        self._lock = threading.Lock()

    # -- budgets -----------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def check_budget(self, tool: bool = False) -> None:
        """Raise LimitExceededError (and remember which limit) if a budget is spent."""
        if self.cancel.is_set():
            raise CancelledError("solve cancelled")
        lim = self.limits
        with self._lock:
            which = None
            if self.elapsed() > lim.max_wall_s:
                which = "wall_time"
            elif self.usage.total_tokens >= lim.max_total_tokens:
                which = "tokens"
            elif not tool and self.llm_calls >= lim.max_llm_calls:
                which = "llm_calls"
            elif tool and self.tool_runs >= lim.max_tool_runs:
                which = "tool_runs"
            if which:
                self.exceeded = self.exceeded or which
                raise LimitExceededError(f"budget exceeded: {which}", limit=which)

    # -- recording ---------------------------------------------------------------------------
    def record(self, step: StepRecord) -> StepRecord:
        """Write one step to the store and pass it to the progress callback."""
        if step.task is None:
            step.task = _task_path()
        step.id = self.store.add_step(self.trace_id, step)
        if self.on_step is not None:
            self.on_step(step)
        return step

    def _record_failure(self, error: Exception, step: StepRecord) -> None:
        """Record the step of a call that raised `error`; a store failure must not replace it."""
        try:
            self.record(step)
        except Exception as e:  # the caller re-raises `error`, the failure the solve is about
            log.warning("trace %s: could not record failed step %r: %s", self.trace_id,
                        step.name, e)
            error.add_note(f"its failed step was not recorded: {e}")

    def llm(
        self,
        backend: ChatBackend,
        prompt: RenderedPrompt,
        *,
        name: str,
        params: SamplingParams | None = None,
        json_schema: dict[str, Any] | None = None,
        node: str | None = None,
        round: int = 0,
    ) -> ChatResponse:
        """Make one budgeted LLM call and record it as an `llm` step.

        Raises:
            LimitExceededError: a budget is spent (nothing is called).
            BackendError: the backend failed (an error step is recorded first).
        """
        self.check_budget()
        params = params or SamplingParams(max_tokens=self.limits.max_tokens_per_call)
        request = ChatRequest(messages=list(prompt.messages), params=params, json_schema=json_schema)
        with self._lock:
            self.llm_calls += 1
        inputs = {
            "messages": [m.model_dump(exclude_none=True) for m in prompt.messages],
            "params": params.model_dump(),
        }
        if json_schema is not None:
            inputs["json_schema"] = json_schema
        started = time.perf_counter()
        try:
            with cancel_on(self.cancel):  # a backend that can stops mid-call when cancelled
                response = backend.chat(request)
        except Exception as e:
            self._record_failure(
                e, StepRecord(kind="llm", name=name, node=node, round=round, status="error",
                              inputs=inputs, error=_describe(e),
                              latency_s=time.perf_counter() - started,
                              template=prompt.template, template_hash=prompt.template_hash))
            raise
        with self._lock:
            self.usage = self.usage + response.usage
        outputs = {
            "text": response.text,
            "finish_reason": response.choices[0].finish_reason,
            "model": response.model,
        }
        if len(response.choices) > 1:
            outputs["choices"] = [c.text for c in response.choices]
        self.record(
            StepRecord(kind="llm", name=name, node=node, round=round, inputs=inputs,
                       outputs=outputs, prompt_tokens=response.usage.prompt_tokens,
                       completion_tokens=response.usage.completion_tokens,
                       latency_s=time.perf_counter() - started, template=prompt.template,
                       template_hash=prompt.template_hash)
        )
        return response

    def decision(self, name: str, inputs: dict, outputs: dict, *, node: str | None = None,
                 round: int = 0) -> None:
        """Record a decision (router choice, verdict, answer extraction, selection)."""
        self.record(StepRecord(kind="decision", name=name, node=node, round=round,
                               inputs=inputs, outputs=outputs))

    def stage(self, name: str, outputs: dict, *, status: str = "ok", round: int = 0,
              error: str | None = None, latency_s: float = 0.0) -> None:
        """Record a stage boundary or summary (design validated, round finished, ...)."""
        self.record(StepRecord(kind="stage", name=name, round=round, status=status,
                               outputs=outputs, error=error, latency_s=latency_s))

    def tool(self, name: str, args: dict, run: Callable[[dict], dict], *, node: str | None = None,
             round: int = 0) -> dict:
        """Run a tool call under the tool budget and record it as a `tool` step.

        Returns the tool's output; re-raises its ToolError after recording it.
        """
        self.check_budget(tool=True)
        with self._lock:
            self.tool_runs += 1
        started = time.perf_counter()
        try:
            with cancel_on(self.cancel):  # a cancelled solve also kills a run in progress
                out = run(args)
        except Exception as e:
            self._record_failure(
                e, StepRecord(kind="tool", name=name, node=node, round=round, status="failed",
                              inputs=args, error=_describe(e),
                              latency_s=time.perf_counter() - started))
            raise
        self.record(StepRecord(kind="tool", name=name, node=node, round=round, inputs=args,
                               outputs=out, latency_s=time.perf_counter() - started))
        return out


def _describe(error: Exception) -> str:
    """A failed step's error text: "<code>: <message>" for agentrt errors, else
    "<type name>: <message>"."""
    if isinstance(error, AgentrtError):
        return f"{error.code}: {error}"
    return f"{type(error).__name__}: {error}"
