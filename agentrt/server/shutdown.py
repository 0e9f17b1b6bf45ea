"""Draining on shutdown: requests in flight get the grace, then their work is cancelled.

Asked to stop (SIGTERM, Ctrl-C), uvicorn stops accepting connections, waits up to its graceful
shutdown timeout for the requests in flight, then cancels what is left abruptly: responses cut,
work still running, idempotency claims held. `Drain` ends them in order and inside that time.
From the signal on, new work is refused (503, also for a retry waiting on an Idempotency-Key).
Requests in flight may finish until `abort_s` (the grace less a margin); then each is aborted:
its cancel event is set (solves stop before their next call, sandboxed runs are killed), a
plain request answers 503 and a stream ends with an error event (the service's side of
`Execution.abort`), and claims are released. Solve traces still running shortly after are
finished as `cancelled` by `abandon`: a thread blocked in a call that cannot be interrupted
would otherwise leave them running.

This module knows asyncio and signals; what a response says is the service's business.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Drain"]

log = logging.getLogger("agentrt.server")


class Drain:
    """Shutdown of one worker's requests. See the module docstring.

    Args:
        grace_s: uvicorn's graceful shutdown timeout; everything here ends before it.
        abandon: finishes a trace as cancelled if it is still running (blocking; run in a
            thread).
    """

    def __init__(self, grace_s: float, abandon: Callable[[str], None]):
        self.grace_s = grace_s
        self.abort_s = max(grace_s - 5.0, grace_s / 2)
        self.closing = False
        self._abandon = abandon
        self._live: dict[Any, list[str]] = {}
        self._task: asyncio.Task | None = None

    def track(self, execution: Any, trace_ids: list[str]) -> None:
        """Watch an execution (and the traces its solves write) until its work has finished."""
        for done in [e for e in self._live if e.done]:
            del self._live[done]
        self._live[execution] = list(trace_ids)

    def begin(self) -> None:
        """Start draining (in the event loop's thread); later calls do nothing."""
        if not self.closing:
            self.closing = True
            log.info("shutting down: %d request(s) in flight get %.0f s", self._running(),
                     self.abort_s)
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def wait(self) -> None:
        """Start draining if nothing did, and wait until it is over."""
        self.begin()
        assert self._task is not None
        await self._task

    def hook_signals(self) -> None:
        """Begin draining as soon as SIGTERM or SIGINT arrives, before the handler already in
        place (uvicorn's) runs. Only the main thread can do this; elsewhere nothing changes."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue

            def on_signal(signum: int, frame: Any, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(self.begin)
                previous(signum, frame)

            signal.signal(sig, on_signal)

    def _running(self) -> int:
        return sum(1 for e in self._live if not e.done)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while self._running() and loop.time() - start < self.abort_s:
            await asyncio.sleep(0.1)
        left = [(e, ids) for e, ids in self._live.items() if not e.done]
        if not left:
            return
        log.warning("shutting down: cancelling %d request(s) still in flight", len(left))
        for execution, _ in left:
            execution.abort()
        settle = min(self.abort_s + 3.0, self.grace_s - 1.0)
        while any(not e.done for e, _ in left) and loop.time() - start < settle:
            await asyncio.sleep(0.1)
        for _, trace_ids in left:
            for trace_id in trace_ids:
                try:
                    await asyncio.to_thread(self._abandon, trace_id)
                except Exception as e:  # the store may be unreachable: the lease still tells
                    log.warning("could not mark trace %s cancelled: %s", trace_id, e)
