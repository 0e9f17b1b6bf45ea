"""Traces on a terminal: a trace's steps as a table, its slow-thinking rounds as a tree, a list
of traces. Every text a model or a program wrote goes through `agentrt.core.display`."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.tree import Tree

from agentrt.core.display import markup
from agentrt.store import StepRecord, TraceRecord
from agentrt.workflows.slow.view import workflow_view

__all__ = ["render_trace", "render_trace_list", "render_workflow", "step_summary"]


def _short(value: Any, width: int = 70) -> str:
    """`value` on one line, at most `width` characters, escaped for markup."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return markup(text if len(text) <= width else text[: width - 1] + "…")


def step_summary(step: StepRecord) -> str:
    """One line (markup) saying what a step produced (or why it failed)."""
    if step.error:
        return f"[red]{_short(step.error)}[/red]"
    out = step.outputs or {}
    for key in ("answer", "verdict", "route", "text", "result", "stdout"):
        if key in out and out[key] not in (None, ""):
            return _short(f"{key}: {out[key]}" if key != "text" else out[key])
    return _short(out) if out else ""


def render_trace(trace: TraceRecord, console: Console | None = None) -> None:
    """Print a trace: a summary panel and one table row per step.

    Superseded steps (a resumed solve ran their task again; they count nowhere) are shown dim,
    with the status "superseded"; a trace that is (or was left) running shows its owner.
    """
    console = console or Console(emoji=False)
    head = (
        f"[bold]problem[/bold]  {_short(trace.problem, 200)}\n"
        f"[bold]answer[/bold]   {markup(trace.answer or '')}\n"
        f"[bold]mode[/bold]     {markup(trace.mode or '-')} (asked {markup(trace.requested_mode)})"
        f"   [bold]verdict[/bold] {markup(trace.verdict or '-')}   "
        f"[bold]status[/bold] {markup(trace.status)}\n"
        f"[bold]model[/bold]    {markup(trace.model_id)} via {markup(trace.backend)}\n"
        f"[bold]usage[/bold]    {trace.usage.prompt_tokens} prompt + "
        f"{trace.usage.completion_tokens} completion tokens, {trace.llm_calls} LLM calls, "
        f"{trace.tool_runs} tool runs, {trace.latency_s:.2f} s"
    )
    if trace.status == "running" or trace.orphaned:
        beat = trace.heartbeat_at.strftime("%Y-%m-%d %H:%M:%S") if trace.heartbeat_at else "-"
        gone = " (gone: resume it with `agentrt traces resume`)" if trace.orphaned else ""
        head += f"\n[bold]owner[/bold]    {markup(trace.owner or '-')}{gone}, heartbeat {beat}"
    stale = sum(1 for s in trace.steps if s.superseded)
    if stale:
        head += f"\n[bold]resumed[/bold]  {stale} superseded step(s), not counted"
    console.print(Panel(head, title=f"trace {markup(trace.id)}", expand=False))
    render_workflow(trace, console)
    table = Table(show_lines=False)
    for col, kw in (("#", {"justify": "right"}), ("kind", {}), ("name", {}), ("node", {}),
                    ("status", {}), ("in", {"justify": "right"}), ("out", {"justify": "right"}),
                    ("s", {"justify": "right"}), ("result", {"overflow": "fold"})):
        table.add_column(col, **kw)
    for i, s in enumerate(trace.steps, 1):
        style = {"ok": "green", "error": "red", "failed": "red"}.get(s.status, "default")
        status = f"[{style}]{markup(s.status)}[/{style}]"
        if s.superseded:
            status = f"[dim]superseded ({markup(s.status)})[/dim]"
        table.add_row(str(i), markup(s.kind), markup(s.name), markup(s.node or ""), status,
                      str(s.prompt_tokens or ""), str(s.completion_tokens or ""),
                      f"{s.latency_s:.2f}", step_summary(s), style="dim" if s.superseded else None)
    console.print(table)


_MARK = {"ok": "[green]✓[/green]", "failed": "[red]✗[/red]", "pending": "[yellow]…[/yellow]"}


def render_workflow(trace: TraceRecord, console: Console | None = None) -> None:
    """Draw the workflows of a slow trace: per round, nodes by layer with their inputs (edges),
    status, timing, calls and result. Prints nothing for a trace without a designed workflow."""

    rounds = workflow_view([s for s in trace.steps if not s.superseded])
    if not rounds:
        return
    console = console or Console(emoji=False)
    root = Tree("[bold]workflow[/bold]")
    for r in rounds:
        design = "fallback design" if r.source == "fallback" else "designed"
        if r.rejected:
            design += f" after {r.rejected} rejected"
        verdict = {"yes": "[green]yes[/green]", "no": "[red]no[/red]"}.get(
            r.verdict, markup(r.verdict or "-"))
        branch = root.add(f"[bold]round {r.round}[/bold] · {len(r.nodes)} nodes, {design} · "
                          f"{r.latency_s:.2f} s · answer {_short(r.answer or '-', 40)} · "
                          f"verdict {verdict}")
        for depth, layer in enumerate(r.layers, 1):
            parallel = " (parallel)" if len(layer) > 1 else ""
            stage = branch.add(f"[dim]layer {depth}{parallel}[/dim]")
            for node_id in layer:
                n = r.nodes[node_id]
                kind = f"tool:{n.tool}" if n.kind == "tool" else n.kind
                reads = f" ← {', '.join(n.inputs)}" if n.inputs else " ← start"
                runs = f", {n.tool_runs} run{'s' if n.tool_runs != 1 else ''}"
                calls = f"{n.llm_calls} llm" + (runs if n.kind == "tool" else "")
                star = " [bold]★ final[/bold]" if n.final else ""
                stage.add(f"{_MARK.get(n.status) or markup(n.status)} [bold]{markup(n.id)}[/bold] "
                          f"{markup(f'[{kind}] ')}{_short(n.role, 30)}{markup(reads)} · "
                          f"{n.latency_s:.2f} s · {calls}{star}\n"
                          f"   [dim]{_short(n.result, 90)}[/dim]")
    console.print(root)


def render_trace_list(traces: list[TraceRecord], console: Console | None = None) -> None:
    """Print one row per trace, newest first."""
    console = console or Console(emoji=False)
    table = Table()
    for col in ("id", "created", "mode", "status", "tokens", "s", "problem", "answer"):
        table.add_column(col, overflow="fold" if col in ("problem", "answer") else "ellipsis")
    for t in traces:
        table.add_row(markup(t.id[:12]), t.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                      markup(t.mode or "-"), markup(t.status), str(t.usage.total_tokens),
                      f"{t.latency_s:.1f}", _short(t.problem, 50), _short(t.answer or "", 30))
    console.print(table)
