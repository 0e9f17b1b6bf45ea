"""Side-by-side comparison of two evaluation runs, with paired differences.

`compare_runs(a, b)` lines up the headline metrics (accuracy, tokens, calls, tool runs, time,
slow share), per-task accuracy, and, on the problems both runs share (matched by problem id),
the paired outcome counts with an exact McNemar test of whether the accuracy difference is
more than chance. `render_comparison` prints it as a rich table.

This module compares finished runs; it does not run anything.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field
from rich.table import Table

from agentrt.eval.metrics import GroupMetrics, compute_metrics
from agentrt.eval.runs import EvalRun

__all__ = ["CompareRow", "Paired", "Comparison", "compare_runs", "mcnemar_p", "render_comparison"]

_HEADLINE = [("accuracy", "accuracy"), ("tokens / problem", "tokens_per_problem"),
             ("LLM calls / problem", "llm_calls_per_problem"),
             ("tool runs / problem", "tool_runs_per_problem"),
             ("seconds / problem", "latency_s_mean"), ("slow share", "slow_fraction"),
             ("errors", "errors"), ("problems", "n")]


class CompareRow(BaseModel):
    metric: str
    a: float | None
    b: float | None
    diff: float | None


class Paired(BaseModel):
    """Outcomes on the problems both runs attempted."""

    shared: int
    both_right: int
    only_a: int
    only_b: int
    both_wrong: int
    mcnemar_p: float | None = None


class Comparison(BaseModel):
    run_a: str
    run_b: str
    rows: list[CompareRow] = Field(default_factory=list)
    tasks: list[CompareRow] = Field(default_factory=list)
    paired: Paired


def mcnemar_p(only_a: int, only_b: int) -> float | None:
    """Two-sided exact McNemar p-value from the discordant pair counts (None without any)."""
    n = only_a + only_b
    if n == 0:
        return None
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def _row(name: str, a: Any, b: Any) -> CompareRow:
    a = None if a is None else float(a)
    b = None if b is None else float(b)
    return CompareRow(metric=name, a=a, b=b, diff=None if a is None or b is None else b - a)


def _paired(a: EvalRun, b: EvalRun) -> Paired:
    ra = {r.problem_id: r.correct for r in a.results}
    rb = {r.problem_id: r.correct for r in b.results}
    shared = sorted(set(ra) & set(rb))
    counts = {"both_right": 0, "only_a": 0, "only_b": 0, "both_wrong": 0}
    for pid in shared:
        key = {(True, True): "both_right", (True, False): "only_a",
               (False, True): "only_b", (False, False): "both_wrong"}[(ra[pid], rb[pid])]
        counts[key] += 1
    return Paired(shared=len(shared), **counts,
                  mcnemar_p=mcnemar_p(counts["only_a"], counts["only_b"]))


def compare_runs(a: EvalRun, b: EvalRun) -> Comparison:
    """Compare run `b` against run `a` (differences are b minus a)."""
    ma = compute_metrics(a.results, a.manifest.wall_s)
    mb = compute_metrics(b.results, b.manifest.wall_s)
    rows = [_row(label, getattr(ma.overall, f), getattr(mb.overall, f)) for label, f in _HEADLINE]
    rows.append(_row("wall s", ma.wall_s, mb.wall_s))
    for label, fa, fb in (("router precision", ma.router, mb.router),):
        if fa is not None or fb is not None:
            rows.append(_row(label, fa.precision if fa else None, fb.precision if fb else None))
            rows.append(_row("router recall", fa.recall if fa else None,
                             fb.recall if fb else None))
    tasks = []
    for t in sorted(set(ma.by_task) | set(mb.by_task)):
        ga: GroupMetrics | None = ma.by_task.get(t)
        gb: GroupMetrics | None = mb.by_task.get(t)
        tasks.append(_row(t, ga.accuracy if ga else None, gb.accuracy if gb else None))
    return Comparison(run_a=a.run_id, run_b=b.run_id, rows=rows, tasks=tasks, paired=_paired(a, b))


_PERCENT = {"accuracy", "slow share", "router precision", "router recall"}


def _fmt(metric: str, v: float | None, signed: bool = False) -> str:
    if v is None:
        return "–"
    sign = "+" if signed and v > 0 else ""
    if metric in _PERCENT:
        return f"{sign}{100 * v:.1f}%"
    return f"{sign}{v:.2f}" if abs(v) < 100 else f"{sign}{v:.0f}"


def render_comparison(cmp: Comparison, console: Any) -> None:
    """Print the comparison as rich tables."""
    table = Table(title=f"A = {cmp.run_a}   B = {cmp.run_b}")
    for col in ("metric", "A", "B", "B − A"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for r in cmp.rows:
        table.add_row(r.metric, _fmt(r.metric, r.a), _fmt(r.metric, r.b),
                      _fmt(r.metric, r.diff, signed=True))
    for r in cmp.tasks:
        name = f"accuracy · {r.metric}"
        table.add_row(name, _fmt("accuracy", r.a), _fmt("accuracy", r.b),
                      _fmt("accuracy", r.diff, signed=True))
    console.print(table)
    p = cmp.paired
    pv = "–" if p.mcnemar_p is None else f"{p.mcnemar_p:.3g}"
    console.print(f"paired on {p.shared} shared problems: both right {p.both_right}, "
                  f"only A {p.only_a}, only B {p.only_b}, both wrong {p.both_wrong}; "
                  f"exact McNemar p = {pv}")
