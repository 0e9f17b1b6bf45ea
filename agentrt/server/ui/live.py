"""A running solve, followed live: server-sent events with the steps it records, until it ends.

The trace page of a running trace opens `/ui/api/traces/<id>/events?after=<last step id>`.
The stream polls the store (every `POLL_S`, in a worker thread) for steps newer than the last
one sent; when there are some, it sends one `update` event: the new steps' panels, the redrawn
workflow graph and the header, as HTML fragments rendered (and escaped) by the same templates
as the page. When the trace is no longer running it sends a final `update` and an `end` event
and closes. Polling the store, rather than listening inside the solve, is what lets `agentrt ui`
follow solves that another process (`agentrt serve`, `agentrt solve`) runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from agentrt.core.errors import AgentrtError
from agentrt.server.ui.render import render_macro
from agentrt.store import TraceStore
from agentrt.store.records import RUNNING
from agentrt.store.search import steps_after

__all__ = ["live_events", "POLL_S", "MAX_FOLLOW_S"]

POLL_S = 0.5
MAX_FOLLOW_S = 3600.0


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _update(store: TraceStore, trace_id: str, after: int,
            context: Callable[[Any], dict[str, Any]]) -> tuple[dict[str, Any] | None, int, bool]:
    """(the update to send or None, the new last step id, whether the trace still runs)."""
    new = steps_after(store, trace_id, after)
    trace = store.get_trace(trace_id, steps=bool(new))
    running = trace.status == RUNNING and not trace.orphaned
    if not new and running:
        return None, after, True
    ctx = context(trace) if new else {"trace": trace, "rounds": None}
    update = {"header": render_macro("trace_parts.html", "header", trace),
              "status": trace.status,
              "steps": [render_macro("trace_parts.html", "step_panel", s, sec)
                        for s, sec in ctx.get("steps", []) if (s.id or 0) > after],
              "last": max([after] + [s.id or 0 for s in new])}
    if ctx["rounds"] is not None:
        update["graph"] = render_macro("trace_parts.html", "graph", ctx["rounds"])
        update["decisions"] = render_macro("trace_parts.html", "decisions", ctx["decisions"])
    return update, update["last"], running


async def _stream(store: TraceStore, trace_id: str, after: int, request: Request,
                  context: Callable[[Any], dict[str, Any]]) -> AsyncIterator[bytes]:
    deadline = time.monotonic() + MAX_FOLLOW_S
    yield b"retry: 2000\n\n"
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        try:
            update, after, running = await asyncio.to_thread(_update, store, trace_id, after,
                                                             context)
        except AgentrtError as e:
            yield _event("failure", {"message": str(e)})
            return
        if update is not None:
            yield _event("update", update)
        if not running:
            yield _event("end", {"status": update["status"] if update else ""})
            return
        await asyncio.sleep(POLL_S)


async def live_events(store: TraceStore, trace_id: str, after: int, request: Request,
                      context: Callable[[Any], dict[str, Any]]) -> StreamingResponse:
    """The event stream of one trace (see the module docstring)."""
    return StreamingResponse(_stream(store, trace_id, after, request, context),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
