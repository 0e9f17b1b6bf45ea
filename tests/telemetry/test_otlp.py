"""OpenTelemetry export end to end: real solves (scripted backend, real SQLite store, the real
sandbox for the tool run), spans sent by the OTLP/HTTP exporter and decoded by a real receiver
on a loopback port, compared with the stored trace."""

from __future__ import annotations

import json
import socket
import time

import pytest

from agentrt.core.config import Settings, load_settings
from agentrt.core.errors import BackendError, ConfigError
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime
from agentrt.telemetry import resolve_endpoint
from agentrt.telemetry.spans import CONTENT_EVENT

PROBLEM = "Compute 123*456 - 789"
ERROR = 2  # opentelemetry.proto Status.STATUS_CODE_ERROR


def N(id, inputs=(), kind="llm", tool=None):
    d = {"id": id, "kind": kind, "role": "expert", "instruction": "do your part",
         "inputs": list(inputs)}
    return {**d, "tool": tool} if tool else d


def slow_backend() -> FakeBackend:
    design = json.dumps({"nodes": [N("calc", kind="tool", tool="python"), N("fin", ["calc"])],
                         "final": "fin"})
    return FakeBackend(rules=[
        (r"Reflect on the following problem", "Restated: a product minus a number."),
        (r"Design a workflow of experts", design),
        (r"Judge whether its final answer", '{"reason": "checked", "verdict": "yes"}'),
        (r"Expert: \w+ \([^)]*\), tool: python", '{"code": "print(123*456 - 789)"}'),
        (r"Expert: fin ", "The tool printed 55299.\nFinal answer: 55299"),
    ])


def fast_backend() -> FakeBackend:
    return FakeBackend(rules=[
        (r"Proposed (final )?answer", '{"verdict": "yes", "reason": "391 + 5 = 396"}'),
        (r"17\*23", "17*23 = 391. Adding 5 gives 396.\nFinal answer: 396"),
    ])


def runtime(store, backend, **settings) -> Runtime:
    return Runtime(load_settings(backend="fake", model="fake", **settings), backend=backend,
                   store=store)


def close(rt, *trace_ids):
    """The stored traces (read first: closing the runtime closes its store), then close, which
    sends the queued spans."""
    traces = [rt.store.get_trace(t) for t in trace_ids]
    rt.close()
    return traces


def ns(t) -> int:
    return int(t.timestamp() * 1_000_000_000)


def assert_tree_matches(spans, trace):
    """The received spans are the stored trace: one tree, its LLM calls and tool runs."""
    by_id = {s["span_id"]: s for s in spans}
    (root,) = [s for s in spans if s["parent"] is None]
    assert root["name"] == "solve" and root["trace_id"] == trace.id
    assert all(s["parent"] in by_id for s in spans if s is not root)  # one connected tree
    for s in spans:
        if s["parent"]:
            parent = by_id[s["parent"]]
            assert parent["start"] <= s["start"] <= s["end"] <= parent["end"], s["name"]
    assert root["attrs"]["agentrt.trace_id"] == trace.id
    assert root["attrs"]["agentrt.status"] == trace.status
    assert root["attrs"]["agentrt.mode"] == trace.mode
    assert root["attrs"]["gen_ai.usage.input_tokens"] == trace.usage.prompt_tokens
    assert root["attrs"]["gen_ai.usage.output_tokens"] == trace.usage.completion_tokens
    assert root["scope"] == "agentrt"

    steps = {s.id: s for s in trace.steps}
    llm = [s for s in spans if s["attrs"].get("gen_ai.operation.name") == "chat"]
    tools = [s for s in spans if s["attrs"].get("gen_ai.operation.name") == "execute_tool"]
    assert sorted(s["attrs"]["agentrt.step.id"] for s in llm) == \
        sorted(s.id for s in trace.steps if s.kind == "llm")
    assert sorted(s["attrs"]["agentrt.step.id"] for s in tools) == \
        sorted(s.id for s in trace.steps if s.kind == "tool")
    for span in llm:
        step = steps[span["attrs"]["agentrt.step.id"]]
        a = span["attrs"]
        assert span["name"] == "chat fake"
        assert (a["gen_ai.request.model"], a["gen_ai.response.model"]) == ("fake", "fake")
        assert a["gen_ai.provider.name"] == "fake"
        assert a["gen_ai.usage.input_tokens"] == step.prompt_tokens > 0
        assert a["gen_ai.usage.output_tokens"] == step.completion_tokens > 0
        assert a["gen_ai.request.max_tokens"] == step.inputs["params"]["max_tokens"]
        assert a["gen_ai.request.temperature"] == step.inputs["params"]["temperature"]
        assert a["agentrt.step.name"] == step.name
        assert abs(span["end"] - ns(step.started_at)) < 2_000
        assert abs((span["end"] - span["start"]) - step.latency_s * 1e9) < 2_000
    for span in tools:
        step = steps[span["attrs"]["agentrt.step.id"]]
        assert span["name"] == f"execute_tool {step.name}"
        assert span["attrs"]["gen_ai.tool.name"] == step.name
    return root, by_id


def test_slow_and_fast_solves_arrive_as_span_trees(store, collector):
    rt = Runtime(load_settings(backend="fake", model="fake", otel_endpoint=collector.url),
                 backend=slow_backend(), store=store)  # the registry's tools: the real sandbox
    slow = rt.solve(PROBLEM, mode="slow")
    rt._backend = fast_backend()
    fast = rt.solve("What is 17*23+5?", mode="fast")
    trace, ftrace = close(rt, slow.trace_id, fast.trace_id)
    assert (slow.answer, fast.answer) == ("55299", "396")
    assert set(collector.paths) == {"/v1/traces"}
    assert collector.resources[0]["service.name"] == "agentrt"

    spans = collector.of(slow.trace_id)
    root, by_id = assert_tree_matches(spans, trace)
    assert root["attrs"]["agentrt.mode.requested"] == "slow"
    assert root["attrs"]["agentrt.tool_runs"] == 1
    (tool,) = [s for s in spans if s["name"] == "execute_tool python"]
    node = by_id[tool["parent"]]
    assert node["name"] == "node calc" and node["attrs"]["agentrt.node.kind"] == "tool"
    assert by_id[node["parent"]]["name"] == "round 1"
    assert by_id[by_id[node["parent"]]["parent"]] is root
    assert tool["attrs"]["agentrt.tool.exit_code"] == 0
    assert tool["end"] - tool["start"] > 1_000_000  # a real sandboxed run takes time
    names = {s["name"] for s in spans}
    assert {"solve", "round 1", "node calc", "node fin", "chat fake"} <= names
    judge = [s for s in spans if s["attrs"].get("agentrt.step.name") == "judge"]
    assert by_id[judge[0]["parent"]]["name"] == "round 1"
    events = {name for s in spans for name, _ in s["events"]}
    assert "agentrt.decision" in events and CONTENT_EVENT not in events

    fspans = collector.of(fast.trace_id)
    froot, _ = assert_tree_matches(fspans, ftrace)
    assert all(s["parent"] == froot["span_id"] for s in fspans if s is not froot)
    assert len(fspans) == 3  # solve, the answer call, the check call

    # privacy: no prompt, completion or tool text leaves by default
    text = json.dumps([s["attrs"] for s in collector.spans] + [s["events"] for s in collector.spans])
    assert "123*456" not in text and "17*23" not in text and "55299" not in text


def test_content_is_exported_only_when_asked(store, collector):
    rt = runtime(store, fast_backend(), otel_endpoint=collector.url + "/v1/traces",
                 otel_capture_content=True, otel_service_name="solver-a")
    sol = rt.solve("What is 17*23+5?", mode="fast")
    rt.close()
    spans = collector.of(sol.trace_id)
    assert collector.resources[0]["service.name"] == "solver-a"
    (first, *_) = sorted((s for s in spans if s["name"] == "chat fake"), key=lambda s: s["start"])
    (event,) = [a for name, a in first["events"] if name == CONTENT_EVENT]
    messages = json.loads(event["gen_ai.input.messages"])
    assert messages[-1]["role"] == "user" and "17*23+5" in messages[-1]["parts"][0]["content"]
    out = json.loads(event["gen_ai.output.messages"])
    assert out[0]["parts"][0]["content"].endswith("Final answer: 396")


def test_a_failed_solve_is_exported_with_error_status(store, collector):
    rt = runtime(store, FakeBackend(default=None), otel_endpoint=collector.url)
    with pytest.raises(BackendError):
        rt.solve("What is 2+2?", mode="fast")
    (trace,) = store.list_traces()
    trace = store.get_trace(trace.id)
    rt.close()
    (root,) = [s for s in collector.spans if s["name"] == "solve"]
    assert root["trace_id"] == trace.id
    assert trace.status == "error"
    assert root["status"] == ERROR and root["message"] == trace.error
    (call,) = [s for s in collector.spans if s["name"] == "chat fake"]
    assert call["status"] == ERROR and call["attrs"]["error.type"] == "backend_error"
    assert call["message"] == trace.steps[0].error


def test_standard_endpoint_variable_is_honoured_once_export_is_on(store, collector, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    off = runtime(store, fast_backend())
    off.solve("What is 17*23+5?", mode="fast")
    assert off._telemetry is None  # off by default, endpoint variable or not

    on = runtime(store, fast_backend(), otel_export=True)
    sol = on.solve("What is 17*23+5?", mode="fast")
    on.close()
    assert {s["trace_id"] for s in collector.spans} == {sol.trace_id}  # nothing from `off`


def test_a_dead_endpoint_does_not_fail_the_solve(store):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rt = runtime(store, fast_backend(), otel_endpoint=f"http://127.0.0.1:{port}",
                 otel_timeout_s=0.5)
    sol = rt.solve("What is 17*23+5?", mode="fast")
    assert (sol.answer, sol.status) == ("396", "ok")
    started = time.monotonic()
    rt.close()
    assert time.monotonic() - started < 10


def test_export_is_off_by_default():
    settings = Settings(backend="fake", model="fake")
    assert not settings.otel_enabled and settings.otel_endpoint is None
    assert not settings.otel_capture_content


def test_bad_endpoint_configuration_is_a_clear_error(store, monkeypatch):
    with pytest.raises(ConfigError, match="otel_endpoint .* is not an http"):
        load_settings(backend="fake", model="fake", otel_endpoint="localhost:4318")
    with pytest.raises(ConfigError, match="otel_timeout_s"):
        load_settings(backend="fake", model="fake", otel_timeout_s=0)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318")
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        runtime(store, fast_backend(), otel_export=True)


def test_endpoint_resolution_order():
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318/",
           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:9999/custom"}
    assert resolve_endpoint("http://mine:6006", env) == "http://mine:6006/v1/traces"
    assert resolve_endpoint("http://mine:6006/v1/traces", env) == "http://mine:6006/v1/traces"
    assert resolve_endpoint(None, env) == "http://traces:9999/custom"
    assert resolve_endpoint(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318/"}) == \
        "http://base:4318/v1/traces"
    assert resolve_endpoint(None, {}) == "http://localhost:4318/v1/traces"
