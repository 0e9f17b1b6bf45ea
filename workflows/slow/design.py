"""The first two stages of a round: problem reflection, and workflow design with a repair loop.

Reflection: the model restates the problem, its elements and sub-tasks (from round 2 on, it is
told which answers were judged wrong and why, so the new round plans afresh).

Design: the model writes a `WorkflowSpec` as JSON, constrained by `design_schema` on backends
that enforce schemas (the schema is sized to fit the call's token budget). Every design is
checked by `check_spec` before anything runs; a rejected one goes back to the model with the
list of errors, at most `max_repairs` times, and every rejection is a trace step. A model that
never produces a valid design gets a recorded fallback: a single LLM expert that solves the
problem directly, so the round still yields a candidate. This module knows prompts and the
spec, not how a design is compiled or run.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agentrt.store import StepRecord
from agentrt.workflows.answers import parse_json_object
from agentrt.workflows.context import SolveContext
from agentrt.workflows.profiles import get_profile
from agentrt.workflows.prompts import render
from agentrt.workflows.slow.state import SlowState, clip, stage_params, structured
from agentrt.workflows.spec import WorkflowSpec, caps_for_budget, check_spec, design_schema

__all__ = ["reflect", "design", "FALLBACK_SPEC", "previous_attempts", "tool_infos"]

FALLBACK_SPEC = WorkflowSpec.model_validate({
    "nodes": [{"id": "solver", "kind": "llm", "role": "expert problem solver",
               "instruction": "Solve the problem step by step and give the final answer.",
               "inputs": []}],
    "final": "solver",
})


def previous_attempts(state: SlowState) -> list[dict[str, Any]]:
    """Earlier rounds' answers and the judge's reasons, for the next reflection and design."""
    return [{"round": c.get("round"), "answer": c.get("answer", ""),
             "reason": clip(str(c.get("reason", "")), 400)}
            for c in state.get("candidates", []) if c.get("verdict") != "yes"]


def tool_infos(ctx: SolveContext) -> list[dict[str, str]]:
    """Name and one-line description of each available tool, for design prompts."""
    out = []
    for name in sorted(ctx.tools):
        description = str(getattr(ctx.tools[name], "description", "") or "").strip()
        first = description.splitlines()[0] if description else ""
        out.append({"name": name, "description": first})
    return out


def reflect(state: SlowState, runtime: Runtime[SolveContext]) -> dict[str, Any]:
    """Start a round: reflect on the problem (afresh, knowing earlier rounds' failures)."""
    ctx = runtime.context
    rnd = int(state.get("round", 0)) + 1
    prompt = render("reflect", ctx.profile, problem=state["problem"],
                    context=state.get("context", "") or "", previous=previous_attempts(state))
    resp = ctx.recorder.llm(ctx.backend, prompt, name="reflect", round=rnd,
                            params=stage_params(ctx, "reflect"))
    return {"round": rnd, "reflection": resp.text.strip(), "spec": None,
            "design_fallback": False, "outputs": {}, "answer": "", "verdict": "", "reason": ""}


def design(state: SlowState, runtime: Runtime[SolveContext]) -> dict[str, Any]:
    """Design the round's workflow, repairing rejected designs; fall back if none is valid."""
    ctx = runtime.context
    rnd = int(state.get("round", 1))
    limits, tools = ctx.limits, sorted(ctx.tools)
    params = stage_params(ctx, "design")
    is_structured = structured(ctx)
    profile = get_profile(ctx.profile)
    schema = None
    if is_structured:  # with fixed ids, every admitted design passes validation
        caps = caps_for_budget(limits, tools, params.max_tokens, sizes=profile.design_sizes)
        schema = design_schema(tools, caps, fixed_ids=profile.fixed_ids)
    infos = tool_infos(ctx)
    shared = dict(problem=state["problem"], reflection=state.get("reflection", ""), tools=infos,
                  tool_names=tools, max_nodes=limits.max_nodes, max_fan_out=limits.max_fan_out,
                  structured=is_structured)
    prompt = render("design", ctx.profile, previous=previous_attempts(state), **shared)
    for attempt in range(1 + limits.max_repairs):
        name = "design" if attempt == 0 else "design_repair"
        resp = ctx.recorder.llm(ctx.backend, prompt, name=name, round=rnd, params=params,
                                json_schema=schema)
        obj = parse_json_object(resp.text)
        spec, errors = check_spec(obj if obj is not None else resp.text, limits=limits,
                                  tools=tools, conversations=profile.design_sizes.conversations)
        if spec is not None and not errors:
            ctx.recorder.decision("design_accepted", {"attempt": attempt + 1},
                                  {"spec": spec.model_dump(), "layers": spec.layers(),
                                   "schema_enforced": is_structured}, round=rnd)
            return {"spec": spec.model_dump(), "design_fallback": False}
        ctx.recorder.record(StepRecord(
            kind="decision", name="design_rejected", round=rnd, status="failed",
            inputs={"attempt": attempt + 1, "text": clip(resp.text, 4000)},
            outputs={"errors": errors}, error="; ".join(errors)[:2000]))
        prompt = render("design_repair", ctx.profile, design=clip(resp.text, 3000),
                        errors=errors[:12], **shared)
    ctx.recorder.decision("design_fallback", {"attempts": 1 + limits.max_repairs},
                          {"spec": FALLBACK_SPEC.model_dump(), "layers": FALLBACK_SPEC.layers()},
                          round=rnd)
    return {"spec": FALLBACK_SPEC.model_dump(), "design_fallback": True}
