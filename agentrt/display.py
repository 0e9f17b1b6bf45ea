"""Terminal rendering of traces and solutions with rich. Pure presentation, no I/O but printing."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from agentrt.store import StepRecord, TraceRecord

__all__ = ["render_trace", "render_trace_list", "render_workflow", "step_summary"]


def _short(value: Any, width: int = 70) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def step_summary(step: StepRecord) -> str:
    """One line saying what a step produced (or why it failed)."""
    if step.error:
        return f"[red]{_short(step.error)}[/red]"
    out = step.outputs or {}
    for key in ("answer", "verdict", "route", "text", "result", "stdout"):
        if key in out and out[key] not in (None, ""):
            return _short(f"{key}: {out[key]}" if key != "text" else out[key])
    return _short(out) if out else ""


def render_trace(trace: TraceRecord, console: Console | None = None) -> None:
    """Print a trace: a summary panel and one table row per step."""
    console = console or Console()
    head = (
        f"[bold]problem[/bold]  {_short(trace.problem, 200)}\n"
        f"[bold]answer[/bold]   {trace.answer or ''}\n"
        f"[bold]mode[/bold]     {trace.mode or '-'} (asked {trace.requested_mode})   "
        f"[bold]verdict[/bold] {trace.verdict or '-'}   [bold]status[/bold] {trace.status}\n"
        f"[bold]model[/bold]    {trace.model_id} via {trace.backend}\n"
        f"[bold]usage[/bold]    {trace.usage.prompt_tokens} prompt + "
        f"{trace.usage.completion_tokens} completion tokens, {trace.llm_calls} LLM calls, "
        f"{trace.tool_runs} tool runs, {trace.latency_s:.2f} s"
    )
    console.print(Panel(head, title=f"trace {trace.id}", expand=False))
    render_workflow(trace, console)
    table = Table(show_lines=False)
    for col, kw in (("#", {"justify": "right"}), ("kind", {}), ("name", {}), ("node", {}),
                    ("status", {}), ("in", {"justify": "right"}), ("out", {"justify": "right"}),
                    ("s", {"justify": "right"}), ("result", {"overflow": "fold"})):
        table.add_column(col, **kw)
    for i, s in enumerate(trace.steps, 1):
        style = {"ok": "green", "error": "red", "failed": "red"}.get(s.status, "")
        table.add_row(str(i), s.kind, s.name, s.node or "", f"[{style}]{s.status}[/{style}]",
                      str(s.prompt_tokens or ""), str(s.completion_tokens or ""),
                      f"{s.latency_s:.2f}", step_summary(s))
    console.print(table)


_MARK = {"ok": "[green]✓[/green]", "failed": "[red]✗[/red]", "pending": "[yellow]…[/yellow]"}


def render_workflow(trace: TraceRecord, console: Console | None = None) -> None:
    """Draw the workflows of a slow trace: per round, nodes by layer with their inputs (edges),
    status, timing, calls and result. Prints nothing for a trace without a designed workflow."""
    from rich.markup import escape
    from rich.tree import Tree

    from workflows.slow.view import workflow_view

    rounds = workflow_view(trace.steps)
    if not rounds:
        return
    console = console or Console()
    root = Tree("[bold]workflow[/bold]")
    for r in rounds:
        design = "fallback design" if r.source == "fallback" else "designed"
        if r.rejected:
            design += f" after {r.rejected} rejected"
        verdict = {"yes": "[green]yes[/green]", "no": "[red]no[/red]"}.get(
            r.verdict, r.verdict or "-")
        branch = root.add(f"[bold]round {r.round}[/bold] · {len(r.nodes)} nodes, {design} · "
                          f"{r.latency_s:.2f} s · answer {escape(_short(r.answer or '-', 40))} · "
                          f"verdict {verdict}")
        for depth, layer in enumerate(r.layers, 1):
            parallel = " (parallel)" if len(layer) > 1 else ""
            stage = branch.add(f"[dim]layer {depth}{parallel}[/dim]")
            for node_id in layer:
                n = r.nodes[node_id]
                kind = f"tool:{n.tool}" if n.kind == "tool" else "llm"
                reads = f" ← {', '.join(n.inputs)}" if n.inputs else " ← start"
                runs = f", {n.tool_runs} run{'s' if n.tool_runs != 1 else ''}"
                calls = f"{n.llm_calls} llm" + (runs if n.kind == "tool" else "")
                star = " [bold]★ final[/bold]" if n.final else ""
                stage.add(f"{_MARK.get(n.status, n.status)} [bold]{n.id}[/bold] "
                          f"{escape(f'[{kind}] ' + _short(n.role, 30) + reads)} · "
                          f"{n.latency_s:.2f} s · {calls}{star}\n"
                          f"   [dim]{escape(_short(n.result, 90))}[/dim]")
    console.print(root)


def render_trace_list(traces: list[TraceRecord], console: Console | None = None) -> None:
    """Print one row per trace, newest first."""
    console = console or Console()
    table = Table()
    for col in ("id", "created", "mode", "status", "tokens", "s", "problem", "answer"):
        table.add_column(col, overflow="fold" if col in ("problem", "answer") else "ellipsis")
    for t in traces:
        table.add_row(t.id[:12], t.created_at.strftime("%Y-%m-%d %H:%M:%S"), t.mode or "-",
                      t.status, str(t.usage.total_tokens), f"{t.latency_s:.1f}",
                      _short(t.problem, 50), _short(t.answer or "", 30))
    console.print(table)
