"""The UI's HTML: one Jinja environment, autoescaped, that shows every value as inert text.

Templates are package data (`templates/*.html`). Autoescaping is on for every template, and
each `{{ value }}` first goes through `agentrt.core.display.printable` (the `finalize` hook),
so text a model or a program wrote (answers, prompts, tool output, errors, tags) reaches the
page with HTML escaped and with control and bidi characters shown as visible escapes. Only
markup the templates themselves produce (macros, includes) is passed through as it is.
`step_sections` picks what a step's detail panel shows: prompt, reply, tool code, tool output,
error, and the rest of its inputs and outputs as JSON. This module renders; it reads nothing.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from agentrt.core.display import dumps, printable
from agentrt.store import StepRecord

__all__ = ["render", "render_macro", "step_sections", "status_class"]


def _finalize(value: Any) -> Any:
    if value is None:
        return ""
    return value if isinstance(value, Markup) else printable(value)


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _json(value: Any) -> str:
    return dumps(value, indent=1)


def status_class(status: str | None) -> str:
    """A CSS class for a trace or node status (ok, running, failed, other)."""
    s = (status or "").split(":")[0]
    if s in ("ok", "done", "yes"):
        return "ok"
    if s in ("running", "pending"):
        return "running"
    if s in ("error", "failed", "no", "cancelled", "interrupted", "budget_exceeded"):
        return "failed"
    return "other"


_ENV = Environment(loader=PackageLoader("agentrt.server.ui", "templates"), autoescape=True,
                   undefined=StrictUndefined, finalize=_finalize, trim_blocks=True,
                   lstrip_blocks=True)
_ENV.filters.update(seconds=_seconds, pct=_pct, json=_json, status_class=status_class)


def render(template: str, **context: Any) -> str:
    """Render a page template."""
    return _ENV.get_template(template).render(**context)


def render_macro(template: str, macro: str, *args: Any) -> str:
    """Render one macro of a template (the fragments a live page receives)."""
    return str(getattr(_ENV.get_template(template).module, macro)(*args))


def _messages(messages: Any) -> str:
    if not isinstance(messages, list):
        return _json(messages)
    parts = []
    for m in messages:
        if isinstance(m, dict):
            parts.append(f"### {m.get('role', '?')}\n{m.get('content', '')}")
        else:
            parts.append(str(m))
    return "\n\n".join(parts)


def step_sections(step: StepRecord) -> list[tuple[str, str]]:
    """(title, text) pairs for a step's detail panel, in reading order."""
    inputs, outputs = dict(step.inputs or {}), dict(step.outputs or {})
    out: list[tuple[str, str]] = []
    if step.kind == "llm":
        if "messages" in inputs:
            out.append(("prompt", _messages(inputs.pop("messages"))))
        if "text" in outputs:
            out.append(("reply", str(outputs.pop("text"))))
    elif step.kind == "tool":
        if isinstance(inputs.get("code"), str):
            out.append(("tool code", inputs.pop("code")))
        for key in ("stdout", "stderr"):
            if isinstance(outputs.get(key), str) and outputs[key]:
                out.append((f"tool {key}", outputs.pop(key)))
        if outputs:
            out.append(("tool output", _json(outputs)))
            outputs = {}
    if step.error:
        out.append(("error", step.error))
    if inputs:
        out.append(("inputs", _json(inputs)))
    if outputs:
        out.append(("outputs", _json(outputs)))
    return out
