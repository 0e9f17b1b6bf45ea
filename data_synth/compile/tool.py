"""Tool-use trajectories in the OpenAI tool-call message format.

One row per tool node of a slow round: the prompt the tool expert got (its system and user
messages, as sent), then for each call it made an assistant message with `tool_calls` (the
arguments the model wrote, without the run limits the runtime adds) and a `tool` message with
what the run returned (its output, or the error the model was shown), and last the assistant
message that used the result (the round's final expert reply, or "Final answer: ..." when the
tool node itself gave the answer). Replies the runtime could not read as a call are left out:
they never reached the tool. With `verified_only`, only rounds whose answer is right and nodes
whose last call ran cleanly are used. `tools` holds the tool's OpenAI function spec as a JSON
string (parse it before handing it to a chat template).
"""

from __future__ import annotations

import json
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from agentrt.data_synth.compile.anatomy import Anatomy, Call, dissect
from agentrt.data_synth.verify import TraceJudge
from agentrt.store import StepRecord
from agentrt.tools import get_tool
from agentrt.workflows.slow.toolcall import output_text, run_failure

__all__ = ["tool_rows", "tool_spec"]

_RUN_KEYS = ("timeout_s", "memory_mb")


@lru_cache(maxsize=16)
def tool_spec(name: str) -> str:
    """The OpenAI function spec of a registered tool (run limits removed), as JSON text."""
    try:
        spec = get_tool(name).openai_spec()
    except Exception:  # a tool no longer registered: name it without a schema
        spec = {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
    params = dict(spec["function"].get("parameters") or {})
    props = {k: v for k, v in (params.get("properties") or {}).items() if k not in _RUN_KEYS}
    if props:
        params["properties"] = props
        params["required"] = [k for k in params.get("required", []) if k in props]
    spec = {**spec, "function": {**spec["function"], "parameters": params}}
    return json.dumps([spec], ensure_ascii=False, sort_keys=True)


def _result_text(step: StepRecord) -> str:
    if step.status != "ok":
        return f"Error: {step.error or 'the tool failed'}"
    tool = SimpleNamespace(name=step.name)
    failure = run_failure(tool, step.outputs)
    return f"Error: {failure}" if failure else output_text(tool, step.outputs)


def _exchanges(calls: list[Call], runs: dict[int, StepRecord]) -> tuple[list[dict], bool]:
    """Assistant tool-call and tool-result messages of a node; whether its last run was clean."""
    messages: list[dict[str, Any]] = []
    clean = False
    for call in calls:
        run = runs.get(call.step.id or -1)
        if run is None:
            continue  # unreadable reply: nothing was called
        call_id = f"call_{run.id}"
        args = {k: v for k, v in run.inputs.items() if k not in _RUN_KEYS}
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function",
             "function": {"name": run.name, "arguments": json.dumps(args, ensure_ascii=False)}}]})
        messages.append({"role": "tool", "tool_call_id": call_id, "content": _result_text(run)})
        clean = bool(call.accepted)
    return messages, clean


def _runs_by_call(anatomy: Anatomy) -> dict[int, StepRecord]:
    """The tool step that each tool-input call led to, by the call's step id."""
    out: dict[int, StepRecord] = {}
    last: dict[tuple[str, int], int] = {}
    for step in sorted(anatomy.trace.steps, key=lambda s: s.id or 0):
        key = (step.node or "", step.round)
        if step.kind == "llm" and step.name in ("tool_input", "tool_repair"):
            last[key] = step.id or -1
        elif step.kind == "tool" and key in last:
            out[last.pop(key)] = step
    return out


def _node_rows(anatomy: Anatomy, verified_only: bool) -> list[dict[str, Any]]:
    judge, rows = anatomy.judge, []
    runs = _runs_by_call(anatomy)
    nodes: dict[tuple[int, str], list[Call]] = {}
    for call in anatomy.calls:
        if call.name in ("tool_input", "tool_repair"):
            nodes.setdefault((call.round, call.step.node or ""), []).append(call)
    for (rnd, node), calls in sorted(nodes.items()):
        info = anatomy.rounds.get(rnd)
        exchanges, clean = _exchanges(calls, runs)
        ok = bool(info and info.correct) and clean
        if not exchanges or (verified_only and not ok):
            continue
        finals = [c for c in anatomy.calls if c.round == rnd and c.answer is not None
                  and c.name == "expert"]
        closing = finals[-1].reply if finals else f"Final answer: {info.answer if info else ''}"
        first = calls[0]
        rows.append({
            "messages": [*first.messages, *exchanges, {"role": "assistant", "content": closing}],
            "tools": tool_spec(exchanges[0]["tool_calls"][0]["function"]["name"]),
            "trace_id": judge.trace.id, "round": rnd, "node": node,
            "attempts": sum(1 for m in exchanges if m["role"] == "tool"),
            "family": judge.trace.tags.get("family", ""),
            "problem_id": judge.trace.tags.get("problem_id", ""),
            "model_id": judge.trace.model_id, "source": judge.source, "ok": ok,
        })
    return rows


def tool_rows(judges: list[TraceJudge], *, verified_only: bool = True
              ) -> tuple[list[dict[str, Any]], list[str], dict[str, int]]:
    """Tool trajectories of the traces: (rows, ids of traces used, skipped counts by reason)."""
    rows: list[dict[str, Any]] = []
    used: list[str] = []
    skipped: dict[str, int] = {}
    for judge in judges:
        if judge.source == "rejected" or (verified_only and not judge.verified):
            reason = "rejected synthetic trace" if judge.source == "rejected" else "not verified"
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        mine = _node_rows(dissect(judge), verified_only)
        if mine:
            rows.extend(mine)
            used.append(judge.trace.id)
        else:
            skipped["no tool call"] = skipped.get("no tool call", 0) + 1
    return rows, used, skipped
