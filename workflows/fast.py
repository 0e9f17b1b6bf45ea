"""Fast thinking as a LangGraph graph: one chain-of-thought answer, extraction, a self-check.

    answer -> extract -> check -> END

After HDFlow's fast mode: the model answers directly, then judges its own answer (yes, no or
unknown). The verdict is what the router's `escalate` policy reads to decide whether to think
slowly. The check uses the backend's JSON-schema constraint when it has one, so even a small
model yields a parseable verdict. `run_fast` runs the graph and returns an `Outcome`. This
module knows nothing about routing or storage.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agentrt.core.errors import LimitExceededError
from agentrt.core.types import Outcome, SamplingParams
from agentrt.workflows.answers import extract_final_answer, parse_json_object, parse_verdict
from agentrt.workflows.context import SolveContext
from agentrt.workflows.prompts import render

__all__ = ["FastState", "build_fast_graph", "run_fast", "VERDICT_SCHEMA"]

_RECURSION_LIMIT = 25

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["yes", "no", "unknown"]},
        "reason": {"type": "string", "maxLength": 400},
    },
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}


class FastState(TypedDict, total=False):
    problem: str
    context: str
    solution: str
    answer: str
    verdict: str
    check_reason: str
    finish_reason: str


def _answer(state: FastState, runtime: Runtime[SolveContext]) -> FastState:
    ctx = runtime.context
    problem = state["problem"]
    if state.get("context"):
        problem = f"{state['context']}\n\n{problem}"
    prompt = render("fast_answer", ctx.profile, problem=problem)
    params = SamplingParams(max_tokens=ctx.limits.max_tokens_per_call,
                            temperature=float(ctx.extra.get("temperature", 0.0)))
    resp = ctx.recorder.llm(ctx.backend, prompt, name="fast_answer", params=params)
    return {"solution": resp.text, "finish_reason": resp.choices[0].finish_reason}


def _extract(state: FastState, runtime: Runtime[SolveContext]) -> FastState:
    answer = extract_final_answer(state.get("solution", ""))
    runtime.context.recorder.decision(
        "extract_answer", {"solution_chars": len(state.get("solution", ""))}, {"answer": answer}
    )
    return {"answer": answer}


def _check(state: FastState, runtime: Runtime[SolveContext]) -> FastState:
    ctx = runtime.context
    structured = bool(getattr(ctx.backend, "supports_json_schema", False))
    prompt = render("fast_check", ctx.profile, problem=state["problem"],
                    solution=state.get("solution", ""), answer=state.get("answer", ""),
                    structured=structured)
    params = SamplingParams(max_tokens=min(ctx.limits.max_tokens_per_call, 192))
    resp = ctx.recorder.llm(ctx.backend, prompt, name="fast_check", params=params,
                            json_schema=VERDICT_SCHEMA if structured else None)
    verdict = parse_verdict(resp.text)
    obj = parse_json_object(resp.text) or {}
    reason = str(obj.get("reason", resp.text))[:500]
    ctx.recorder.decision("verdict", {"answer": state.get("answer", "")},
                          {"verdict": verdict, "reason": reason})
    return {"verdict": verdict, "check_reason": reason}


def build_fast_graph(check: bool = True):
    """Compile the fast-thinking graph.

    Args:
        check: include the self-check node (the `fast` mode without a router may skip it).

    Returns:
        A compiled LangGraph runnable; invoke with `{"problem": ...}` and `context=SolveContext`.
    """
    g = StateGraph(FastState, context_schema=SolveContext)
    g.add_node("answer", _answer)
    g.add_node("extract", _extract)
    g.add_edge(START, "answer")
    g.add_edge("answer", "extract")
    if check:
        g.add_node("check", _check)
        g.add_edge("extract", "check")
        g.add_edge("check", END)
    else:
        g.add_edge("extract", END)
    return g.compile()


def run_fast(problem: str, context: str | None, ctx: SolveContext) -> Outcome:
    """Solve with fast thinking: one answer and its self-check.

    Args:
        problem: the problem text.
        context: earlier conversation shown before the problem, or None.
        ctx: backend, recorder, limits and prompt profile.

    Returns:
        The answer, the self-check's verdict and reason, and how the answer's generation ended.

    Raises:
        LimitExceededError: a budget ran out; `partial` holds the answer found so far.
    """
    state: dict[str, Any] = {}
    try:
        for state in build_fast_graph().stream(
            {"problem": problem, "context": context or ""}, context=ctx,
            config={"recursion_limit": _RECURSION_LIMIT}, stream_mode="values",
        ):
            pass
    except LimitExceededError as e:
        e.partial = Outcome(mode="fast", answer=state.get("answer", ""),
                            verdict=state.get("verdict"))
        raise
    return Outcome(mode="fast", answer=state.get("answer", ""), verdict=state.get("verdict"),
                   route_reason="fast mode requested",
                   check_reason=state.get("check_reason", ""),
                   finish_reason=state.get("finish_reason"))
