"""State of the slow-thinking graphs, and the small helpers every slow stage shares.

Two graphs, two states. `SlowState` is the outer solve (reflect, design, execute, judge, next
round or select); `WorkflowState` is one designed workflow, whose experts write their results
into `outputs` (merged, so parallel experts never overwrite each other). Both hold only plain
JSON-like values, because every superstep is checkpointed.

A node output is a dict: `kind`, `role`, `status` ("ok" or "failed"), `text` (what readers
see), `latency_s`, and for the final node `answer`. This module knows no prompts and no tools.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from agentrt.store import StepRecord
from agentrt.core.types import SamplingParams
from agentrt.workflows.context import SolveContext
from agentrt.workflows.profiles import get_profile

__all__ = [
    "SlowState",
    "WorkflowState",
    "merge_outputs",
    "stage_params",
    "structured",
    "record_node",
    "input_views",
    "clip",
]



def merge_outputs(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer of `outputs`: union of node results (a node writes only its own key)."""
    return {**(left or {}), **(right or {})}


class WorkflowState(TypedDict, total=False):
    """One designed workflow run: the problem, the reflection and the experts' results."""

    problem: str
    reflection: str
    round: int
    outputs: Annotated[dict[str, Any], merge_outputs]


class SlowState(TypedDict, total=False):
    """The whole slow solve.

    Attributes:
        problem, context: the input.
        round: the current round, from 1.
        reflection: this round's problem reflection.
        spec: this round's accepted design (`WorkflowSpec` as JSON), `design_fallback` when the
            model never produced a valid one.
        outputs, answer: this round's node results and final answer.
        verdict, reason: the judge's decision on this round's answer.
        candidates: one entry per judged round (accumulates across rounds).
        next: where the judge routes: "reflect" (another round) or "select".
        selected_round: the round whose answer was chosen.
    """

    problem: str
    context: str
    round: int
    reflection: str
    spec: dict[str, Any] | None
    design_fallback: bool
    outputs: dict[str, Any]
    answer: str
    verdict: str
    reason: str
    candidates: Annotated[list[dict[str, Any]], operator.add]
    next: str
    selected_round: int


def structured(ctx: SolveContext) -> bool:
    """Whether the backend enforces JSON schemas while decoding."""
    return bool(getattr(ctx.backend, "supports_json_schema", False))


def stage_params(ctx: SolveContext, stage: str) -> SamplingParams:
    """Sampling parameters of one stage: the profile's token cap (within the per-call limit) and
    stop strings, and the solve's temperature. The design stage has no cap of its own: its
    schema is sized to the per-call limit instead."""
    profile = get_profile(ctx.profile)
    return SamplingParams(max_tokens=profile.tokens(stage, ctx.limits.max_tokens_per_call),
                          temperature=float(ctx.extra.get("temperature", 0.0)),
                          stop=profile.stop(stage))


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, marking the cut."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 15].rstrip() + " …[truncated]"


def input_views(ctx: SolveContext, outputs: dict[str, Any], ids: list[str]) -> list[dict[str, str]]:
    """What a node sees of the outputs it declared as inputs (and nothing else)."""
    limit = get_profile(ctx.profile).view_chars
    views = []
    for node_id in ids:
        out = outputs.get(node_id) or {}
        views.append({"id": node_id, "role": str(out.get("role", "")),
                      "status": str(out.get("status", "failed")),
                      "text": clip(str(out.get("text", "(no output)")), limit)})
    return views


def record_node(ctx: SolveContext, node_id: str, rnd: int, output: dict[str, Any],
                error: str | None = None) -> None:
    """Record a node's outcome (status, timing, what it produced) as a `node` stage step."""
    summary = {k: output[k] for k in ("kind", "role", "tool", "answer", "attempts") if k in output}
    summary["text"] = clip(str(output.get("text", "")), 2000)
    ctx.recorder.record(StepRecord(
        kind="stage", name="node", node=node_id, round=rnd,
        status="ok" if output.get("status") == "ok" else "failed",
        outputs=summary, latency_s=float(output.get("latency_s", 0.0)), error=error,
    ))
