"""SFT rows for hybrid thinking: each good LLM call of a trace as a chat example.

A row is the exact messages the runtime sent for one call followed by the assistant's reply,
so applying the trained model's chat template to a row without its last message gives, token
for token, the prompt the runtime fed the model. Rows cover every kind of call the runtime
makes (fast answers and checks, reflections, designs and their repairs, expert outputs, tool
inputs and repairs, judgements, selections, router samples). With `verified_only`, a trace is
used only when its final answer is verified, and a call only when its reply is a good target
(`agentrt.data_synth.compile.anatomy`); otherwise every answered call is a row and `ok` says how it
was judged. Only calls the runtime makes become rows: the fast/slow decision is the router's
(`agentrt.router`, trained from the `router` dataset), not a model call, so it has no rows here.
"""

from __future__ import annotations

from typing import Any

from agentrt.data_synth.compile.anatomy import Call, dissect
from agentrt.data_synth.verify import TraceJudge

__all__ = ["sft_rows", "sft_row"]


def sft_row(judge: TraceJudge, messages: list[dict[str, str]], reply: str, *, step: str,
            step_id: int | None = None, node: str | None = None, round: int = 0,
            template: str | None = None, template_hash: str | None = None,
            ok: bool | None = None, prompt_tokens: int = 0,
            completion_tokens: int = 0) -> dict[str, Any]:
    """One SFT row: the sent messages plus the reply, and where it came from."""
    trace = judge.trace
    return {
        "messages": [*messages, {"role": "assistant", "content": reply}],
        "trace_id": trace.id, "step_id": step_id, "step": step, "node": node or "",
        "round": round, "template": template or "", "template_hash": template_hash or "",
        "family": trace.tags.get("family", ""), "problem_id": trace.tags.get("problem_id", ""),
        "model_id": trace.model_id, "source": judge.source, "trace_mode": trace.mode or "",
        "ok": ok, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
    }


def _call_rows(judge: TraceJudge, call: Call, verified_only: bool) -> list[dict[str, Any]]:
    s = call.step
    common = dict(step=s.name, step_id=s.id, node=s.node, round=s.round, template=s.template,
                  template_hash=s.template_hash, prompt_tokens=s.prompt_tokens)
    if call.choices:  # several samples of one prompt: one row per good sample
        return [sft_row(judge, call.messages, text, ok=ok, **common)
                for text, _answer, ok in call.choices if ok is True or not verified_only]
    if verified_only and call.ok is not True:
        return []
    return [sft_row(judge, call.messages, call.reply, ok=call.ok,
                    completion_tokens=s.completion_tokens, **common)]


def sft_rows(judges: list[TraceJudge], *, verified_only: bool = True,
             ) -> tuple[list[dict[str, Any]], list[str], dict[str, int]]:
    """Rows of every usable call of the traces.

    Returns:
        (rows, ids of the traces that gave rows, counts of traces skipped by reason).
    """
    rows: list[dict[str, Any]] = []
    used: list[str] = []
    skipped: dict[str, int] = {}
    for judge in judges:
        why = _skip(judge, verified_only)
        if why:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        anatomy = dissect(judge)
        mine = [r for call in anatomy.calls for r in _call_rows(judge, call, verified_only)]
        if mine:
            rows.extend(mine)
            used.append(judge.trace.id)
    return rows, used, skipped


def _skip(judge: TraceJudge, verified_only: bool) -> str | None:
    if judge.source == "rejected":
        return "rejected synthetic trace"
    if verified_only and judge.final_correct is None:
        return "no reference answer"
    if verified_only and not judge.verified:
        return "final answer wrong or unfinished"
    return None
