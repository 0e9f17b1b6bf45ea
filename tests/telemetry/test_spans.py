"""The span plan of stored traces (no SDK, no network): edge cases the end-to-end test skips."""

from __future__ import annotations

from agentrt.core.types import Usage
from agentrt.store import StepRecord
from agentrt.telemetry.spans import plan_spans


def test_a_trace_without_steps_is_one_error_span(store):
    tid = store.start_trace(problem="p", requested_mode="slow", model_id="m", backend="hf")
    store.finish_trace(tid, answer=None, status="interrupted", mode=None, usage=Usage(),
                       latency_s=0.5, error="KeyboardInterrupt")
    root = plan_spans(store.get_trace(tid))
    assert (root.name, root.children, root.error) == ("solve", [], "KeyboardInterrupt")
    assert root.attributes["error.type"] == "KeyboardInterrupt"
    assert root.attributes["gen_ai.provider.name"] == "hf"
    assert root.end_ns > root.start_ns


def test_budget_exceeded_is_not_an_error_and_failed_tools_are(store):
    tid = store.start_trace(problem="p", requested_mode="slow", model_id="m", backend="fake")
    store.add_step(tid, StepRecord(kind="tool", name="python", node="calc", round=1,
                                   status="failed", inputs={"code": "1/0"},
                                   error="tool_execution_error: ZeroDivisionError",
                                   latency_s=0.2))
    store.add_step(tid, StepRecord(kind="stage", name="node", node="calc", round=1,
                                   status="failed", outputs={"kind": "tool", "tool": "python"},
                                   latency_s=0.3))
    store.finish_trace(tid, answer="", status="budget_exceeded:tool_runs", mode="slow",
                       usage=Usage(), latency_s=1.0)
    root = plan_spans(store.get_trace(tid))
    assert root.error is None and "error.type" not in root.attributes
    (rnd,) = root.children
    (node,) = rnd.children
    (tool,) = node.children
    assert (rnd.name, node.name, tool.name) == ("round 1", "node calc", "execute_tool python")
    assert node.error == "node calc failed" and node.attributes["agentrt.node.status"] == "failed"
    assert tool.error == "tool_execution_error: ZeroDivisionError"
    assert tool.attributes["error.type"] == "tool_execution_error"
    assert "gen_ai.tool.call.arguments" not in tool.attributes
    assert node.end_ns - node.start_ns >= 0.3e9 - 1e3  # the node's own recorded time
    with_content = plan_spans(store.get_trace(tid), capture_content=True)
    tool = with_content.children[0].children[0].children[0]
    assert tool.attributes["gen_ai.tool.call.arguments"] == '{"code": "1/0"}'
