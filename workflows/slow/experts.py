"""The experts of a designed workflow: LLM experts and tool experts, as LangGraph node functions.

An LLM expert sees the problem, the reflection and only the outputs of the nodes it declared as
inputs, and writes text (the final node ends with "Final answer: ..."). A tool expert asks the
model for the tool's input, runs it in the sandbox through the recorder, and on failure shows
the model the error and asks for a corrected call, at most `max_repairs` times. A tool that
still fails is recorded as failed and its readers are told so: a tool result is never
simulated by a model. Budget errors (`LimitExceededError`) and cancellation pass straight
through; they end the solve, not the node.

This module knows the spec, the prompts and the tool protocol; the graph wiring is in
`agentrt.workflows.slow.compile`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from langgraph.runtime import Runtime

from agentrt.core.errors import SandboxUnavailableError, ToolError
from agentrt.store import StepRecord
from agentrt.workflows.answers import extract_final_answer
from agentrt.workflows.context import SolveContext
from agentrt.workflows.profiles import get_profile
from agentrt.workflows.prompts import render
from agentrt.workflows.slow.state import (
    WorkflowState,
    clip,
    input_views,
    record_node,
    stage_params,
    structured,
)
from agentrt.workflows.slow.toolcall import (
    call_format,
    call_schema,
    output_text,
    read_call,
    run_failure,
    tool_answer,
    with_limits,
)
from agentrt.workflows.spec import NodeSpec

__all__ = ["make_expert", "answer_of"]

NodeFn = Callable[[WorkflowState, Runtime[SolveContext]], dict[str, Any]]
_FINAL_LINE = re.compile(r"final\s+answer\s*(?:is)?\s*[:：][^\n]*", re.I)


def answer_of(text: str) -> str:
    """The final answer in a final expert's reply.

    The first "Final answer: ..." line wins: the prompt asks for it last, and whatever a model
    writes after it (small models go on to invent further problems and answers) is not part of
    its answer. Without such a line, the last line; if that is an equation ("123*456 - 789 =
    55299"), its right-hand side.
    """
    found = _FINAL_LINE.search(text)
    if found:
        return extract_final_answer(text[: found.end()])
    answer = extract_final_answer(text)
    if "=" in answer and answer.rsplit("=", 1)[1].strip():
        answer = answer.rsplit("=", 1)[1].strip()
    return answer


def make_expert(node: NodeSpec, *, final: bool) -> NodeFn:
    """The LangGraph node function for one spec node."""
    return _tool_expert(node, final) if node.kind == "tool" else _llm_expert(node, final)


def _llm_expert(node: NodeSpec, final: bool) -> NodeFn:
    def run(state: WorkflowState, runtime: Runtime[SolveContext]) -> dict[str, Any]:
        ctx, rnd, started = runtime.context, state.get("round", 1), time.perf_counter()
        prompt = render("expert", ctx.profile, node_id=node.id, role=node.role,
                        instruction=node.instruction, problem=state["problem"],
                        reflection=state.get("reflection", ""), is_final=final,
                        inputs=input_views(ctx, state.get("outputs", {}), node.inputs))
        resp = ctx.recorder.llm(ctx.backend, prompt, name="expert", node=node.id, round=rnd,
                                params=stage_params(ctx, "expert"))
        out: dict[str, Any] = {"kind": "llm", "role": node.role, "status": "ok",
                               "text": resp.text.strip()}
        if final:
            out["answer"] = answer_of(resp.text)
            ctx.recorder.decision("final_answer", {"text_chars": len(resp.text)},
                                  {"answer": out["answer"]}, node=node.id, round=rnd)
        out["latency_s"] = time.perf_counter() - started
        record_node(ctx, node.id, rnd, out)
        return {"outputs": {node.id: out}}

    return run


def _tool_expert(node: NodeSpec, final: bool) -> NodeFn:
    def run(state: WorkflowState, runtime: Runtime[SolveContext]) -> dict[str, Any]:
        ctx, rnd, started = runtime.context, state.get("round", 1), time.perf_counter()
        base = {"kind": "tool", "tool": node.tool, "role": node.role}
        tool = ctx.tools.get(node.tool) if node.tool else None
        if tool is None:  # validated designs name known tools; the toolbox may still lack one
            out = {**base, "status": "failed", "attempts": 0,
                   "text": f"FAILED: the {node.tool} tool is not available"}
        else:
            out = {**base, **_call_until_ok(ctx, tool, node, state, rnd, final)}
        out["latency_s"] = time.perf_counter() - started
        record_node(ctx, node.id, rnd, out, error=out.get("error"))
        return {"outputs": {node.id: out}}

    return run


def _call_until_ok(ctx: SolveContext, tool: Any, node: NodeSpec, state: WorkflowState, rnd: int,
                   final: bool) -> dict[str, Any]:
    """Write, run and repair the tool call; the node's output fields."""
    params = stage_params(ctx, "tool_input")
    max_chars = max(64, int(params.max_tokens * 2.0))
    is_structured, one_line = structured(ctx), get_profile(ctx.profile).one_line_python
    schema = call_schema(tool, max_chars, one_line=one_line) if is_structured else None
    shared = dict(node_id=node.id, role=node.role, tool=tool.name, problem=state["problem"],
                  instruction=node.instruction, structured=is_structured,
                  call_format=call_format(tool, max_chars, one_line=one_line))
    prompt = render("tool_input", ctx.profile, reflection=state.get("reflection", ""),
                    tool_description=str(getattr(tool, "description", "")),
                    inputs=input_views(ctx, state.get("outputs", {}), node.inputs), **shared)
    attempts = 1 + ctx.limits.max_repairs
    error, used = "", 0
    for attempt in range(attempts):
        used = attempt + 1
        name = "tool_input" if attempt == 0 else "tool_repair"
        resp = ctx.recorder.llm(ctx.backend, prompt, name=name, node=node.id, round=rnd,
                                params=params, json_schema=schema)
        args, error = read_call(tool, resp.text)
        shown = resp.text.strip()
        if args is None:
            ctx.recorder.decision("tool_call_unreadable", {"text": clip(resp.text, 2000)},
                                  {"error": error, "attempt": used}, node=node.id,
                                  round=rnd)
        else:
            shown = json.dumps(args, ensure_ascii=False)
            try:
                result = ctx.recorder.tool(tool.name, with_limits(tool, args, ctx.limits),
                                           tool.run, node=node.id, round=rnd)
                error = run_failure(tool, result) or ""
            except SandboxUnavailableError as e:  # no repair can help: stop trying
                error = f"{e.code}: {e}"
                break
            except ToolError as e:
                error = f"{e.code}: {e}"
            if not error:
                out = {"status": "ok", "text": output_text(tool, result), "attempts": used}
                if final:
                    out["answer"] = tool_answer(result)
                return out
        if attempt + 1 < attempts:
            prompt = render("tool_repair", ctx.profile, previous=clip(shown, 2000),
                            error=clip(error, 1500), **shared)
    ctx.recorder.record(StepRecord(kind="decision", name="tool_failed", node=node.id, round=rnd,
                                   status="failed", error=clip(error, 2000),
                                   outputs={"tool": tool.name, "attempts": used}))
    return {"status": "failed", "attempts": used, "error": clip(error, 2000),
            "text": f"FAILED: the {tool.name} tool failed after {used} attempt(s); "
                    f"last error: {clip(error, 600)}"}
