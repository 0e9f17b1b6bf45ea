"""Where each node of a slow solve's workflow goes on the page: boxes by layer, edges between.

`layout_rounds` turns the rounds `agentrt.workflows.slow.view.workflow_view` reads back from a
trace's steps into drawable rounds: one column per layer (left to right, in the order the
layers ran), one box per node with its kind, status, tokens and seconds, and an edge (a cubic
curve) from each input to its reader. The template draws them as inline SVG; there is no
JavaScript layout. This module does arithmetic only: it neither escapes nor renders text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentrt.store import StepRecord
from agentrt.workflows.slow.view import RoundView, workflow_view

__all__ = ["Box", "Edge", "DrawnRound", "layout_rounds"]

BOX_W, BOX_H = 168, 58
GAP_X, GAP_Y, PAD = 72, 22, 12


@dataclass
class Box:
    """One node as drawn: position, size and what the box says."""

    id: str
    kind: str
    status: str
    role: str
    tool: str | None
    final: bool
    x: int
    y: int
    tokens: int
    latency_s: float
    llm_calls: int
    tool_runs: int
    result: str
    w: int = BOX_W
    h: int = BOX_H


@dataclass
class Edge:
    """A curve from the right side of one box to the left side of another."""

    src: str
    dst: str
    path: str


@dataclass
class DrawnRound:
    """One round ready to draw: boxes, edges, canvas size and the round's outcome."""

    round: int
    source: str
    rejected: int
    answer: str
    verdict: str
    reason: str
    latency_s: float
    layers: list[list[str]]
    boxes: list[Box] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    width: int = 0
    height: int = 0


def _tokens(steps: list[StepRecord]) -> dict[tuple[int, str], int]:
    out: dict[tuple[int, str], int] = {}
    for s in steps:
        if s.kind == "llm" and s.node:
            key = (s.round, s.node)
            out[key] = out.get(key, 0) + s.prompt_tokens + s.completion_tokens
    return out


def _columns(view: RoundView) -> list[list[str]]:
    placed: set[str] = set()
    cols = []
    for layer in view.layers:
        col = [n for n in layer if n in view.nodes and n not in placed]
        placed.update(col)
        if col:
            cols.append(col)
    rest = [n for n in view.nodes if n not in placed]  # nodes no layer named: a last column
    return cols + ([rest] if rest else [])


def _draw(view: RoundView, tokens: dict[tuple[int, str], int]) -> DrawnRound:
    cols = _columns(view)
    tallest = max((len(c) for c in cols), default=1)
    height = PAD * 2 + tallest * BOX_H + (tallest - 1) * GAP_Y
    drawn = DrawnRound(round=view.round, source=view.source, rejected=view.rejected,
                       answer=view.answer, verdict=view.verdict, reason=view.reason,
                       latency_s=view.latency_s, layers=cols,
                       width=PAD * 2 + len(cols) * BOX_W + max(0, len(cols) - 1) * GAP_X,
                       height=height)
    where: dict[str, Box] = {}
    for ci, col in enumerate(cols):
        top = (height - (len(col) * BOX_H + (len(col) - 1) * GAP_Y)) // 2
        for ri, nid in enumerate(col):
            n = view.nodes[nid]
            box = Box(id=n.id, kind=n.kind, status=n.status, role=n.role, tool=n.tool,
                      final=n.final, x=PAD + ci * (BOX_W + GAP_X), y=top + ri * (BOX_H + GAP_Y),
                      tokens=tokens.get((view.round, n.id), 0), latency_s=n.latency_s,
                      llm_calls=n.llm_calls, tool_runs=n.tool_runs, result=n.result)
            where[nid] = box
            drawn.boxes.append(box)
    for src, dst in view.edges:
        a, b = where.get(src), where.get(dst)
        if a is None or b is None:
            continue
        x1, y1 = a.x + a.w, a.y + a.h // 2
        x2, y2 = b.x, b.y + b.h // 2
        mid = (x1 + x2) // 2
        drawn.edges.append(Edge(src, dst, f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"))
    return drawn


def layout_rounds(steps: list[StepRecord]) -> list[DrawnRound]:
    """The drawable rounds of a trace's steps (empty when no workflow was designed)."""
    tokens = _tokens(steps)
    return [_draw(view, tokens) for view in workflow_view(steps)]
