"""The end of a round and of the solve: final judgement, the next-round decision, selection.

The judge sees the problem, the workflow's outputs and the proposed answer and says yes or no
with reasons (JSON-constrained where the backend can). A round without an answer (its final
node failed) is judged "no" without a call. On "no" the solve starts another round, up to
`max_rounds`; then the best candidate is selected: the latest one judged correct; otherwise
the only distinct answer; otherwise the model picks among the distinct answers (falling back to
the most frequent, then the latest). This module knows prompts and answers, not graphs.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from langgraph.runtime import Runtime

from agentrt.workflows.answers import parse_json_object, parse_verdict
from agentrt.workflows.context import SolveContext
from agentrt.workflows.profiles import get_profile
from agentrt.workflows.prompts import render
from agentrt.workflows.slow.state import SlowState, clip, input_views, stage_params, structured

__all__ = ["JUDGE_SCHEMA", "COMPACT_JUDGE_SCHEMA", "judge", "route", "select", "best_so_far"]

JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "maxLength": 300},
        "verdict": {"type": "string", "enum": ["yes", "no"]},
    },
    "required": ["reason", "verdict"],
    "additionalProperties": False,
}
# Small models get the verdict first and a short reason, so a reply cut off by the token limit
# still carries its verdict (capable models reason first, then decide).
COMPACT_JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["yes", "no"]},
        "reason": {"type": "string", "maxLength": 120},
    },
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}
_CHOICE = re.compile(r"choice\"?\s*[:：]?\s*\(?(\d+)", re.I)
_JSON_VERDICT = re.compile(r'"verdict"\s*:\s*"(yes|no)"', re.I)


def _verdict(text: str) -> str:
    """The verdict of a judge reply, also from a JSON object cut off after its verdict."""
    verdict = parse_verdict(text)
    if verdict == "unknown" and (found := _JSON_VERDICT.search(text)):
        verdict = found.group(1).lower()
    return verdict


def judge(state: SlowState, runtime: Runtime[SolveContext]) -> dict[str, Any]:
    """Judge the round's answer and decide whether another round follows."""
    ctx = runtime.context
    rnd = int(state.get("round", 1))
    answer = state.get("answer", "") or ""
    if not answer:
        verdict, reason = "no", "the workflow produced no answer"
    else:
        outputs = state.get("outputs", {}) or {}
        views = input_views(ctx, outputs, list(outputs))
        is_structured = structured(ctx)
        prompt = render("judge", ctx.profile, problem=state["problem"], answer=answer,
                        outputs=views, structured=is_structured)
        first = get_profile(ctx.profile).judge_verdict_first
        schema = COMPACT_JUDGE_SCHEMA if first else JUDGE_SCHEMA
        resp = ctx.recorder.llm(ctx.backend, prompt, name="judge", round=rnd,
                                params=stage_params(ctx, "judge"),
                                json_schema=schema if is_structured else None)
        verdict = _verdict(resp.text)
        obj = parse_json_object(resp.text) or {}
        reason = clip(str(obj.get("reason", resp.text)), 500)
    more = verdict != "yes" and rnd < ctx.limits.max_rounds
    ctx.recorder.decision("verdict", {"answer": answer},
                          {"verdict": verdict, "reason": reason,
                           "next": "reflect" if more else "select"}, round=rnd)
    candidate = {"round": rnd, "answer": answer, "verdict": verdict, "reason": reason,
                 "fallback_design": bool(state.get("design_fallback"))}
    return {"verdict": verdict, "reason": reason, "candidates": [candidate],
            "next": "reflect" if more else "select"}


def route(state: SlowState) -> str:
    """Conditional edge after the judge: "reflect" (new round) or "select"."""
    return state.get("next") or "select"


def best_so_far(state: SlowState) -> dict[str, Any]:
    """The best answer available without another model call (used when a budget runs out)."""
    candidates = [c for c in state.get("candidates", []) or [] if c.get("answer")]
    for c in reversed(candidates):
        if c.get("verdict") == "yes":
            return {"answer": c["answer"], "verdict": "yes", "round": c["round"]}
    if candidates:
        counts = Counter(c["answer"] for c in candidates)
        top = max(reversed(candidates), key=lambda c: counts[c["answer"]])
        return {"answer": top["answer"], "verdict": top.get("verdict") or "unknown",
                "round": top["round"]}
    answer = state.get("answer", "") or ""
    return {"answer": answer, "verdict": "unknown", "round": state.get("round", 0)}


def select(state: SlowState, runtime: Runtime[SolveContext]) -> dict[str, Any]:
    """Pick the final answer among the rounds' candidates."""
    ctx = runtime.context
    candidates = state.get("candidates", []) or []
    answered = [c for c in candidates if c.get("answer")]
    distinct = list(dict.fromkeys(c["answer"] for c in answered))
    yes = [c for c in answered if c.get("verdict") == "yes"]
    if yes or len(distinct) <= 1:
        best = best_so_far(state)
        how = "judged correct" if yes else ("only answer" if distinct else "no answer")
    else:
        best, how = _choose(ctx, state, answered, distinct), "model choice"
    ctx.recorder.decision("selection", {"candidates": candidates},
                          {"answer": best["answer"], "round": best["round"], "how": how},
                          round=int(state.get("round", 1)))
    return {"answer": best["answer"], "verdict": best["verdict"],
            "selected_round": int(best["round"] or 0)}


def _choose(ctx: SolveContext, state: SlowState, answered: list[dict[str, Any]],
            distinct: list[str]) -> dict[str, Any]:
    latest = {c["answer"]: c for c in answered}  # the latest candidate for each answer
    shown = [{"n": i + 1, "answer": a, "reason": latest[a].get("reason", "")}
             for i, a in enumerate(distinct)]
    is_structured = structured(ctx)
    # the choice first: a reply cut off in its reason still says which candidate it picked
    schema = {"type": "object",
              "properties": {"choice": {"type": "integer", "minimum": 1,
                                        "maximum": len(distinct)},
                             "reason": {"type": "string", "maxLength": 200}},
              "required": ["choice", "reason"], "additionalProperties": False}
    prompt = render("select", ctx.profile, problem=state["problem"], candidates=shown,
                    structured=is_structured)
    resp = ctx.recorder.llm(ctx.backend, prompt, name="select", round=int(state.get("round", 1)),
                            params=stage_params(ctx, "select"),
                            json_schema=schema if is_structured else None)
    obj = parse_json_object(resp.text) or {}
    choice = obj.get("choice")
    if not isinstance(choice, int):
        found = _CHOICE.findall(resp.text)
        choice = int(found[-1]) if found else None
    if isinstance(choice, int) and 1 <= choice <= len(distinct):
        c = latest[distinct[choice - 1]]
        return {"answer": c["answer"], "verdict": c.get("verdict") or "unknown",
                "round": c["round"]}
    return best_so_far(state)
