"""A finished trace as a tree of spans: what `agentrt.telemetry.otlp` sends, as plain data.

`plan_spans(trace)` turns a stored `TraceRecord` into `SpanPlan`s with the recorded times:

```
solve                          the whole solve (trace created -> finished)
  chat <model>                 fast-path and router LLM calls (round 0)
  execute_tool <tool>
  round <n>                    one slow-thinking round
    chat <model>               reflect, design, judge, select
    node <id>                  one workflow node
      chat <model>             the expert's or tool input's call
      execute_tool <tool>      the sandboxed tool run
```

LLM and tool spans carry the OpenTelemetry GenAI semantic conventions (`gen_ai.*`); everything
agentrt-specific is under `agentrt.*`. Decisions and stage boundaries become span events on
their round, node or solve span. Prompt, completion and tool input/output text are left out
unless `capture_content` is set (the conventions' opt-in content capture).

A step's `started_at` is when the recorder wrote it, that is when its call ended, so a span runs
from `started_at - latency_s` to `started_at`. This module knows the store's records and the
conventions' names; it knows nothing about the OpenTelemetry SDK or the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentrt.store.records import StepRecord, TraceRecord

__all__ = ["SpanPlan", "EventPlan", "plan_spans", "FAILED_STATUSES", "CONTENT_EVENT"]

#: Trace statuses that mark the solve span as an error.
FAILED_STATUSES = ("error", "interrupted", "cancelled")
#: The conventions' event for opt-in prompt and completion content.
CONTENT_EVENT = "gen_ai.client.inference.operation.details"

_NS = 1_000_000_000


@dataclass
class EventPlan:
    """A span event: a decision, a stage boundary, or opt-in content."""

    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class SpanPlan:
    """One span to emit: times in Unix nanoseconds; `error` set means status ERROR."""

    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    events: list[EventPlan] = field(default_factory=list)
    children: list[SpanPlan] = field(default_factory=list)

    def walk(self):
        """This span and every span below it, parents first."""
        yield self
        for child in self.children:
            yield from child.walk()


def _ns(t: datetime) -> int:
    return int(t.timestamp() * _NS)


def _step_times(step: StepRecord) -> tuple[int, int]:
    end = _ns(step.started_at)
    return end - int(step.latency_s * _NS), end


def _error_type(error: str | None) -> str:
    """The error code before the first colon of a recorded error ("backend_error: ...")."""
    code = (error or "").partition(":")[0].strip()
    return code if code and " " not in code else "error"


def _clean(attrs: dict[str, Any]) -> dict[str, Any]:
    """Drop None values (OpenTelemetry attributes cannot hold them)."""
    return {k: v for k, v in attrs.items() if v is not None}


def _text_messages(messages: list[dict[str, Any]]) -> str:
    return json.dumps([{"role": m.get("role"), "parts": [{"type": "text",
                                                          "content": m.get("content", "")}]}
                       for m in messages], ensure_ascii=False)


def _llm_span(step: StepRecord, trace: TraceRecord, capture: bool) -> SpanPlan:
    start, end = _step_times(step)
    params = step.inputs.get("params") or {}
    response_model = step.outputs.get("model")
    attrs = _clean({
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": trace.backend,
        "gen_ai.request.model": trace.model_id,
        "gen_ai.response.model": response_model,
        "gen_ai.usage.input_tokens": step.prompt_tokens,
        "gen_ai.usage.output_tokens": step.completion_tokens,
        "gen_ai.request.max_tokens": params.get("max_tokens"),
        "gen_ai.request.temperature": params.get("temperature"),
        "gen_ai.request.top_p": params.get("top_p"),
        "gen_ai.request.seed": params.get("seed"),
        "gen_ai.request.choice.count": params.get("n") if params.get("n", 1) != 1 else None,
        "gen_ai.output.type": "json" if "json_schema" in step.inputs else "text",
        "gen_ai.response.finish_reasons": ([step.outputs["finish_reason"]]
                                           if step.outputs.get("finish_reason") else None),
        "agentrt.step.name": step.name,
        "agentrt.step.id": step.id,
        "agentrt.round": step.round,
        "agentrt.node": step.node,
        "agentrt.template": step.template,
        "agentrt.template_hash": step.template_hash,
        "error.type": _error_type(step.error) if step.status != "ok" else None,
    })
    span = SpanPlan(f"chat {trace.model_id}", start, end, attrs,
                    error=(step.error or step.status) if step.status != "ok" else None)
    if capture:
        content = {"gen_ai.input.messages": _text_messages(step.inputs.get("messages") or [])}
        if "text" in step.outputs:
            content["gen_ai.output.messages"] = json.dumps([{
                "role": "assistant", "parts": [{"type": "text", "content": step.outputs["text"]}],
                "finish_reason": step.outputs.get("finish_reason") or "stop"}], ensure_ascii=False)
        span.events.append(EventPlan(CONTENT_EVENT, end, content))
    return span


def _tool_span(step: StepRecord, capture: bool) -> SpanPlan:
    start, end = _step_times(step)
    out = step.outputs
    attrs = _clean({
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": step.name,
        "gen_ai.tool.type": "function",
        "agentrt.step.id": step.id,
        "agentrt.round": step.round,
        "agentrt.node": step.node,
        "agentrt.tool.exit_code": out.get("exit_code") if isinstance(out.get("exit_code"), int)
        else None,
        "agentrt.tool.timed_out": out.get("timed_out") if isinstance(out.get("timed_out"), bool)
        else None,
        "error.type": _error_type(step.error) if step.status != "ok" else None,
    })
    if capture:
        attrs["gen_ai.tool.call.arguments"] = json.dumps(step.inputs, default=str)
        if out:
            attrs["gen_ai.tool.call.result"] = json.dumps(out, default=str)
    return SpanPlan(f"execute_tool {step.name}", start, end, attrs,
                    error=(step.error or step.status) if step.status != "ok" else None)


def _event(step: StepRecord) -> EventPlan:
    """A decision, stage boundary or error step as an event (names and status, no content)."""
    _, end = _step_times(step)
    return EventPlan(f"agentrt.{step.kind}", end, _clean({
        "agentrt.step.name": step.name, "agentrt.step.id": step.id,
        "agentrt.step.status": step.status, "agentrt.step.error": step.error,
    }))


def _fit(span: SpanPlan) -> SpanPlan:
    """Stretch a grouping span over its children and events."""
    times = [(c.start_ns, c.end_ns) for c in span.children] + [(e.time_ns, e.time_ns)
                                                               for e in span.events]
    if times:
        span.start_ns = min([span.start_ns, *(t[0] for t in times)])
        span.end_ns = max([span.end_ns, *(t[1] for t in times)])
    return span


def _fill(span: SpanPlan, steps: list[StepRecord], trace: TraceRecord, capture: bool) -> SpanPlan:
    """Put steps under a solve, round or node span: LLM and tool spans, node spans (below a
    node there are none), events; then stretch the span over them."""
    in_node = "agentrt.node" in span.attributes
    nodes: dict[str, list[StepRecord]] = {}
    for step in steps:
        if step.node is not None and not in_node:
            nodes.setdefault(step.node, []).append(step)
        elif step.kind == "llm":
            span.children.append(_llm_span(step, trace, capture))
        elif step.kind == "tool":
            span.children.append(_tool_span(step, capture))
        elif in_node and step.kind == "stage" and step.name == "node":
            start, end = _step_times(step)  # the node's own summary: its time and status
            span.start_ns, span.end_ns = min(span.start_ns, start), max(span.end_ns, end)
            span.attributes.update(_clean({"agentrt.node.kind": step.outputs.get("kind"),
                                           "agentrt.node.tool": step.outputs.get("tool"),
                                           "agentrt.node.status": step.status}))
            if step.status != "ok":
                span.error = step.error or f"node {step.node} {step.status}"
        else:
            span.events.append(_event(step))
    for node, node_steps in nodes.items():
        attrs = {"agentrt.node": node, "agentrt.round": node_steps[0].round}
        span.children.append(_group(f"node {node}", attrs, node_steps, trace, capture))
    span.children.sort(key=lambda c: c.start_ns)
    return _fit(span)


def _group(name: str, attrs: dict[str, Any], steps: list[StepRecord], trace: TraceRecord,
           capture: bool) -> SpanPlan:
    """A round or node span over its steps."""
    first = min(_step_times(s)[0] for s in steps)
    return _fill(SpanPlan(name, first, first, dict(attrs)), steps, trace, capture)


def plan_spans(trace: TraceRecord, *, capture_content: bool = False) -> SpanPlan:
    """The span tree of a finished (or stopped) trace.

    Args:
        trace: a trace read with its steps (`TraceStore.get_trace`).
        capture_content: add prompts, completions and tool inputs/outputs (opt-in; off by
            default because they may hold private data).

    Returns:
        The root `solve` span; its children are in time order.
    """
    start = _ns(trace.created_at)
    end = _ns(trace.finished_at) if trace.finished_at else start + int(trace.latency_s * _NS)
    root = SpanPlan("solve", start, end)
    rounds: dict[int, list[StepRecord]] = {}
    for step in trace.steps:
        if step.round > 0:
            rounds.setdefault(step.round, []).append(step)
    root.children += [_group(f"round {n}", {"agentrt.round": n}, steps, trace, capture_content)
                      for n, steps in sorted(rounds.items())]
    _fill(root, [s for s in trace.steps if s.round == 0], trace, capture_content)
    failed = trace.status in FAILED_STATUSES
    root.attributes = _clean({
        "gen_ai.operation.name": "invoke_workflow",
        "gen_ai.workflow.name": "agentrt.solve",
        "gen_ai.provider.name": trace.backend,
        "gen_ai.request.model": trace.model_id,
        "gen_ai.usage.input_tokens": trace.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": trace.usage.completion_tokens,
        "agentrt.trace_id": trace.id,
        "agentrt.mode.requested": trace.requested_mode,
        "agentrt.mode": trace.mode,
        "agentrt.status": trace.status,
        "agentrt.verdict": trace.verdict,
        "agentrt.llm_calls": trace.llm_calls,
        "agentrt.tool_runs": trace.tool_runs,
        "agentrt.latency_s": trace.latency_s,
        "agentrt.resumes": trace.meta.get("resumes"),
        "error.type": _error_type(trace.error) if failed else None,
    })
    root.error = (trace.error or trace.status) if failed else None
    return root
