"""The experts of a designed workflow: LLM experts and tool experts, as LangGraph node functions.

An LLM expert sees the problem, the reflection and only the outputs of the nodes it declared as
inputs, and writes text (the final node ends with "Final answer: ..."). A tool expert asks the
model for the tool's input, runs it in the sandbox through the recorder, and on failure shows
the model the error and asks for a corrected call, at most `max_repairs` times; with
`tool_votes` above one, several calls are written and run, and their most frequent answer wins
(self-consistency over programs). A tool that still fails is recorded as failed and its readers
are told so: a tool result is never simulated by a model. Budget errors (`LimitExceededError`)
and cancellation pass straight through; they end the solve, not the node.

This module knows the spec, the prompts and the tool protocol; the graph wiring is in
`agentrt.workflows.slow.compile`.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from langgraph.runtime import Runtime

from agentrt.core.errors import SandboxUnavailableError, ToolError
from agentrt.core.types import SamplingParams
from agentrt.store import StepRecord
from agentrt.workflows.answers import extract_final_answer
from agentrt.workflows.context import SolveContext
from agentrt.workflows.profiles import get_profile
from agentrt.workflows.prompts import render
from agentrt.workflows.slow.numbers import listed_numbers
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
from agentrt.workflows.slow.verifier import pick_verified, verifier_scores, vote_features
from agentrt.workflows.spec import NodeSpec

__all__ = ["make_expert", "answer_of", "vote_key"]

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
    """Write, run and repair the tool call; the node's output fields.

    With `limits.tool_votes` above one, the first attempt also samples further calls and runs
    them all; the most frequent printed answer wins (`_vote`). Repairs are single calls.
    """
    params = stage_params(ctx, "tool_input")
    max_chars = max(64, int(params.max_tokens * 2.0))
    is_structured, profile = structured(ctx), get_profile(ctx.profile)
    one_line = profile.one_line_python
    schema = call_schema(tool, max_chars, one_line=one_line) if is_structured else None
    numbers = ", ".join(listed_numbers(state["problem"])) if profile.list_numbers else ""
    shared = dict(node_id=node.id, role=node.role, tool=tool.name, problem=state["problem"],
                  instruction=node.instruction, structured=is_structured, numbers=numbers,
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
        texts = [resp.text]
        if attempt == 0 and ctx.limits.tool_votes > 1:
            texts += _sampled_calls(ctx, prompt, node, rnd, params, schema, state["problem"])
        runs = [_run_call(ctx, tool, node, rnd, text, used, first=i == 0)
                for i, text in enumerate(texts)]
        done = [r for r in runs if r.result is not None]
        if done:
            best = _vote(ctx, runs, node, rnd, state["problem"]) if len(runs) > 1 else done[0]
            out = {"status": "ok", "text": output_text(tool, best.result), "attempts": used}
            if final:
                out["answer"] = tool_answer(best.result)
            return out
        shown, error = runs[0].shown, runs[0].error
        if any(r.fatal for r in runs):  # the sandbox is gone: no repair can help
            break
        if attempt + 1 < attempts:
            prompt = render("tool_repair", ctx.profile, previous=clip(shown, 2000),
                            error=clip(error, 1500), **shared)
    ctx.recorder.record(StepRecord(kind="decision", name="tool_failed", node=node.id, round=rnd,
                                   status="failed", error=clip(error, 2000),
                                   outputs={"tool": tool.name, "attempts": used}))
    return {"status": "failed", "attempts": used, "error": clip(error, 2000),
            "text": f"FAILED: the {tool.name} tool failed after {used} attempt(s); "
                    f"last error: {clip(error, 600)}"}


@dataclass
class _Run:
    """One written call and what running it gave."""

    shown: str  # the call as the model's repair prompt shows it
    result: dict[str, Any] | None = None  # the tool's output when the run succeeded
    error: str = ""
    fatal: bool = False  # the sandbox is unavailable


def _run_call(ctx: SolveContext, tool: Any, node: NodeSpec, rnd: int, text: str, attempt: int,
              *, first: bool) -> _Run:
    """Read one reply as a call and run it. Extra (sampled) calls never spend the last tool run
    of the budget: they are skipped instead, so voting cannot end a solve."""
    args, error = read_call(tool, text)
    if args is None:
        ctx.recorder.decision("tool_call_unreadable", {"text": clip(text, 2000)},
                              {"error": error, "attempt": attempt}, node=node.id, round=rnd)
        return _Run(shown=text.strip(), error=error)
    run = _Run(shown=json.dumps(args, ensure_ascii=False))
    if not first and ctx.recorder.tool_runs >= ctx.limits.max_tool_runs - 1:
        run.error = "skipped: the tool-run budget is kept for the rest of the solve"
        return run
    try:
        result = ctx.recorder.tool(tool.name, with_limits(tool, args, ctx.limits), tool.run,
                                   node=node.id, round=rnd)
        run.error = run_failure(tool, result) or ""
        run.result = None if run.error else result
    except SandboxUnavailableError as e:
        run.error, run.fatal = f"{e.code}: {e}", True
    except ToolError as e:
        run.error = f"{e.code}: {e}"
    return run


def _sampled_calls(ctx: SolveContext, prompt: Any, node: NodeSpec, rnd: int,
                   params: SamplingParams, schema: dict[str, Any] | None,
                   problem: str) -> list[str]:
    """`tool_votes - 1` more calls, sampled in one request (one prefill, one batch). Unseeded,
    so the hf backend batches them with other solves' samples; a solve given a `seed` option
    seeds them from it, the problem and the node, so a rerun votes the same way. None when
    fewer than two LLM calls of the budget would be left."""
    if ctx.recorder.llm_calls + 2 > ctx.limits.max_llm_calls:
        return []
    seed = ctx.extra.get("seed")
    if seed is not None:
        seed = zlib.crc32(f"{seed}\n{node.id}\n{rnd}\n{problem}".encode())
    sampled = params.model_copy(update={"temperature": ctx.limits.vote_temperature,
                                        "n": ctx.limits.tool_votes - 1, "seed": seed})
    resp = ctx.recorder.llm(ctx.backend, prompt, name="tool_sample", node=node.id, round=rnd,
                            params=sampled, json_schema=schema)
    return [c.text for c in resp.choices]


def vote_key(answer: str) -> str:
    """What votes are counted by: numbers by value ("1,200.0" and "$1200" agree), other
    answers by their lower-cased text."""
    text = answer.strip().rstrip(".").replace(",", "").lstrip("$").strip().lower()
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return text
    return str(value)


_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")


def numbers_in(text: str) -> set[str]:
    """The numbers written in `text` with digits, by value ("1,200" and "1200.0" are one)."""
    found = set()
    for m in _NUMBER.finditer(text):
        try:
            found.add(str(Fraction(m.group().replace(",", "").rstrip("."))))
        except (ValueError, ZeroDivisionError):
            continue
    return found


def coverage(problem: str, call: str) -> int:
    """How many of the problem's own numbers the written call uses (`call`: the call as JSON,
    or any text): a program that leaves a given quantity out has usually misread the problem."""
    try:
        args = json.loads(call)
    except ValueError:
        args = call
    text = " ".join(map(str, args.values())) if isinstance(args, dict) else str(args)
    return len(numbers_in(problem) & numbers_in(text))


def pick_vote(answers: list[str | None], covered: list[int], rule: str,
              features: list[dict[str, float] | None] | None = None,
              weights: dict[str, float] | None = None) -> int:
    """Index of the run a vote picks, from each run's answer key (None: it failed) and coverage:
    the most frequent answer (among the best-covering runs for `coverage`), ties to the
    earliest run; for `verifier`, the run the verifier scores highest given each run's
    `features` and the `weights`."""
    if rule == "verifier":
        return pick_verified(answers, features or [], weights or {})
    counts = Counter(a for a in answers if a is not None)
    ok = [i for i, a in enumerate(answers) if a is not None]
    if rule == "coverage":
        most = max(covered[i] for i in ok)
        ok = [i for i in ok if covered[i] == most]
    top = max(counts[answers[i]] for i in ok)
    return next(i for i in ok if counts[answers[i]] == top)


def _vote(ctx: SolveContext, runs: list[_Run], node: NodeSpec, rnd: int, problem: str) -> _Run:
    """The successful run whose answer most runs printed; ties go to the earliest (the greedy
    call comes first). With `vote_rule = "coverage"` the answers of the runs that use the most
    of the problem's numbers are counted first (then votes, then order); with `"verifier"` the
    run the learned verifier scores highest wins (its scores are recorded too). Recorded as a
    `tool_vote` decision with each call's answer in order (None where it did not run cleanly),
    which is how a trace's sampled calls are graded."""
    answers = [vote_key(tool_answer(r.result)) if r.result is not None else None for r in runs]
    counts = Counter(a for a in answers if a is not None)
    covered = [coverage(problem, r.shown) if a is not None else -1
               for r, a in zip(runs, answers)]
    rule, weights = ctx.limits.vote_rule, ctx.limits.vote_weights
    features = vote_features(numbers_in(problem), answers, covered)
    pick = pick_vote(answers, covered, rule, features, weights)
    chosen = answers[pick]
    outputs = {"counts": dict(counts.most_common()), "chosen": chosen, "votes": counts[chosen],
               "answers": answers, "coverage": covered}
    if rule == "verifier":
        outputs["scores"] = [None if p is None else round(p, 4)
                             for p in verifier_scores(features, weights or {})]
    ctx.recorder.decision("tool_vote", {"calls": len(runs), "runs_ok": sum(counts.values()),
                                        "rule": rule}, outputs, node=node.id, round=rnd)
    return runs[pick]
