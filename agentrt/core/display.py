"""Terminal rendering of traces and solutions with rich, and text that is safe to show.

Everything a model or a program wrote (answers, errors, tool output, step fields) may hold
terminal escape sequences, C1 controls, bidi overrides or rich markup. `printable` turns those
characters into visible escapes (`\\x1b`, `\\u202e`); `markup` also escapes rich markup, for
text put inside a markup string or a table cell; `dumps` writes JSON whose strings keep the
original text but hold no raw control or bidi character; `escape_logs` applies `printable` to
log records. Every command and the server's logs show such text only through these.
`strip_source_paths` drops the source file paths (and log stamps) of installed libraries from an
error message. Pure presentation: no I/O but printing.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape as _escape_markup
from rich.panel import Panel
from rich.table import Table

if TYPE_CHECKING:
    from agentrt.store import StepRecord, TraceRecord

__all__ = ["printable", "markup", "dumps", "strip_source_paths", "EscapingFilter",
           "escape_logs", "render_trace", "render_trace_list", "render_workflow",
           "step_summary"]

# C0 controls but tab and newline, DEL, C1 controls, bidi marks, embeddings, overrides and
# isolates, line/paragraph separators, and lone surrogates (which cannot even be encoded).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e"
                     "\u2066-\u2069\ud800-\udfff]")
# A source file of an installed library (under site-packages, dist-packages or the standard
# library) or a native source file with a line number (`/project/cpp/x.cc:94`), with what
# decorates it in messages: a log stamp before it, `File "..."` around it, `:line:` or
# `, line N, in f` after it. A user's own paths (a config file, a model folder) are kept.
_LIB = (r"(?:[A-Za-z]:)?(?:[/\\][^\s/\\:\"'()<>]+)*[/\\]"
        r"(?:site-packages|dist-packages|python3\.\d+)[/\\][^\s:\"'()<>]+")
_NATIVE = r"(?:[A-Za-z]:)?(?:[/\\][^\s/\\:\"'()<>]+)+\.(?:c|cc|cpp|cxx|cu|h|hh|hpp|rs)(?=:\d)"
_SOURCE = re.compile(rf"(?:\[\d{{1,2}}:\d{{2}}:\d{{2}}\]\s*)?(?:File \")?(?:{_LIB}|{_NATIVE})"
                     r"(?:\", line \d+(?:, in [\w.<>]+)?|(?::\d+)+)?:?\s*")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: Any) -> str:
    """`value` as text with every control, bidi or unencodable character shown as an escape.

    Tabs and newlines are kept (multi-line views need them); `\\x1b` stays visible as the four
    characters `\\x1b`, never reaching the terminal as ESC.

        >>> printable("\\x1b[2Jhi\\u202e")
        '\\\\x1b[2Jhi\\\\u202e'
    """
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_visible, text)


def markup(value: Any) -> str:
    """`printable(value)` with rich markup escaped: safe inside a markup string or table cell."""
    return _escape_markup(printable(value))


def dumps(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` (non-ASCII kept) with control, bidi and surrogate characters as `\\uXXXX`.

    Those characters only occur inside JSON strings, so the result is valid JSON that decodes
    to the original text.
    """
    text = json.dumps(obj, ensure_ascii=False, **kwargs)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def strip_source_paths(message: str) -> str:
    """`message` without source file paths (`/x/y.cc:12:`, `.../site-packages/z.py`) and log
    stamps: a library's internals are no user's business."""
    return _SOURCE.sub("", message)


class EscapingFilter(logging.Filter):
    """A handler filter that makes a record's message, arguments and traceback `printable`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = printable(record.msg)
        if isinstance(record.args, dict):
            record.args = {k: _safe_arg(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_safe_arg(a) for a in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = printable(record.exc_text)
        if record.stack_info:
            record.stack_info = printable(record.stack_info)
        return True


def _safe_arg(value: Any) -> Any:
    if value is None or isinstance(value, (int, float)):
        return value
    return printable(value)


def escape_logs(names: tuple[str, ...] = ("", "uvicorn", "uvicorn.error", "uvicorn.access")
                ) -> None:
    """Put `EscapingFilter` on the handlers of the named loggers (root first).

    When the root logger has no handler, one is added for stderr (warnings and errors, as
    Python's last-resort output), so propagated records are escaped too.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setLevel(logging.WARNING)
        root.addHandler(handler)
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, EscapingFilter) for f in handler.filters):
                handler.addFilter(EscapingFilter())


def _short(value: Any, width: int = 70) -> str:
    """`value` on one line, at most `width` characters, escaped for markup."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = printable(" ".join(text.split()))
    return _escape_markup(text if len(text) <= width else text[: width - 1] + "…")


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
    from rich.tree import Tree

    from agentrt.workflows.slow.view import workflow_view

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
                kind = f"tool:{n.tool}" if n.kind == "tool" else "llm"
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
