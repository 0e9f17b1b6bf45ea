"""A slow solve's workflows, read back from its trace steps: rounds, nodes, edges, status, timing.

What `agentrt traces show` draws, and what analysis code can use without re-running anything:
for each round, the design that ran (accepted or fallback, after how many rejections), each
node with its kind, inputs (the edges), status ("ok", "failed", or "pending" when the solve
stopped before the node finished), latency, calls made and a short result, and the round's
answer and verdict. Pure data from `StepRecord`s; no rendering, no store access.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentrt.store import StepRecord

__all__ = ["NodeView", "RoundView", "workflow_view"]


@dataclass
class NodeView:
    """One node of a round's workflow as it ran."""

    id: str
    kind: str
    role: str
    inputs: list[str]
    tool: str | None = None
    final: bool = False
    status: str = "pending"
    latency_s: float = 0.0
    llm_calls: int = 0
    tool_runs: int = 0
    result: str = ""


@dataclass
class RoundView:
    """One round: its design, nodes by layer, answer and verdict."""

    round: int
    source: str = "design"  # "design" or "fallback"
    rejected: int = 0
    nodes: dict[str, NodeView] = field(default_factory=dict)
    layers: list[list[str]] = field(default_factory=list)
    answer: str = ""
    verdict: str = ""
    reason: str = ""
    latency_s: float = 0.0

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(src, n.id) for n in self.nodes.values() for src in n.inputs]


def _round_for(rounds: dict[int, RoundView], rnd: int) -> RoundView:
    if rnd not in rounds:
        rounds[rnd] = RoundView(round=rnd)
    return rounds[rnd]


def _set_design(view: RoundView, outputs: dict[str, Any], source: str) -> None:
    spec = outputs.get("spec") or {}
    final = spec.get("final")
    view.source = source
    view.layers = [list(layer) for layer in outputs.get("layers") or []]
    view.nodes = {
        n["id"]: NodeView(id=n["id"], kind=n.get("kind", "llm"), role=n.get("role", ""),
                          inputs=list(n.get("inputs") or []), tool=n.get("tool"),
                          final=n["id"] == final)
        for n in spec.get("nodes") or [] if isinstance(n, dict) and "id" in n
    }
    if not view.layers and view.nodes:
        view.layers = [list(view.nodes)]


def _node_step(view: RoundView, step: StepRecord) -> None:
    node = view.nodes.get(step.node or "")
    if node is None:
        return
    if step.kind == "llm":
        node.llm_calls += 1
    elif step.kind == "tool":
        node.tool_runs += 1
    elif step.kind == "stage" and step.name == "node":
        out = step.outputs or {}
        node.status = "ok" if step.status == "ok" else "failed"
        node.latency_s = step.latency_s
        answer = out.get("answer")
        node.result = f"answer: {answer}" if answer else str(out.get("text", ""))
        if step.error and node.status == "failed":
            node.result = step.error


def workflow_view(steps: list[StepRecord]) -> list[RoundView]:
    """Rounds of a slow solve in order (empty for a trace without a designed workflow)."""
    rounds: dict[int, RoundView] = {}
    for step in steps:
        out = step.outputs or {}
        if step.node is not None and step.round in rounds:
            _node_step(rounds[step.round], step)
            continue
        if step.name == "design_accepted":
            _set_design(_round_for(rounds, step.round), out, "design")
        elif step.name == "design_fallback":
            _set_design(_round_for(rounds, step.round), out, "fallback")
        elif step.name == "design_rejected":
            _round_for(rounds, step.round).rejected += 1
        elif step.name == "workflow" and step.round in rounds:
            rounds[step.round].latency_s = step.latency_s
            rounds[step.round].answer = str(out.get("answer", ""))
        elif step.name == "verdict" and step.round in rounds:
            rounds[step.round].verdict = str(out.get("verdict", ""))
            rounds[step.round].reason = str(out.get("reason", ""))
    return [rounds[k] for k in sorted(rounds) if rounds[k].nodes]
